import CSockets
import Glibc
import RTCBase

/// A failed socket call, with the errno it left.
struct SocketCallError: Error, CustomStringConvertible {
    var call: String
    var code: Int32
    var description: String { "\(call): \(String(cString: strerror(code))) (errno \(code))" }
}

/// Raw non-blocking UDP sockets for the TURN edge's own event loop: the
/// media hot path reads and writes them with recvmmsg/sendmmsg into
/// preallocated buffers, so a datagram in or out allocates nothing.
enum UDPSocket {
    /// A non-blocking UDP socket bound to `address` (port 0: any free port).
    static func bind(_ address: TransportAddress, receiveBuffer: Int, sendBuffer: Int) throws(SocketCallError) -> Int32 {
        let family = address.ip.isV4 ? AF_INET : AF_INET6
        let fd = socket(family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SocketCallError(call: "socket", code: errno) }
        // Best effort: the kernel caps these at net.core.rmem_max / wmem_max.
        setOption(fd, SO_RCVBUF, Int32(clamping: receiveBuffer))
        setOption(fd, SO_SNDBUF, Int32(clamping: sendBuffer))
        var storage = sockaddr_in6()
        let length = withUnsafeMutableBytes(of: &storage) { SocketAddressBytes.write(address, to: $0.baseAddress!) }
        let result = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, length) }
        }
        guard result == 0 else {
            let code = errno
            close(fd)
            throw SocketCallError(call: "bind \(address)", code: code)
        }
        return fd
    }

    /// The address a socket is bound to.
    static func localAddress(_ fd: Int32) -> TransportAddress? {
        var storage = sockaddr_in6()
        var length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        let result = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard result == 0 else { return nil }
        return withUnsafeBytes(of: &storage) { SocketAddressBytes.read($0.baseAddress!, length: length) }
    }

    private static func setOption(_ fd: Int32, _ name: Int32, _ value: Int32) {
        var v = value
        _ = setsockopt(fd, SOL_SOCKET, name, &v, socklen_t(MemoryLayout<Int32>.size))
    }
}

extension IPAddress {
    var isV4: Bool { if case .v4 = self { return true } else { return false } }
}

/// `sockaddr_in` / `sockaddr_in6` bytes ⇄ `TransportAddress`, by offset: a
/// slot of `sockaddr_in6` size holds either.
enum SocketAddressBytes {
    static let slotSize = MemoryLayout<sockaddr_in6>.size

    /// Writes `address` as a sockaddr at `p` (at least `slotSize` bytes) and returns its length.
    @inline(__always)
    static func write(_ address: TransportAddress, to p: UnsafeMutableRawPointer) -> socklen_t {
        switch address.ip {
        case .v4(let a):
            p.storeBytes(of: sa_family_t(AF_INET), toByteOffset: 0, as: sa_family_t.self)
            p.storeBytes(of: address.port.bigEndian, toByteOffset: 2, as: UInt16.self)
            p.storeBytes(of: a.bigEndian, toByteOffset: 4, as: UInt32.self)
            p.storeBytes(of: 0, toByteOffset: 8, as: UInt64.self)
            return socklen_t(MemoryLayout<sockaddr_in>.size)
        case .v6(let high, let low):
            p.storeBytes(of: sa_family_t(AF_INET6), toByteOffset: 0, as: sa_family_t.self)
            p.storeBytes(of: address.port.bigEndian, toByteOffset: 2, as: UInt16.self)
            p.storeBytes(of: 0, toByteOffset: 4, as: UInt32.self)  // flow info
            p.storeBytes(of: high.bigEndian, toByteOffset: 8, as: UInt64.self)
            p.storeBytes(of: low.bigEndian, toByteOffset: 16, as: UInt64.self)
            p.storeBytes(of: 0, toByteOffset: 24, as: UInt32.self)  // scope id
            return socklen_t(MemoryLayout<sockaddr_in6>.size)
        }
    }

    @inline(__always)
    static func read(_ p: UnsafeRawPointer, length: socklen_t) -> TransportAddress? {
        let family = Int32(p.loadUnaligned(fromByteOffset: 0, as: sa_family_t.self))
        let port = UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
        if family == AF_INET, length >= MemoryLayout<sockaddr_in>.size {
            return TransportAddress(ip: .v4(UInt32(bigEndian: p.loadUnaligned(fromByteOffset: 4, as: UInt32.self))), port: port)
        }
        if family == AF_INET6, length >= MemoryLayout<sockaddr_in6>.size {
            return TransportAddress(ip: .v6(high: UInt64(bigEndian: p.loadUnaligned(fromByteOffset: 8, as: UInt64.self)),
                                            low: UInt64(bigEndian: p.loadUnaligned(fromByteOffset: 16, as: UInt64.self))),
                                    port: port)
        }
        return nil
    }
}

/// Datagrams read with recvmmsg into fixed slots of one buffer. Slots are
/// handed out from the front until `reset()`: the edge keeps pointing at
/// received payloads (zero-copy relaying) until it has sent what it queued.
final class ReceiveSlots {
    let slotCount: Int
    let slotSize: Int
    private let storage: UnsafeMutableRawPointer
    private let names: UnsafeMutableRawPointer
    private let iovecs: UnsafeMutablePointer<iovec>
    private let headers: UnsafeMutablePointer<parley_mmsghdr>
    /// Slots holding datagrams not yet released by `reset()`.
    private(set) var used = 0

    init(slotCount: Int, slotSize: Int) {
        self.slotCount = slotCount
        self.slotSize = slotSize
        storage = .allocate(byteCount: slotCount * slotSize, alignment: 16)
        names = .allocate(byteCount: slotCount * SocketAddressBytes.slotSize, alignment: 8)
        iovecs = .allocate(capacity: slotCount)
        headers = .allocate(capacity: slotCount)
        for i in 0..<slotCount {
            iovecs[i] = iovec(iov_base: storage + i * slotSize, iov_len: slotSize)
        }
    }

    deinit {
        storage.deallocate()
        names.deallocate()
        iovecs.deallocate()
        headers.deallocate()
    }

    var free: Int { slotCount - used }

    /// Reads up to `limit` datagrams (no more than `free`) from `fd` into the
    /// next slots, `first..<first + count`. `count` is 0 when nothing is
    /// waiting, -errno on an error.
    func receive(from fd: Int32, limit: Int) -> (first: Int, count: Int) {
        let count = min(limit, free)
        guard count > 0 else { return (used, 0) }
        for k in 0..<count {
            let i = used + k
            headers[i].msg_hdr = msghdr(msg_name: names + i * SocketAddressBytes.slotSize,
                                        msg_namelen: socklen_t(SocketAddressBytes.slotSize),
                                        msg_iov: iovecs + i, msg_iovlen: 1, msg_control: nil, msg_controllen: 0,
                                        msg_flags: 0)
            headers[i].msg_len = 0
        }
        let n = parley_recvmmsg(fd, headers + used, UInt32(count), Int32(MSG_DONTWAIT))
        if n < 0 {
            let code = errno
            return (used, code == EAGAIN || code == EWOULDBLOCK || code == EINTR ? 0 : -Int(code))
        }
        let first = used
        used += Int(n)
        return (first, Int(n))
    }

    /// The datagram in `slot`: its bytes, its source sockaddr, whether the kernel cut it.
    @inline(__always)
    func datagram(_ slot: Int) -> (bytes: UnsafeRawBufferPointer, source: UnsafeRawPointer, sourceLength: socklen_t, truncated: Bool) {
        let header = headers[slot]
        return (UnsafeRawBufferPointer(start: storage + slot * slotSize, count: Int(header.msg_len)),
                UnsafeRawPointer(names + slot * SocketAddressBytes.slotSize), header.msg_hdr.msg_namelen,
                header.msg_hdr.msg_flags & Int32(MSG_TRUNC) != 0)
    }

    /// Every slot is free again: call only after what pointed into them was sent.
    func reset() { used = 0 }
}

/// Datagrams to send, grouped by socket into sendmmsg calls at `flush()`.
/// Each is up to two pieces: bytes the queue owns (in its arena) and/or a
/// payload that stays where it was received (`ReceiveSlots`), so relaying
/// copies nothing.
final class SendQueue {
    let capacity: Int
    let arenaSize: Int
    private let arena: UnsafeMutableRawPointer
    private var arenaUsed = 0
    private let names: UnsafeMutableRawPointer
    private let nameLengths: UnsafeMutablePointer<socklen_t>
    private let iovecs: UnsafeMutablePointer<iovec>
    private let pieces: UnsafeMutablePointer<Int>
    private let fds: UnsafeMutablePointer<Int32>
    private let headers: UnsafeMutablePointer<parley_mmsghdr>
    private let done: UnsafeMutablePointer<Bool>
    private(set) var count = 0
    /// Datagrams the kernel refused (full socket buffer, unreachable...), since start.
    private(set) var failed = 0
    private(set) var sent = 0

    init(capacity: Int, arenaSize: Int) {
        self.capacity = capacity
        self.arenaSize = arenaSize
        arena = .allocate(byteCount: arenaSize, alignment: 16)
        names = .allocate(byteCount: capacity * SocketAddressBytes.slotSize, alignment: 8)
        nameLengths = .allocate(capacity: capacity)
        iovecs = .allocate(capacity: capacity * 2)
        pieces = .allocate(capacity: capacity)
        fds = .allocate(capacity: capacity)
        headers = .allocate(capacity: capacity)
        done = .allocate(capacity: capacity)
    }

    deinit {
        arena.deallocate()
        names.deallocate()
        nameLengths.deallocate()
        iovecs.deallocate()
        pieces.deallocate()
        fds.deallocate()
        headers.deallocate()
        done.deallocate()
    }

    /// Room for a datagram with `bytes` owned bytes; flushes first when full.
    @inline(__always)
    private func makeRoom(_ bytes: Int) {
        if count == capacity || arenaUsed + bytes > arenaSize { flush() }
    }

    /// Queues `owned` bytes written by `body` into the arena (it returns
    /// how many; nil cancels), then an optional borrowed `payload`.
    @inline(__always)
    func append(fd: Int32, to address: TransportAddress, reserving: Int, payload: UnsafeRawBufferPointer? = nil,
                _ body: (UnsafeMutableRawBufferPointer) -> Int?) {
        precondition(reserving <= arenaSize)
        makeRoom(reserving)
        let start = arena + arenaUsed
        guard let written = body(UnsafeMutableRawBufferPointer(start: start, count: reserving)) else { return }
        arenaUsed += (written + 7) & ~7
        let i = count
        var n = 0
        if written > 0 {
            iovecs[2 * i] = iovec(iov_base: start, iov_len: written)
            n = 1
        }
        if let payload, payload.count > 0 {
            iovecs[2 * i + n] = iovec(iov_base: UnsafeMutableRawPointer(mutating: payload.baseAddress), iov_len: payload.count)
            n += 1
        }
        pieces[i] = n
        fds[i] = fd
        nameLengths[i] = SocketAddressBytes.write(address, to: names + i * SocketAddressBytes.slotSize)
        count += 1
    }

    /// Queues a borrowed payload alone (valid until the next flush).
    @inline(__always)
    func append(fd: Int32, to address: TransportAddress, payload: UnsafeRawBufferPointer) {
        append(fd: fd, to: address, reserving: 0, payload: payload) { _ in 0 }
    }

    /// Queues a copy of `bytes`.
    func append(fd: Int32, to address: TransportAddress, copying bytes: UnsafeRawBufferPointer) {
        append(fd: fd, to: address, reserving: bytes.count) { out in
            out.copyMemory(from: bytes)
            return bytes.count
        }
    }

    /// Sends everything queued: one sendmmsg per socket (more if the kernel
    /// takes a batch in parts). A datagram the kernel refuses is dropped and
    /// counted; a full socket buffer drops the rest of that socket's batch.
    func flush() {
        guard count > 0 else { return }
        for i in 0..<count { done[i] = false }
        for first in 0..<count where !done[first] {
            let fd = fds[first]
            var k = 0
            for i in first..<count where !done[i] && fds[i] == fd {
                done[i] = true
                headers[k].msg_hdr = msghdr(msg_name: names + i * SocketAddressBytes.slotSize, msg_namelen: nameLengths[i],
                                            msg_iov: iovecs + 2 * i, msg_iovlen: pieces[i], msg_control: nil,
                                            msg_controllen: 0, msg_flags: 0)
                headers[k].msg_len = 0
                k += 1
            }
            var offset = 0
            while offset < k {
                let n = parley_sendmmsg(fd, headers + offset, UInt32(k - offset), Int32(MSG_DONTWAIT))
                if n > 0 {
                    offset += Int(n)
                    sent += Int(n)
                    continue
                }
                let code = errno
                if n < 0, code == EINTR { continue }
                if n < 0, code == EAGAIN || code == EWOULDBLOCK || code == ENOBUFS {
                    failed += k - offset
                    break
                }
                // This datagram was refused (EPERM, ENETUNREACH, EMSGSIZE...): skip it.
                failed += 1
                offset += 1
            }
        }
        count = 0
        arenaUsed = 0
    }
}
