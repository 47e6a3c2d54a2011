import RTCBase
import Testing
@testable import RTP

@Suite struct RTCPTests {
    static let block = RTCPReportBlock(
        ssrc: SSRC(0x5566_7788), fractionLost: 0x40, cumulativeLost: -2, extendedHighestSequenceNumber: 0x0001_0005,
        jitter: 16, lastSenderReport: 0x7E80_0000, delaySinceLastSenderReport: 0x0001_0000)

    static let twccPackets: [RTCPTransportFeedback.PacketResult] = (0..<40).map { (i: Int) -> RTCPTransportFeedback.PacketResult in
        let delta: Int16? = i % 5 == 3 ? nil : (i % 7 == 0 ? -300 : Int16(i * 7))
        return RTCPTransportFeedback.PacketResult(sequenceNumber: 65530 &+ UInt16(i), delta: delta)
    }

    /// One of every packet type the module decodes, plus one it does not.
    static let everyType: [RTCPPacket] = {
        var out: [RTCPPacket] = []
        let sr = RTCPSenderReport(
            ssrc: SSRC(0x1122_3344), ntpTimestamp: 0x83AA_7E80_0000_0001, rtpTimestamp: 256, packetCount: 10,
            octetCount: 1000, reports: [block, RTCPReportBlock(ssrc: SSRC(1), cumulativeLost: 0x7F_FFFF)])
        out.append(.senderReport(sr))
        let sr2 = RTCPSenderReport(ssrc: SSRC(1), ntpTimestamp: 0, rtpTimestamp: 0, packetCount: 0, octetCount: 0,
                                   reports: [], profileExtension: [1, 2, 3, 4])
        out.append(.senderReport(sr2))
        out.append(.receiverReport(RTCPReceiverReport(ssrc: SSRC(9), reports: [block])))
        out.append(.receiverReport(RTCPReceiverReport(ssrc: SSRC(9))))
        let c1 = RTCPSourceDescription.Chunk(source: SSRC(1), items: [
            RTCPSourceDescription.Item(type: .cname, text: "abc"), RTCPSourceDescription.Item(type: .tool, text: "parley")])
        let c2 = RTCPSourceDescription.Chunk(source: SSRC(2), items: [])
        let c3 = RTCPSourceDescription.Chunk(source: SSRC(3), items: [
            RTCPSourceDescription.Item(type: .note, text: String(repeating: "x", count: 255))])
        out.append(.sourceDescription(RTCPSourceDescription(chunks: [c1, c2, c3])))
        out.append(.goodbye(RTCPGoodbye(sources: [SSRC(1), SSRC(2)], reason: "bye!")))
        out.append(.goodbye(RTCPGoodbye(sources: [SSRC(1)], reason: "odd")))
        out.append(.goodbye(RTCPGoodbye(sources: [])))
        out.append(.application(RTCPApplicationDefined(subtype: 31, ssrc: SSRC(5), name: 0x5052_4C59, data: [1, 2, 3, 4, 5, 6, 7, 8])))
        let pairs = [RTCPNACKPair(packetID: 100, lostBitmask: 0x8001), RTCPNACKPair(packetID: 65535)]
        out.append(.genericNACK(RTCPGenericNACK(senderSSRC: SSRC(1), mediaSSRC: SSRC(2), pairs: pairs)))
        let twcc = RTCPTransportFeedback(
            senderSSRC: SSRC(1), mediaSSRC: SSRC(2), baseSequenceNumber: 65530, referenceTime: 0xFF_FFFF,
            feedbackPacketCount: 255, packets: twccPackets)
        out.append(.transportFeedback(twcc))
        out.append(.pictureLossIndication(RTCPPictureLossIndication(senderSSRC: SSRC(1), mediaSSRC: SSRC(0xAABB_CCDD))))
        let fir = RTCPFullIntraRequest(senderSSRC: SSRC(1), entries: [
            RTCPFullIntraRequest.Entry(ssrc: SSRC(7), sequenceNumber: 3),
            RTCPFullIntraRequest.Entry(ssrc: SSRC(8), sequenceNumber: 255)])
        out.append(.fullIntraRequest(fir))
        out.append(.receiverEstimatedMaxBitrate(RTCPReceiverEstimatedMaxBitrate(
            senderSSRC: SSRC(1), bitrate: 250_000, ssrcs: [SSRC(10), SSRC(11), SSRC(12)])))
        out.append(.unknown(RTCPUnknownPacket(packetType: 207, count: 0, body: [0, 0, 0, 1, 4, 0, 0, 2, 1, 2, 3, 4])))
        out.append(.unknown(RTCPUnknownPacket(packetType: 206, count: 15, body: [0, 0, 0, 1, 0, 0, 0, 0, 0x41, 0x42, 0x43, 0x44])))
        return out
    }()

    @Test(arguments: 0..<everyType.count)
    func roundTripEachType(_ index: Int) throws {
        let packet = Self.everyType[index]
        let bytes = try RTCPCompound.serialize([packet])
        #expect(bytes.count == packet.marshalSize)
        #expect(bytes.count % 4 == 0)
        #expect(PacketKind.classify(bytes) == .rtcp)
        let parsed = try RTCPCompound.parse(bytes)
        #expect(parsed == [packet])
        // Re-serializing gives identical bytes.
        #expect(try RTCPCompound.serialize(parsed) == bytes)
    }

    @Test func roundTripCompound() throws {
        let bytes = try RTCPCompound.serialize(Self.everyType)
        #expect(try RTCPCompound.parse(bytes, requireReportFirst: true) == Self.everyType)
        // The iterator sees the same packets without decoding them.
        var types: [UInt8] = []
        try bytes.withUnsafeBytes { b in
            var it = RTCPCompoundIterator(b)
            while let p = try it.next() { types.append(p.packetType) }
        }
        #expect(types == Self.everyType.map { try! RTCPCompound.serialize([$0])[1] })
    }

    @Test func senderReportFromRFCLayout() throws {
        // RFC 3550 §6.4.1, one report block; written field by field.
        let bytes = hex("""
            81 C8 00 0C  11 22 33 44  83 AA 7E 80  00 00 00 01  00 00 01 00  00 00 00 0A  00 00 03 E8
            55 66 77 88  40 FF FF FE  00 01 00 05  00 00 00 10  7E 80 00 00  00 01 00 00
            """)
        let parsed = try RTCPCompound.parse(bytes)
        #expect(parsed == [Self.everyType[0].withReports([Self.block])])
        #expect(try RTCPCompound.serialize(parsed) == bytes)
    }

    @Test func sdesAndByeFromRFCLayout() throws {
        // SDES (§6.5) with a CNAME "abc" padded to a word, then BYE (§6.6)
        // with reason "bye": reduced-size style (no SR/RR first).
        let bytes = hex("""
            81 CA 00 03  11 22 33 44  01 03 61 62 63 00 00 00
            81 CB 00 02  11 22 33 44  03 62 79 65
            """)
        let parsed = try RTCPCompound.parse(bytes)
        #expect(parsed == [
            .sourceDescription(RTCPSourceDescription(source: SSRC(0x1122_3344), cname: "abc")),
            .goodbye(RTCPGoodbye(sources: [SSRC(0x1122_3344)], reason: "bye")),
        ])
        #expect(throws: RTCPError.firstPacketNotReport) { try RTCPCompound.parse(bytes, requireReportFirst: true) }
        if case .sourceDescription(let s) = parsed[0] { #expect(s.chunks[0].items[0].text == "abc") }
        if case .goodbye(let g) = parsed[1] { #expect(g.reasonText == "bye") }
    }

    @Test func paddedLastPacketIsAccepted() throws {
        // RR with the P bit and 4 bytes of padding (count in the last octet).
        let bytes = hex("80 C9 00 01 00 00 00 07  A0 C9 00 02 00 00 00 08 00 00 00 04")
        let parsed = try RTCPCompound.parse(bytes)
        #expect(parsed == [.receiverReport(RTCPReceiverReport(ssrc: SSRC(7))), .receiverReport(RTCPReceiverReport(ssrc: SSRC(8)))])
    }

    static let malformed: [(String, [UInt8], RTCPError)] = [
        ("empty", [], .empty),
        ("short header", hex("80 C9 00"), .lengthOverrun),
        ("version 1", hex("40 C9 00 01 00 00 00 01"), .badVersion(1)),
        ("version 0", hex("00 C9 00 01 00 00 00 01"), .badVersion(0)),
        ("length overrun", hex("80 C9 00 05 00 00 00 01"), .lengthOverrun),
        ("second packet overruns", hex("80 C9 00 01 00 00 00 01  80 C9 00 01 00 00"), .lengthOverrun),
        ("trailing bytes", hex("80 C9 00 01 00 00 00 01  80"), .lengthOverrun),
        ("padding not last", hex("A0 C9 00 01 00 00 00 01  80 C9 00 01 00 00 00 01"), .paddingNotLast),
        ("zero pad count", hex("A0 C9 00 01 00 00 00 00"), .badPadding),
        ("pad count into header", hex("A0 C9 00 01 00 00 00 05"), .badPadding),
        ("zero-length RR", hex("80 C9 00 00"), .truncated),
        ("zero-length SR", hex("80 C8 00 00"), .truncated),
        ("zero-length PLI", hex("81 CE 00 00"), .truncated),
        ("zero-length NACK", hex("81 CD 00 00"), .truncated),
        ("RR missing a block", hex("81 C9 00 01 00 00 00 01"), .truncated),
        ("SR cut short", hex("80 C8 00 02 00 00 00 01 00 00 00 00"), .truncated),
        ("SDES item overruns", hex("81 CA 00 02 00 00 00 01 01 09 61 62"), .truncated),
        ("SDES missing chunk", hex("82 CA 00 02 00 00 00 01 00 00 00 00"), .truncated),
        ("BYE reason overruns", hex("81 CB 00 02 00 00 00 01 08 61 62 63"), .truncated),
        ("BYE missing source", hex("82 CB 00 01 00 00 00 01"), .truncated),
        ("APP without name", hex("80 CC 00 01 00 00 00 01"), .truncated),
        ("NACK FCI not whole (padding)", hex("A1 CD 00 04 00 00 00 01 00 00 00 02 00 01 00 00 00 00 00 02"), .malformed),
        ("FIR entry not whole", hex("84 CE 00 03 00 00 00 01 00 00 00 00 00 00 00 07"), .malformed),
        ("REMB cut short", hex("8F CE 00 04 00 00 00 01 00 00 00 00 52 45 4D 42 01 00 00 10"), .truncated),
        ("TWCC reserved RLE symbol", hex("8F CD 00 05 00 00 00 01 00 00 00 02 00 00 00 01 00 00 00 00 60 01 00 00"), .malformed),
        ("TWCC reserved vector symbol", hex("8F CD 00 05 00 00 00 01 00 00 00 02 00 00 00 01 00 00 00 00 F0 00 00 00"), .malformed),
        ("TWCC deltas missing", hex("8F CD 00 05 00 00 00 01 00 00 00 02 00 00 00 03 00 00 00 00 20 03 01 02"), .truncated),
        ("TWCC chunks missing", hex("8F CD 00 04 00 00 00 01 00 00 00 02 00 00 00 20 00 00 00 00"), .truncated),
    ]

    @Test(arguments: 0..<malformed.count)
    func malformedBattery(_ index: Int) {
        let (name, bytes, error) = Self.malformed[index]
        #expect(throws: error, "\(name)") { try RTCPCompound.parse(bytes) }
    }

    @Test func headerErrorsFromValidate() {
        #expect(throws: RTCPError.paddingNotLast) {
            try hex("A0 C9 00 01 00 00 00 01  80 C9 00 01 00 00 00 01").withUnsafeBytes { try RTCPCompound.validate($0) }
        }
        #expect(throws: Never.self) {
            try hex("80 C9 00 00").withUnsafeBytes { try RTCPCompound.validate($0) }
        }
    }

    @Test func buildErrors() {
        let tooManyBlocks = RTCPReceiverReport(ssrc: SSRC(1), reports: Array(repeating: Self.block, count: 32))
        #expect(throws: RTCPError.invalidValue) { try RTCPCompound.serialize([.receiverReport(tooManyBlocks)]) }
        let longItem = RTCPSourceDescription(chunks: [.init(source: SSRC(1), items: [.init(type: .cname, value: Array(repeating: 1, count: 256))])])
        #expect(throws: RTCPError.invalidValue) { try RTCPCompound.serialize([.sourceDescription(longItem)]) }
        let unaligned = RTCPApplicationDefined(subtype: 0, ssrc: SSRC(1), name: 0, data: [1])
        #expect(throws: RTCPError.invalidValue) { try RTCPCompound.serialize([.application(unaligned)]) }
        var small = [UInt8](repeating: 0, count: 11)
        small.withUnsafeMutableBytes { b in
            var w = ByteWriter(b)
            #expect(throws: RTCPError.bufferTooSmall) {
                try RTCPPictureLossIndication(senderSSRC: SSRC(1), mediaSSRC: SSRC(2)).write(to: &w)
            }
        }
    }

    @Test func cumulativeLostIsClampedTo24Bits() throws {
        let rr = RTCPReceiverReport(ssrc: SSRC(1), reports: [
            RTCPReportBlock(ssrc: SSRC(2), cumulativeLost: 10_000_000), RTCPReportBlock(ssrc: SSRC(3), cumulativeLost: -10_000_000)])
        let parsed = try RTCPCompound.parse(try RTCPCompound.serialize([.receiverReport(rr)]))
        guard case .receiverReport(let r) = parsed[0] else { Issue.record("not RR"); return }
        #expect(r.reports.map(\.cumulativeLost) == [0x7F_FFFF, -0x80_0000])
    }

    @Test func feedbackViewsGiveSenderSSRC() throws {
        let bytes = try RTCPCompound.serialize([.pictureLossIndication(RTCPPictureLossIndication(senderSSRC: SSRC(42), mediaSSRC: SSRC(43)))])
        try bytes.withUnsafeBytes { b in
            var it = RTCPCompoundIterator(b)
            let p = try #require(try it.next())
            #expect(p.senderSSRC == SSRC(42))
            #expect(p.count == 1 && p.packetType == 206)
            #expect(throws: RTCPError.wrongType) { try RTCPGenericNACK(parsing: p) }
            #expect(throws: RTCPError.wrongType) { try RTCPSenderReport(parsing: p) }
        }
    }
}

extension RTCPPacket {
    func withReports(_ blocks: [RTCPReportBlock]) -> RTCPPacket {
        guard case .senderReport(var sr) = self else { return self }
        sr.reports = blocks
        return .senderReport(sr)
    }
}
