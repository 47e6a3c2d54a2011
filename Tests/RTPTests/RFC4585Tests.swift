import RTCBase
import Testing
@testable import RTP

/// Generic NACK (RFC 4585 §6.2.1), PLI (§6.3.1) and FIR (RFC 5104 §4.3.1).
@Suite struct RFC4585Tests {
    @Test func nackFromRFCLayout() throws {
        // PID 1000 with BLP 0b1000_0000_0000_0101: 1000, 1001, 1003, 1016 lost.
        let bytes = hex("81 CD 00 03  00 00 00 01  00 00 00 02  03 E8 80 05")
        let parsed = try RTCPCompound.parse(bytes)
        guard case .genericNACK(let nack) = parsed[0] else { Issue.record("not NACK"); return }
        #expect(nack.pairs == [RTCPNACKPair(packetID: 1000, lostBitmask: 0x8005)])
        #expect(nack.lostSequenceNumbers == [1000, 1001, 1003, 1016])
        #expect(try RTCPCompound.serialize(parsed) == bytes)
    }

    @Test func minimalPairs() {
        #expect(RTCPGenericNACK.pairs(forMissing: [UInt16]()) == [])
        #expect(RTCPGenericNACK.pairs(forMissing: [5]) == [RTCPNACKPair(packetID: 5)])
        #expect(RTCPGenericNACK.pairs(forMissing: [40, 3, 1, 17, 18, 2, 2]) == [
            RTCPNACKPair(packetID: 1, lostBitmask: 0x8003), RTCPNACKPair(packetID: 18), RTCPNACKPair(packetID: 40)])
        // Straddling the wrap stays one entry.
        #expect(RTCPGenericNACK.pairs(forMissing: [1, 65534, 0, 65535]) == [RTCPNACKPair(packetID: 65534, lostBitmask: 0x0007)])
        // Entry boundary: PID+16 fits, PID+17 does not.
        #expect(RTCPGenericNACK.pairs(forMissing: [10, 26, 27]) == [
            RTCPNACKPair(packetID: 10, lostBitmask: 0x8000), RTCPNACKPair(packetID: 27)])
    }

    @Test func pairsCoverExactlyTheMissingSet() {
        var rng = SplitMix64(seed: 99)
        for _ in 0..<500 {
            let start = UInt16.random(in: 0...UInt16.max, using: &rng)
            let span = Int.random(in: 1...400, using: &rng)
            let density = Double.random(in: 0.01...1, using: &rng)
            var missing = Set<UInt16>()
            for i in 0..<span where Double.random(in: 0..<1, using: &rng) < density {
                missing.insert(start &+ UInt16(i))
            }
            let pairs = RTCPGenericNACK.pairs(forMissing: missing)
            let nack = RTCPGenericNACK(senderSSRC: SSRC(1), mediaSSRC: SSRC(2), pairs: pairs)
            let expanded = nack.lostSequenceNumbers
            #expect(Set(expanded) == missing)
            #expect(expanded.count == missing.count, "no sequence number twice")
            // Each entry starts at a missing number the previous one cannot reach,
            // which is what makes the greedy packing minimal.
            for (a, b) in zip(pairs, pairs.dropFirst()) {
                #expect(b.packetID &- a.packetID > 16)
            }
        }
    }

    @Test func pliAndFirFromRFCLayout() throws {
        let bytes = hex("""
            81 CE 00 02  00 00 00 01  00 00 00 02
            84 CE 00 04  00 00 00 01  00 00 00 00  00 00 00 02 07 00 00 00
            """)
        let parsed = try RTCPCompound.parse(bytes)
        #expect(parsed == [
            .pictureLossIndication(RTCPPictureLossIndication(senderSSRC: SSRC(1), mediaSSRC: SSRC(2))),
            .fullIntraRequest(RTCPFullIntraRequest(senderSSRC: SSRC(1), entries: [.init(ssrc: SSRC(2), sequenceNumber: 7)])),
        ])
        #expect(try RTCPCompound.serialize(parsed) == bytes)
    }
}

@Suite struct FeedbackInPlaceTests {
    @Test func forEachLostReadsTheBytes() throws {
        let nack = RTCPGenericNACK(senderSSRC: SSRC(1), mediaSSRC: SSRC(2), missing: [65535, 0, 3, 100])
        let bytes = try RTCPCompound.serialize([.genericNACK(nack)])
        var seen: [UInt16] = []
        try bytes.withUnsafeBytes { b in
            var it = RTCPCompoundIterator(b)
            let p = try #require(try it.next())
            try RTCPGenericNACK.forEachLost(in: p) { seen.append($0) }
        }
        #expect(seen == [65535, 0, 3, 100])
        let pli = try RTCPCompound.serialize([.pictureLossIndication(RTCPPictureLossIndication(senderSSRC: SSRC(1), mediaSSRC: SSRC(2)))])
        #expect(throws: RTCPError.wrongType) {
            try pli.withUnsafeBytes { b in
                var it = RTCPCompoundIterator(b)
                try RTCPGenericNACK.forEachLost(in: try it.next()!) { _ in }
            }
        }
    }

    @Test func rewriteFeedbackSSRCs() throws {
        var bytes = try RTCPCompound.serialize([
            .pictureLossIndication(RTCPPictureLossIndication(senderSSRC: SSRC(1), mediaSSRC: SSRC(2))),
        ])
        try bytes.withUnsafeMutableBytes { try RTCPFeedbackRewriter.rewrite($0, senderSSRC: SSRC(10), mediaSSRC: SSRC(20)) }
        #expect(try RTCPCompound.parse(bytes) == [.pictureLossIndication(RTCPPictureLossIndication(senderSSRC: SSRC(10), mediaSSRC: SSRC(20)))])
        try bytes.withUnsafeMutableBytes { try RTCPFeedbackRewriter.rewrite($0, mediaSSRC: SSRC(30)) }
        #expect(try RTCPCompound.parse(bytes) == [.pictureLossIndication(RTCPPictureLossIndication(senderSSRC: SSRC(10), mediaSSRC: SSRC(30)))])
        var rr = try RTCPCompound.serialize([.receiverReport(RTCPReceiverReport(ssrc: SSRC(1), reports: [RTCPTests.block]))])
        #expect(throws: RTCPError.wrongType) { try rr.withUnsafeMutableBytes { try RTCPFeedbackRewriter.rewrite($0, senderSSRC: SSRC(1)) } }
    }
}
