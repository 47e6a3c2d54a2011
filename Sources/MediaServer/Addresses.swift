#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import RTCBase
import UDPIO

/// NIO's socket addresses as the engines' plain `TransportAddress`, straight
/// from the `sockaddr` bytes (TCP/TLS peers and resolved listen hosts).
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
}

/// The monotonic clock as the engines see it (CLOCK_MONOTONIC through NIODeadline).
enum MonotonicClock {
    @inline(__always)
    static func now() -> Instant {
        Instant(nanoseconds: Int64(clamping: NIODeadline.now().uptimeNanoseconds))
    }
}

/// Host names for listeners.
enum AddressResolution {
    /// `host` as an address: literal, or the first a name resolves to.
    static func resolve(_ host: String) throws -> IPAddress {
        if let ip = IPAddress(host) { return ip }
        let resolved = try SocketAddress.makeAddressResolvingHost(host, port: 0)
        guard let address = AddressConversion.transportAddress(resolved) else {
            throw SocketCallError(call: "resolve \(host)", code: EINVAL)
        }
        return address.ip
    }
}
