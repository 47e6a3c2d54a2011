import RTCBase
import Testing

@Suite struct SequenceNumberTests {
    @Test func serialArithmeticWraps() {
        #expect(SequenceNumber(0).isNewer(than: SequenceNumber(65535)))
        #expect(!SequenceNumber(65535).isNewer(than: SequenceNumber(0)))
        #expect(SequenceNumber(100).isNewer(than: SequenceNumber(99)))
        #expect(!SequenceNumber(5).isNewer(than: SequenceNumber(5)))
        #expect((SequenceNumber(65535) &+ 2).rawValue == 1)
    }

    @Test func unwrapperCountsWrapsAndPlacesReorderedPackets() {
        var u = SequenceUnwrapper()
        #expect(u.unwrap(SequenceNumber(65534)) == 65534)
        #expect(u.unwrap(SequenceNumber(65535)) == 65535)
        #expect(u.unwrap(SequenceNumber(1)) == 65537)
        #expect(u.unwrap(SequenceNumber(65533)) == 65533)   // late, from before the wrap
        #expect(u.unwrap(SequenceNumber(2)) == 65538)
        var v = SequenceUnwrapper()
        var last: Int64 = 0
        for i in 0..<200_000 { last = v.unwrap(SequenceNumber(UInt16(truncatingIfNeeded: i))) }
        #expect(last == 199_999)
    }
}

@Suite struct ByteIOTests {
    @Test func writesAndReadsBigEndian() throws {
        var storage = [UInt8](repeating: 0, count: 12)
        let (written, overflow) = try storage.withUnsafeMutableBytes { raw throws -> (Int, ByteReaderError?) in
            var w = ByteWriter(raw)
            try w.write(UInt8(0xAB))
            try w.write(UInt16(0x0102))
            try w.write(UInt32(0xDEADBEEF))
            try w.pad(to: 4)
            let written = w.offset
            try w.write(UInt32(1))
            do {
                try w.write(UInt32(2))
                return (written, nil)
            } catch {
                return (written, error as? ByteReaderError)
            }
        }
        #expect(written == 8)
        #expect(overflow == .truncated(needed: 4, available: 0))
        #expect(storage.prefix(8) == [0xAB, 0x01, 0x02, 0xDE, 0xAD, 0xBE, 0xEF, 0x00])
        let values = try storage.withUnsafeBytes { raw throws -> [UInt64] in
            var r = ByteReader(raw)
            var out: [UInt64] = []
            out.append(UInt64(try r.readUInt8()))
            out.append(UInt64(try r.readUInt16()))
            out.append(UInt64(try r.readUInt32()))
            out.append(UInt64(try r.readBytes(1).first ?? 99))
            try r.skip(0)
            out.append(UInt64(try r.readUInt32()))
            do {
                _ = try r.readUInt32()
                out.append(1)
            } catch {
                out.append((error as? ByteReaderError) == .truncated(needed: 4, available: 0) ? 0 : 2)
            }
            return out
        }
        #expect(values == [0xAB, 0x0102, 0xDEADBEEF, 0, 1, 0])
    }

    @Test func readsTwentyFourBits() throws {
        let value = try [UInt8]([0x12, 0x34, 0x56]).withUnsafeBytes { raw throws -> UInt32 in
            var r = ByteReader(raw)
            return try r.readUInt24()
        }
        #expect(value == 0x123456)
    }

    @Test func truncatedInputNeverTraps() {
        for length in 0..<8 {
            let bytes = [UInt8](repeating: 0xFF, count: length)
            bytes.withUnsafeBytes { raw in
                var r = ByteReader(raw)
                _ = try? r.readUInt64()
                _ = try? r.readUInt24()
                _ = try? r.readBytes(9)
                _ = try? r.skip(100)
            }
        }
    }
}

@Suite struct DemuxTests {
    @Test func classifiesByFirstByte() {
        #expect(PacketKind.classify([0x00, 0x01]) == .stun)
        #expect(PacketKind.classify([0x16, 0xfe, 0xfd]) == .dtls)        // DTLS handshake record
        #expect(PacketKind.classify([0x40, 0x00]) == .turnChannel)
        #expect(PacketKind.classify([0x80, 0x60]) == .rtp)               // PT 96
        #expect(PacketKind.classify([0x80, 0xE0]) == .rtp)               // marker + PT 96
        #expect(PacketKind.classify([0x80, 0xC8]) == .rtcp)              // SR (200)
        #expect(PacketKind.classify([0x81, 0xCD]) == .rtcp)              // RTPFB (205)
        #expect(PacketKind.classify([0x80]) == .unknown)
        #expect(PacketKind.classify([]) == .unknown)
        #expect(PacketKind.classify([0xFF, 0x00]) == .unknown)
    }
}

@Suite struct TransportAddressTests {
    @Test func parsesAndPrintsIPv4AndIPv6() {
        #expect(IPAddress("192.0.2.1") == .v4(0xC000_0201))
        #expect(IPAddress("192.0.2.256") == nil)
        #expect(IPAddress("1.2.3") == nil)
        #expect(IPAddress("::1")?.isLoopback == true)
        #expect(IPAddress("2001:db8::1")?.description == "2001:db8::1")
        #expect(IPAddress("2001:db8:0:0:1:0:0:1")?.description == "2001:db8::1:0:0:1")
        #expect(IPAddress("::ffff:192.0.2.1") == .v6(high: 0, low: 0x0000_FFFF_C000_0201))
        #expect(IPAddress("1::2::3") == nil)
        #expect(IPAddress("fe80::1")?.isLinkLocal == true)
        #expect(IPAddress("10.1.2.3")?.isPrivate == true)
        #expect(IPAddress("172.16.0.1")?.isPrivate == true)
        #expect(IPAddress("172.32.0.1")?.isPrivate == false)
        #expect(IPAddress(bytes: IPAddress("2001:db8::7")!.bytes) == IPAddress("2001:db8::7"))
        #expect(TransportAddress("127.0.0.1:3478")?.port == 3478)
        #expect(TransportAddress("[2001:db8::1]:443")?.description == "[2001:db8::1]:443")
        #expect(TransportAddress("127.0.0.1") == nil)
    }

    @Test func instantArithmetic() {
        let t = Instant.milliseconds(1500)
        #expect(t + .milliseconds(500) == .seconds(2))
        #expect(Instant.seconds(3) - t == .milliseconds(1500))
        #expect(Duration.seconds(2).nanoseconds == 2_000_000_000)
    }
}
