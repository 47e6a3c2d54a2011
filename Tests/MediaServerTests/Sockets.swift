#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import RTCBase

/// Minimal blocking POSIX sockets on 127.0.0.1 for the tests: the server
/// runs on NIO's threads, the test talks to it like an outside client.
final class TestSocket {
    private(set) var fd: Int32
    let isStream: Bool

    /// A UDP socket bound to 127.0.0.1:0, or a TCP socket connected to `connectTo`.
    init(udp: Bool, connectTo port: UInt16? = nil, timeoutMS: Int = 2000) throws {
        isStream = !udp
        fd = socket(AF_INET, udp ? Int32(SOCK_DGRAM.rawValue) : Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw SocketError.failed("socket") }
        var tv = timeval()
        tv.tv_sec = timeoutMS / 1000
        tv.tv_usec = (timeoutMS % 1000) * 1000
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        if udp {
            var sin = TestSocket.loopback(port: 0)
            let rc = withUnsafePointer(to: &sin) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard rc == 0 else { throw SocketError.failed("bind") }
        }
        if let port {
            var sin = TestSocket.loopback(port: port)
            let rc = withUnsafePointer(to: &sin) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard rc == 0 else { throw SocketError.failed("connect") }
        }
    }

    deinit { closeNow() }

    /// Closes the socket now (a TCP peer sees the connection end).
    func closeNow() {
        if fd >= 0 { close(fd) }
        fd = -1
    }

    static func loopback(port: UInt16) -> sockaddr_in {
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = port.bigEndian
        sin.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        return sin
    }

    var localAddress: TransportAddress {
        var sin = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        return TransportAddress(ip: .v4(UInt32(bigEndian: sin.sin_addr.s_addr)), port: UInt16(bigEndian: sin.sin_port))
    }

    /// UDP: one datagram to 127.0.0.1:`port`.
    func send(_ bytes: [UInt8], to port: UInt16) throws {
        var sin = TestSocket.loopback(port: port)
        let n = bytes.withUnsafeBytes { raw in
            withUnsafePointer(to: &sin) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, raw.baseAddress, raw.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        guard n == bytes.count else { throw SocketError.failed("sendto") }
    }

    /// TCP: bytes onto the stream.
    func write(_ bytes: [UInt8]) throws {
        let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
        guard n == bytes.count else { throw SocketError.failed("send") }
    }

    /// UDP: the next datagram and its source port; TCP: whatever arrived (nil on timeout or close).
    func receive() -> (bytes: [UInt8], fromPort: UInt16)? {
        var buffer = [UInt8](repeating: 0, count: 65536)
        var sin = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let n = buffer.withUnsafeMutableBytes { raw in
            withUnsafeMutablePointer(to: &sin) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, raw.baseAddress, raw.count, 0, $0, &len) }
            }
        }
        // An empty datagram is a datagram; an empty stream read is a close.
        guard n > 0 || (n == 0 && !isStream) else { return nil }
        return (Array(buffer[0..<n]), UInt16(bigEndian: sin.sin_port))
    }

    /// TCP: exactly `count` bytes, or nil on timeout/close.
    func read(exactly count: Int) -> [UInt8]? {
        var out: [UInt8] = []
        while out.count < count {
            var buffer = [UInt8](repeating: 0, count: count - out.count)
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { return nil }
            out += buffer[0..<n]
        }
        return out
    }
}

enum SocketError: Error { case failed(String) }
