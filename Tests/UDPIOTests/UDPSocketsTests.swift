import Glibc
import RTCBase
import Testing
import UDPIO

/// The raw UDP layer under the TURN edge, over real loopback sockets.
@Suite("UDPIO: recvmmsg slots, sendmmsg queue, GSO runs")
struct UDPSocketsTests {
    static let loopback = TransportAddress(ip: .v4(0x7F00_0001), port: 0)

    /// Reads whatever arrives on `fd` within `timeoutMS` (waiting with poll).
    func drain(_ fd: Int32, slots: ReceiveSlots, expect: Int, timeoutMS: Int32 = 2000) -> [(bytes: [UInt8], from: TransportAddress?)] {
        var got: [(bytes: [UInt8], from: TransportAddress?)] = []
        while got.count < expect {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, timeoutMS) == 1 else { break }
            let (first, count) = slots.receive(from: fd, limit: slots.free)
            for slot in first..<(first + max(0, count)) {
                let d = slots.datagram(slot)
                got.append((Array(d.bytes), SocketAddressBytes.read(d.source, length: d.sourceLength)))
            }
            slots.reset()
        }
        return got
    }

    @Test func socketAddressBytesRoundTrip() {
        let addresses = [
            TransportAddress(ip: .v4(0xC000_0201), port: 3478),
            TransportAddress(ip: .v6(high: 0x2001_0DB8_0000_0000, low: 0x0000_0000_0000_0001), port: 65535),
        ]
        var storage = [UInt8](repeating: 0xAA, count: SocketAddressBytes.slotSize)
        for address in addresses {
            let back = storage.withUnsafeMutableBytes { raw -> TransportAddress? in
                let length = SocketAddressBytes.write(address, to: raw.baseAddress!)
                return SocketAddressBytes.read(raw.baseAddress!, length: length)
            }
            #expect(back == address)
        }
        // Unknown family or a short length is nil, never a guess.
        storage = [UInt8](repeating: 0, count: SocketAddressBytes.slotSize)
        #expect(storage.withUnsafeBytes { SocketAddressBytes.read($0.baseAddress!, length: 28) } == nil)
    }

    @Test func mixedBatchArrivesWholeInOrderWithGSORuns() throws {
        let a = try UDPSocket.bind(Self.loopback, receiveBuffer: 1 << 20, sendBuffer: 1 << 20)
        let b = try UDPSocket.bind(Self.loopback, receiveBuffer: 1 << 20, sendBuffer: 1 << 20)
        let c = try UDPSocket.bind(Self.loopback, receiveBuffer: 1 << 20, sendBuffer: 1 << 20)
        defer { close(a); close(b); close(c) }
        let toB = try #require(UDPSocket.localAddress(b))
        let toC = try #require(UDPSocket.localAddress(c))
        let queue = SendQueue(capacity: 64, arenaSize: 64 * 1024)
        // To B: 10 × 1200 bytes (a run), then a shorter tail; header + borrowed payload pieces.
        let payload = (0..<1196).map { UInt8(truncatingIfNeeded: $0) }
        var expectedB: [[UInt8]] = []
        payload.withUnsafeBytes { body in
            for i in 0..<10 {
                queue.append(fd: a, to: toB, reserving: 4, payload: body) { out in
                    out.storeBytes(of: UInt32(i).bigEndian, as: UInt32.self)
                    return 4
                }
                expectedB.append(withUnsafeBytes(of: UInt32(i).bigEndian, Array.init) + payload)
            }
        }
        let tail: [UInt8] = [1, 2, 3]
        tail.withUnsafeBytes { queue.append(fd: a, to: toB, copying: $0) }
        expectedB.append(tail)
        // Interleaved: to C with different sizes (no run), then B again.
        let sizes = [40, 60, 40, 20]
        for (i, size) in sizes.enumerated() {
            let bytes = [UInt8](repeating: UInt8(i), count: size)
            bytes.withUnsafeBytes { queue.append(fd: a, to: toC, copying: $0) }
        }
        let last = [UInt8](repeating: 9, count: 1200)
        last.withUnsafeBytes { queue.append(fd: a, to: toB, copying: $0) }
        expectedB.append(last)
        #expect(queue.count == 16)
        queue.flush()
        #expect(queue.count == 0)
        #expect(queue.sent == 16)
        #expect(queue.failed == 0)
        #expect(queue.segmented >= 10)  // the 10 equal datagrams (and their tail) left as one GSO send

        let slots = ReceiveSlots(slotCount: 32, slotSize: 2048)
        let atB = drain(b, slots: slots, expect: expectedB.count)
        #expect(atB.map(\.bytes) == expectedB)
        let fromA = try #require(UDPSocket.localAddress(a))
        #expect(atB.allSatisfy { $0.from == fromA })
        let atC = drain(c, slots: slots, expect: sizes.count)
        #expect(atC.map(\.bytes.count) == sizes)
        #expect(atC.enumerated().allSatisfy { i, d in d.bytes.allSatisfy { $0 == UInt8(i) } })
    }

    @Test func withoutSegmentationEveryDatagramIsItsOwnMessage() throws {
        let a = try UDPSocket.bind(Self.loopback, receiveBuffer: 1 << 20, sendBuffer: 1 << 20)
        let b = try UDPSocket.bind(Self.loopback, receiveBuffer: 1 << 20, sendBuffer: 1 << 20)
        defer { close(a); close(b) }
        let to = try #require(UDPSocket.localAddress(b))
        let queue = SendQueue(capacity: 8, arenaSize: 4096, segmentation: false)
        // More than the capacity: append flushes by itself.
        for i in 0..<20 {
            let bytes = [UInt8](repeating: UInt8(i), count: 100)
            bytes.withUnsafeBytes { queue.append(fd: a, to: to, copying: $0) }
        }
        queue.flush()
        #expect(queue.sent == 20)
        #expect(queue.segmented == 0)
        let got = drain(b, slots: ReceiveSlots(slotCount: 8, slotSize: 256), expect: 20)
        #expect(got.map { $0.bytes.first } == (0..<20).map { UInt8($0) })
    }

    @Test func oversizeDatagramsAreCutAndFlagged() throws {
        let a = try UDPSocket.bind(Self.loopback, receiveBuffer: 1 << 20, sendBuffer: 1 << 20)
        let b = try UDPSocket.bind(Self.loopback, receiveBuffer: 1 << 20, sendBuffer: 1 << 20)
        defer { close(a); close(b) }
        let queue = SendQueue(capacity: 4, arenaSize: 8192)
        let big = [UInt8](repeating: 7, count: 3000)
        big.withUnsafeBytes { queue.append(fd: a, to: UDPSocket.localAddress(b)!, copying: $0) }
        queue.flush()
        let slots = ReceiveSlots(slotCount: 4, slotSize: 2048)
        var p = pollfd(fd: b, events: Int16(POLLIN), revents: 0)
        #expect(poll(&p, 1, 2000) == 1)
        let (first, count) = slots.receive(from: b, limit: 4)
        #expect(count == 1)
        let d = slots.datagram(first)
        #expect(d.truncated)
        #expect(d.bytes.count == 2048)
    }

    @Test func bindingATakenPortFailsWithErrno() throws {
        let a = try UDPSocket.bind(Self.loopback, receiveBuffer: 0, sendBuffer: 0)
        defer { close(a) }
        let taken = try #require(UDPSocket.localAddress(a))
        #expect(throws: SocketCallError.self) { _ = try UDPSocket.bind(taken, receiveBuffer: 0, sendBuffer: 0) }
    }
}
