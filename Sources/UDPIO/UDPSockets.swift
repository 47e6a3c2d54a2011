import CSockets
import Glibc
import RTCBase

/// A failed socket call, with the errno it left.
public struct SocketCallError: Error, CustomStringConvertible, Sendable {
    public var call: String
    public var code: Int32
    public init(call: String, code: Int32) {
        self.call = call
        self.code = code
    }
    public var description: String { "\(call): \(String(cString: strerror(code))) (errno \(code))" }
}

/// Raw non-blocking UDP sockets for the TURN edge's own event loop: the
/// media hot path reads and writes them with recvmmsg/sendmmsg into
/// preallocated buffers, so a datagram in or out allocates nothing.
public enum UDPSocket {
    /// A non-blocking UDP socket bound to `address` (port 0: any free port).
    public static func bind(_ address: TransportAddress, receiveBuffer: Int, sendBuffer: Int) throws(SocketCallError) -> Int32 {
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
    public static func localAddress(_ fd: Int32) -> TransportAddress? {
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
    public var isV4: Bool { if case .v4 = self { return true } else { return false } }
}

/// `sockaddr_in` / `sockaddr_in6` bytes ⇄ `TransportAddress`, by offset: a
/// slot of `sockaddr_in6` size holds either.
public enum SocketAddressBytes {
    public static let slotSize = MemoryLayout<sockaddr_in6>.size

    /// Writes `address` as a sockaddr at `p` (at least `slotSize` bytes) and returns its length.
    @inline(__always)
    public static func write(_ address: TransportAddress, to p: UnsafeMutableRawPointer) -> socklen_t {
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
    public static func read(_ p: UnsafeRawPointer, length: socklen_t) -> TransportAddress? {
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
public final class ReceiveSlots {
    public let slotCount: Int
    public let slotSize: Int
    private let storage: UnsafeMutableRawPointer
    private let names: UnsafeMutableRawPointer
    private let iovecs: UnsafeMutablePointer<iovec>
    private let headers: UnsafeMutablePointer<parley_mmsghdr>
    /// Slots holding datagrams not yet released by `reset()`.
    public private(set) var used = 0

    public init(slotCount: Int, slotSize: Int) {
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

    public var free: Int { slotCount - used }

    /// Reads up to `limit` datagrams (no more than `free`) from `fd` into the
    /// next slots, `first..<first + count`. `count` is 0 when nothing is
    /// waiting, -errno on an error.
    public func receive(from fd: Int32, limit: Int) -> (first: Int, count: Int) {
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
    public func datagram(_ slot: Int) -> (bytes: UnsafeRawBufferPointer, source: UnsafeRawPointer, sourceLength: socklen_t, truncated: Bool) {
        let header = headers[slot]
        return (UnsafeRawBufferPointer(start: storage + slot * slotSize, count: Int(header.msg_len)),
                UnsafeRawPointer(names + slot * SocketAddressBytes.slotSize), header.msg_hdr.msg_namelen,
                header.msg_hdr.msg_flags & Int32(MSG_TRUNC) != 0)
    }

    /// As `datagram(_:)`, with the bytes writable: the edge may change a
    /// datagram in place (decrypt SRTP) before sending it on.
    @inline(__always)
    public func mutableDatagram(_ slot: Int) -> (bytes: UnsafeMutableRawBufferPointer, source: UnsafeRawPointer, sourceLength: socklen_t, truncated: Bool) {
        let header = headers[slot]
        return (UnsafeMutableRawBufferPointer(start: storage + slot * slotSize, count: Int(header.msg_len)),
                UnsafeRawPointer(names + slot * SocketAddressBytes.slotSize), header.msg_hdr.msg_namelen,
                header.msg_hdr.msg_flags & Int32(MSG_TRUNC) != 0)
    }

    /// Every slot is free again: call only after what pointed into them was sent.
    public func reset() { used = 0 }
}

/// Datagrams to send, grouped by socket into sendmmsg calls at `flush()`.
/// Each is up to two pieces: bytes the queue owns (in its arena) and/or a
/// payload that stays where it was received (`ReceiveSlots`), so relaying
/// copies nothing.
///
/// Runs of datagrams to the same destination with the same size (a video
/// frame split into equal packets, a client's burst of requests) leave as
/// one UDP GSO send (`UDP_SEGMENT`, Linux 4.18+): the kernel routes and
/// builds one buffer for the run and cuts it into datagrams on the way out,
/// which is most of the per-datagram cost. The receiver sees ordinary
/// datagrams. If the kernel refuses segmentation (no checksum offload on the
/// route), the queue stops using it and sends them one by one.
public final class SendQueue {
    public let capacity: Int
    public let arenaSize: Int
    /// Whether same-destination runs go out as GSO sends (on by default).
    public private(set) var segmentation: Bool
    private let arena: UnsafeMutableRawPointer
    private var arenaUsed = 0
    private let names: UnsafeMutableRawPointer
    private let nameLengths: UnsafeMutablePointer<socklen_t>
    private let iovecs: UnsafeMutablePointer<iovec>
    private let pieces: UnsafeMutablePointer<Int>
    private let lengths: UnsafeMutablePointer<Int>
    private let fds: UnsafeMutablePointer<Int32>
    private let done: UnsafeMutablePointer<Bool>
    // Scratch for building one socket's sendmmsg call.
    private let members: UnsafeMutablePointer<Int>
    private let headers: UnsafeMutablePointer<parley_mmsghdr>
    private let messageIovecs: UnsafeMutablePointer<iovec>
    private let controls: UnsafeMutableRawPointer
    private let messageFirst: UnsafeMutablePointer<Int>
    private let messageCount: UnsafeMutablePointer<Int>
    public private(set) var count = 0
    /// Datagrams the kernel refused (full socket buffer, unreachable...), since start.
    public private(set) var failed = 0
    public private(set) var sent = 0
    /// Datagrams that left as part of a GSO run, since start.
    public private(set) var segmented = 0

    /// Most datagrams in one GSO send, and most bytes (under IPv4's 65,507).
    static let maxSegments = 64
    static let maxSegmentedBytes = 65_000
    private static let controlSpace = 24  // CMSG_SPACE(sizeof(uint16_t)) on 64-bit Linux
    private static let solUDP: Int32 = 17
    private static let udpSegment: Int32 = 103

    public init(capacity: Int, arenaSize: Int, segmentation: Bool = true) {
        self.capacity = capacity
        self.arenaSize = arenaSize
        self.segmentation = segmentation
        arena = .allocate(byteCount: arenaSize, alignment: 16)
        names = .allocate(byteCount: capacity * SocketAddressBytes.slotSize, alignment: 8)
        nameLengths = .allocate(capacity: capacity)
        iovecs = .allocate(capacity: capacity * 2)
        pieces = .allocate(capacity: capacity)
        lengths = .allocate(capacity: capacity)
        fds = .allocate(capacity: capacity)
        done = .allocate(capacity: capacity)
        members = .allocate(capacity: capacity)
        headers = .allocate(capacity: capacity)
        messageIovecs = .allocate(capacity: capacity * 2)
        controls = .allocate(byteCount: capacity * SendQueue.controlSpace, alignment: 8)
        messageFirst = .allocate(capacity: capacity)
        messageCount = .allocate(capacity: capacity)
    }

    deinit {
        arena.deallocate()
        names.deallocate()
        nameLengths.deallocate()
        iovecs.deallocate()
        pieces.deallocate()
        lengths.deallocate()
        fds.deallocate()
        done.deallocate()
        members.deallocate()
        headers.deallocate()
        messageIovecs.deallocate()
        controls.deallocate()
        messageFirst.deallocate()
        messageCount.deallocate()
    }

    /// Room for a datagram with `bytes` owned bytes; flushes first when full.
    @inline(__always)
    private func makeRoom(_ bytes: Int) {
        if count == capacity || arenaUsed + bytes > arenaSize { flush() }
    }

    /// Queues `owned` bytes written by `body` into the arena (it returns
    /// how many; nil cancels), then an optional borrowed `payload`.
    @inline(__always)
    public func append(fd: Int32, to address: TransportAddress, reserving: Int, payload: UnsafeRawBufferPointer? = nil,
                       _ body: (UnsafeMutableRawBufferPointer) -> Int?) {
        precondition(reserving <= arenaSize)
        makeRoom(reserving)
        let start = arena + arenaUsed
        guard let written = body(UnsafeMutableRawBufferPointer(start: start, count: reserving)) else { return }
        arenaUsed += (written + 7) & ~7
        let i = count
        var n = 0
        var length = 0
        if written > 0 {
            iovecs[2 * i] = iovec(iov_base: start, iov_len: written)
            n = 1
            length = written
        }
        if let payload, payload.count > 0 {
            iovecs[2 * i + n] = iovec(iov_base: UnsafeMutableRawPointer(mutating: payload.baseAddress), iov_len: payload.count)
            n += 1
            length += payload.count
        }
        pieces[i] = n
        lengths[i] = length
        fds[i] = fd
        nameLengths[i] = SocketAddressBytes.write(address, to: names + i * SocketAddressBytes.slotSize)
        count += 1
    }

    /// Queues a borrowed payload alone (valid until the next flush).
    @inline(__always)
    public func append(fd: Int32, to address: TransportAddress, payload: UnsafeRawBufferPointer) {
        append(fd: fd, to: address, reserving: 0, payload: payload) { _ in 0 }
    }

    /// Queues a copy of `bytes`.
    public func append(fd: Int32, to address: TransportAddress, copying bytes: UnsafeRawBufferPointer) {
        append(fd: fd, to: address, reserving: bytes.count) { out in
            out.copyMemory(from: bytes)
            return bytes.count
        }
    }

    /// Sends everything queued: one sendmmsg per socket (more if the kernel
    /// takes a batch in parts). A datagram the kernel refuses is dropped and
    /// counted; a full socket buffer drops the rest of that socket's batch.
    public func flush() {
        guard count > 0 else { return }
        for i in 0..<count { done[i] = false }
        for first in 0..<count where !done[first] {
            let fd = fds[first]
            var m = 0
            for i in first..<count where !done[i] && fds[i] == fd {
                done[i] = true
                members[m] = i
                m += 1
            }
            send(fd: fd, members: 0..<m)
        }
        count = 0
        arenaUsed = 0
    }

    @inline(__always)
    private func sameDestination(_ a: Int, _ b: Int) -> Bool {
        nameLengths[a] == nameLengths[b]
            && memcmp(names + a * SocketAddressBytes.slotSize, names + b * SocketAddressBytes.slotSize, Int(nameLengths[a])) == 0
    }

    /// Sends the datagrams `members[range]` (all for `fd`), coalescing runs when segmentation is on.
    private func send(fd: Int32, members range: Range<Int>) {
        var k = 0
        var iov = 0
        var a = range.lowerBound
        while a < range.upperBound {
            let i = members[a]
            let size = lengths[i]
            var run = 1
            if segmentation, size > 0 {
                var total = size
                while a + run < range.upperBound, run < SendQueue.maxSegments {
                    let j = members[a + run]
                    guard lengths[j] > 0, lengths[j] <= size, total + lengths[j] <= SendQueue.maxSegmentedBytes,
                          sameDestination(i, j) else { break }
                    total += lengths[j]
                    run += 1
                    if lengths[j] < size { break }  // only the last segment may be shorter
                }
            }
            let firstIovec = iov
            for r in 0..<run {
                let e = members[a + r]
                for p in 0..<pieces[e] {
                    messageIovecs[iov] = iovecs[2 * e + p]
                    iov += 1
                }
            }
            var control: UnsafeMutableRawPointer?
            if run > 1 {
                let c = controls + k * SendQueue.controlSpace
                c.storeBytes(of: 18, toByteOffset: 0, as: Int.self)  // CMSG_LEN(sizeof(uint16_t))
                c.storeBytes(of: SendQueue.solUDP, toByteOffset: 8, as: Int32.self)
                c.storeBytes(of: SendQueue.udpSegment, toByteOffset: 12, as: Int32.self)
                c.storeBytes(of: UInt16(size), toByteOffset: 16, as: UInt16.self)
                control = c
            }
            headers[k].msg_hdr = msghdr(msg_name: names + i * SocketAddressBytes.slotSize, msg_namelen: nameLengths[i],
                                        msg_iov: messageIovecs + firstIovec, msg_iovlen: iov - firstIovec,
                                        msg_control: control, msg_controllen: control == nil ? 0 : SendQueue.controlSpace,
                                        msg_flags: 0)
            headers[k].msg_len = 0
            messageFirst[k] = a
            messageCount[k] = run
            k += 1
            a += run
        }
        var offset = 0
        while offset < k {
            let n = parley_sendmmsg(fd, headers + offset, UInt32(k - offset), Int32(MSG_DONTWAIT))
            if n > 0 {
                for message in offset..<(offset + Int(n)) {
                    sent += messageCount[message]
                    if messageCount[message] > 1 { segmented += messageCount[message] }
                }
                offset += Int(n)
                continue
            }
            let code = errno
            if n < 0, code == EINTR { continue }
            if n < 0, messageCount[offset] > 1, code == EIO || code == EINVAL || code == ENOPROTOOPT {
                // No segmentation on this route: from here on, one datagram per message.
                segmentation = false
                send(fd: fd, members: messageFirst[offset]..<range.upperBound)
                return
            }
            if n < 0, code == EAGAIN || code == EWOULDBLOCK || code == ENOBUFS {
                for message in offset..<k { failed += messageCount[message] }
                return
            }
            // This message was refused (EPERM, ENETUNREACH, EMSGSIZE...): skip it.
            failed += messageCount[offset]
            offset += 1
        }
    }
}
