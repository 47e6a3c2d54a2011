#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import RTCBase

/// Conversions between NIO's socket addresses and the engines' plain
/// `TransportAddress`, straight from the `sockaddr` bytes (no text round
/// trip: they run once per relayed packet).
enum AddressConversion {
    static func transportAddress(_ address: SocketAddress) -> TransportAddress? {
        switch address {
        case .v4(let v4):
            let sin = v4.address
            // s_addr and sin_port are in network byte order in memory.
            return TransportAddress(ip: .v4(UInt32(bigEndian: sin.sin_addr.s_addr)), port: UInt16(bigEndian: sin.sin_port))
        case .v6(let v6):
            var sin6 = v6.address
            let (high, low) = withUnsafeBytes(of: &sin6.sin6_addr) { raw -> (UInt64, UInt64) in
                var h: UInt64 = 0, l: UInt64 = 0
                for i in 0..<8 { h = h << 8 | UInt64(raw[i]) }
                for i in 8..<16 { l = l << 8 | UInt64(raw[i]) }
                return (h, l)
            }
            return TransportAddress(ip: .v6(high: high, low: low), port: UInt16(bigEndian: sin6.sin6_port))
        default:
            return nil
        }
    }

    static func socketAddress(_ address: TransportAddress) -> SocketAddress {
        switch address.ip {
        case .v4(let a):
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = address.port.bigEndian
            sin.sin_addr.s_addr = a.bigEndian
            return SocketAddress(sin, host: "")
        case .v6(let high, let low):
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = address.port.bigEndian
            withUnsafeMutableBytes(of: &sin6.sin6_addr) { raw in
                for i in 0..<8 { raw[i] = UInt8(truncatingIfNeeded: high >> (56 - 8 * UInt64(i))) }
                for i in 0..<8 { raw[8 + i] = UInt8(truncatingIfNeeded: low >> (56 - 8 * UInt64(i))) }
            }
            return SocketAddress(sin6, host: "")
        }
    }
}

/// The monotonic clock as the engines see it: NIODeadline's uptime, so engine
/// deadlines convert to NIO timers without an offset.
enum MonotonicClock {
    @inline(__always)
    static func now() -> Instant {
        Instant(nanoseconds: Int64(clamping: NIODeadline.now().uptimeNanoseconds))
    }

    static func deadline(_ instant: Instant) -> NIODeadline {
        .uptimeNanoseconds(UInt64(max(instant.nanoseconds, 0)))
    }
}
