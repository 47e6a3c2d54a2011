import RTCBase
import Testing
@testable import RTP

/// REMB (draft-alvestrand-rmcat-remb-03 §2.2).
@Suite struct REMBTests {
    /// 1 Mbit/s: 1_000_000 >> 2 = 250_000 fits 18 bits, so exponent 2,
    /// mantissa 0x3D090; packed 2 << 18 | 0x3D090 = 0x0BD090.
    static let example = hex("""
        8F CE 00 05  00 00 00 01  00 00 00 00
        52 45 4D 42  01 0B D0 90  12 34 56 78
        """)

    @Test func parsesHandComputedExample() throws {
        let parsed = try RTCPCompound.parse(Self.example)
        #expect(parsed == [.receiverEstimatedMaxBitrate(RTCPReceiverEstimatedMaxBitrate(
            senderSSRC: SSRC(1), bitrate: 1_000_000, ssrcs: [SSRC(0x1234_5678)]))])
        #expect(try RTCPCompound.serialize(parsed) == Self.example)
    }

    @Test func exponentAndMantissa() {
        #expect(RTCPReceiverEstimatedMaxBitrate.encode(0) == (0, 0))
        #expect(RTCPReceiverEstimatedMaxBitrate.encode(0x3FFFF) == (0, 0x3FFFF))
        #expect(RTCPReceiverEstimatedMaxBitrate.encode(0x40000) == (1, 0x20000))
        #expect(RTCPReceiverEstimatedMaxBitrate.encode(1_000_000) == (2, 250_000))
        #expect(RTCPReceiverEstimatedMaxBitrate.encode(.max) == (46, 0x3FFFF))
    }

    @Test func lossyRoundTripRoundsDown() throws {
        for bitrate: UInt64 in [0, 1, 262_143, 262_144, 262_145, 2_500_123, 1 << 40 | 12345, .max] {
            let remb = RTCPReceiverEstimatedMaxBitrate(senderSSRC: SSRC(1), bitrate: bitrate, ssrcs: [])
            let parsed = try RTCPCompound.parse(try RTCPCompound.serialize([.receiverEstimatedMaxBitrate(remb)]))
            guard case .receiverEstimatedMaxBitrate(let r) = parsed[0] else { Issue.record("not REMB"); continue }
            #expect(r.bitrate <= bitrate)
            // Precision is 18 significant bits.
            #expect(bitrate - r.bitrate < max(1, bitrate >> 17))
        }
    }

    @Test func hugeExponentSaturates() throws {
        // Exponent 63 with a non-zero mantissa cannot fit 64 bits.
        let bytes = hex("8F CE 00 04  00 00 00 01  00 00 00 00  52 45 4D 42  00 FF FF FF")
        guard case .receiverEstimatedMaxBitrate(let r) = try RTCPCompound.parse(bytes)[0] else { Issue.record("not REMB"); return }
        #expect(r.bitrate == .max)
    }

    @Test func otherApplicationFeedbackIsUnknown() throws {
        let bytes = hex("8F CE 00 04  00 00 00 01  00 00 00 00  41 42 43 44  00 00 00 00")
        guard case .unknown(let u) = try RTCPCompound.parse(bytes)[0] else { Issue.record("not unknown"); return }
        #expect(u.packetType == 206 && u.count == 15)
    }
}
