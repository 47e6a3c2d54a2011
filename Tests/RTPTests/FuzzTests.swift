import RTCBase
import Testing
@testable import RTP

/// Random bytes and mutations of valid packets through every parser: none
/// may trap, and whatever parses must describe ranges inside the input.
@Suite struct FuzzTests {
    static func mutate(_ base: [UInt8], using rng: inout SplitMix64) -> [UInt8] {
        var b = base
        switch Int.random(in: 0..<5, using: &rng) {
        case 0 where !b.isEmpty:
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                b[Int.random(in: 0..<b.count, using: &rng)] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &rng)
            }
        case 1 where !b.isEmpty:
            b[Int.random(in: 0..<b.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
        case 2:
            b = Array(b.prefix(Int.random(in: 0...b.count, using: &rng)))
        case 3:
            b += [UInt8].random(count: Int.random(in: 1...8, using: &rng), using: &rng)
        default:
            if b.count > 1 { b.remove(at: Int.random(in: 0..<b.count, using: &rng)) }
        }
        return b
    }

    static func exerciseRTP(_ bytes: [UInt8]) {
        var copy = bytes
        copy.withUnsafeMutableBytes { b in
            guard let v = try? MutableRTPHeaderView(b) else { return }
            #expect(v.headerLength <= v.layout.payloadEnd && v.layout.payloadEnd <= b.count)
            _ = v.payload.count
            for i in 0..<v.csrcCount { _ = v.csrc(at: i) }
            if let ext = v.extensions {
                _ = try? ext.validate()
                for e in ext {
                    #expect(e.valueOffset >= 12 && e.valueOffset + e.value.count <= v.headerLength)
                    _ = v.mutableExtensionValue(id: e.id)
                }
                _ = v.transportSequenceNumber(id: 3)
                _ = v.absSendTime(id: 2)
                _ = try? v.setTransportSequenceNumber(id: 3, 7)
                _ = try? v.setAbsSendTime(id: 2, AbsSendTime(rawValue: 1))
            }
            v.setSSRC(SSRC(1))
            v.setSequenceNumber(SequenceNumber(2))
            v.setTimestamp(3)
            v.setMarker(true)
            v.setPayloadTypeValue(96)
            if let p = try? RTPPacket(parsing: UnsafeRawBufferPointer(b)) {
                // Whatever parses fully re-serializes and re-parses the same.
                if let again = try? p.serialized() {
                    #expect((try? RTPPacket(parsing: again)) == p)
                }
            }
        }
    }

    static func exerciseRTCP(_ bytes: [UInt8]) {
        _ = try? RTCPCompound.parse(bytes)
        _ = try? RTCPCompound.parse(bytes, requireReportFirst: true)
        bytes.withUnsafeBytes { b in
            var it = RTCPCompoundIterator(b)
            while let p = try? it.next() {
                #expect(p.body.count <= p.packet.count)
                _ = try? RTCPSenderReport(parsing: p)
                _ = try? RTCPReceiverReport(parsing: p)
                _ = try? RTCPSourceDescription(parsing: p)
                _ = try? RTCPGoodbye(parsing: p)
                _ = try? RTCPApplicationDefined(parsing: p)
                _ = try? RTCPGenericNACK(parsing: p)
                _ = try? RTCPPictureLossIndication(parsing: p)
                _ = try? RTCPFullIntraRequest(parsing: p)
                _ = try? RTCPReceiverEstimatedMaxBitrate(parsing: p)
                _ = try? RTCPTransportFeedback(parsing: p)
                if let parsed = try? RTCPPacket(parsing: p), let bytes = try? RTCPCompound.serialize([parsed]) {
                    #expect((try? RTCPCompound.parse(bytes)) == [parsed])
                }
            }
        }
    }

    static func exerciseVP8(_ bytes: [UInt8]) {
        var copy = bytes
        copy.withUnsafeMutableBytes { b in
            let r = UnsafeRawBufferPointer(b)
            _ = VP8PayloadDescriptor.isKeyFrame(rtpPayload: r)
            _ = try? VP8PayloadHeader(parsing: r)
            _ = try? VP8KeyFrameHeader(parsing: r)
            if let d = try? VP8PayloadDescriptor(parsing: r) {
                #expect(d.length <= b.count)
            }
            if let layout = try? VP8DescriptorLayout(parsing: r) {
                #expect(layout.length <= b.count)
                _ = try? layout.setPictureID(0x1234, in: b)
                _ = try? layout.setTL0PicIndex(9, in: b)
            }
        }
        _ = try? OpusPacketInfo(parsing: bytes)
    }

    @Test func randomBytes() {
        var rng = SplitMix64(seed: 0xF00D)
        for _ in 0..<20_000 {
            var bytes = [UInt8].random(count: Int.random(in: 0...64, using: &rng), using: &rng)
            // Half the time, make the first byte look like version 2 so
            // parsing goes deeper than the version check.
            if !bytes.isEmpty, Bool.random(using: &rng) { bytes[0] = bytes[0] & 0x3F | 0x80 }
            Self.exerciseRTP(bytes)
            Self.exerciseRTCP(bytes)
            Self.exerciseVP8(bytes)
        }
    }

    @Test func mutationsOfValidPackets() throws {
        var rng = SplitMix64(seed: 0xBEEF)
        var rtpSeeds: [[UInt8]] = [RTPHeaderTests.handWritten]
        for i in 0..<RTPHeaderTests.roundTripCases.count {
            let (_, ext, csrcs, padding) = RTPHeaderTests.roundTripCases[i]
            rtpSeeds.append(try RTPPacket(header: RTPHeader(
                payloadType: pt(96), sequenceNumber: SequenceNumber(1), timestamp: 2, ssrc: SSRC(3), csrcs: csrcs,
                extensions: ext), payload: [1, 2, 3], paddingLength: padding).serialized())
        }
        let rtcpSeeds = try [RTCPCompound.serialize(RTCPTests.everyType), TransportWideCCTests.example1,
                             TransportWideCCTests.example2, REMBTests.example]
            + RTCPTests.everyType.map { try RTCPCompound.serialize([$0]) }
        let vp8Seeds = RFC7741Tests.cases.map { $0.bytes.map(\.0) + RFC6386Tests.keyFrame }
        for _ in 0..<3000 {
            for seed in rtpSeeds { Self.exerciseRTP(Self.mutate(seed, using: &rng)) }
            Self.exerciseRTCP(Self.mutate(rtcpSeeds.randomElement(using: &rng)!, using: &rng))
            Self.exerciseVP8(Self.mutate(vp8Seeds.randomElement(using: &rng)!, using: &rng))
        }
    }

    @Test func depacketizerSurvivesGarbage() {
        var rng = SplitMix64(seed: 42)
        var d = VP8Depacketizer(reorderWindow: 3, maxPendingPackets: 64)
        var frames = 0
        for _ in 0..<20_000 {
            var payload = [UInt8].random(count: Int.random(in: 0...20, using: &rng), using: &rng)
            if !payload.isEmpty, Int.random(in: 0..<4, using: &rng) == 0 { payload[0] = 0x10 }
            let seq = SequenceNumber(UInt16.random(in: 0...UInt16.max, using: &rng) % 200)
            payload.withUnsafeBytes { b in
                _ = try? d.push(sequenceNumber: seq, timestamp: UInt32.random(in: 0...3, using: &rng),
                                marker: Bool.random(using: &rng), payload: b)
            }
            while let e = d.pollEvent() { if e.frame != nil { frames += 1 } }
            #expect(d.pendingPacketCount <= 65)
        }
        d.flush()
        while d.pollEvent() != nil {}
        #expect(d.pendingPacketCount == 0)
    }
}
