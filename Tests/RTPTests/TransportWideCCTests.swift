import RTCBase
import Testing
@testable import RTP

/// Transport-wide CC feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01
/// §3.1) checked against packets computed by hand from the draft's layout.
@Suite struct TransportWideCCTests {
    /// base 100, 5 statuses [small, not, small, large, small], reference time
    /// 16 (× 64 ms), feedback count 3. Symbols 01 00 01 10 01 do not fit a
    /// 1-bit vector (a large delta), and there is no run, so one 2-bit vector:
    /// 1 1 01 00 01 10 01 00 = 0xD190. Deltas: 4 ticks (1 ms), 2 (0.5 ms),
    /// -1 as two bytes FFFF, 255 (63.75 ms). 27 bytes, one zero pad to 28.
    static let example1 = hex("""
        8F CD 00 06  00 00 00 01  00 00 00 02
        00 64 00 05  00 00 10 03
        D1 90  04 02 FF FF FF 00
        """)

    @Test func parsesHandComputedVectorChunk() throws {
        let parsed = try RTCPCompound.parse(Self.example1)
        guard case .transportFeedback(let fb) = try #require(parsed.first) else { Issue.record("not TWCC"); return }
        #expect(fb.senderSSRC == SSRC(1) && fb.mediaSSRC == SSRC(2))
        #expect(fb.baseSequenceNumber == 100)
        #expect(fb.referenceTime == 16)
        #expect(fb.feedbackPacketCount == 3)
        #expect(fb.packets.map(\.sequenceNumber) == [100, 101, 102, 103, 104])
        #expect(fb.packets.map(\.received) == [true, false, true, true, true])
        #expect(fb.packets.map(\.delta) == [4, nil, 2, -1, 255])
        #expect(fb.packets.map(\.status) == [.receivedSmallDelta, .notReceived, .receivedSmallDelta, .receivedLargeDelta, .receivedSmallDelta])
        #expect(fb.receiveTimesMicroseconds == [1_025_000, nil, 1_025_500, 1_025_250, 1_089_000])
        // And the encoder picks the same chunk, giving the same bytes.
        #expect(try RTCPCompound.serialize(parsed) == Self.example1)
    }

    /// base 65535 (so sequence numbers wrap), 20 statuses: 15 small deltas of
    /// 1 tick, then not, not, not, small 8, small 0. The run of 15 takes a
    /// run-length chunk 0 01 0000000001111 = 0x200F; the last 5 fit a 1-bit
    /// vector 1 0 00010 0000 0000 = 0x8600 (bits 10 and 9 set). 17 delta bytes;
    /// 20 + 4 + 17 = 41, padded to 44 (length 10).
    static let example2 = hex("""
        8F CD 00 0A  00 00 00 01  00 00 00 02
        FF FF 00 14  00 00 01 00
        20 0F 86 00
        01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 08 00
        00 00 00
        """)

    @Test func parsesHandComputedRunLengthAndOneBitVector() throws {
        let parsed = try RTCPCompound.parse(Self.example2)
        guard case .transportFeedback(let fb) = try #require(parsed.first) else { Issue.record("not TWCC"); return }
        #expect(fb.packets.count == 20)
        #expect(fb.packets.first?.sequenceNumber == 65535)
        #expect(fb.packets[1].sequenceNumber == 0)
        #expect(fb.packets.last?.sequenceNumber == 18)
        let expected: [Int16?] = Array(repeating: 1, count: 15) + [nil, nil, nil, 8, 0]
        #expect(fb.packets.map(\.delta) == expected)
        #expect(fb.referenceTime == 1)
        #expect(try RTCPCompound.serialize(parsed) == Self.example2)
    }

    @Test func runLengthOfLargeDeltasAndTrailingSymbolsIgnored() throws {
        // RLE of 2 large deltas (0x4002), then a 2-bit vector chunk whose
        // symbols past the status count must be ignored (count is 3).
        let bytes = hex("""
            8F CD 00 07  00 00 00 01  00 00 00 02
            00 0A 00 03  00 00 00 00
            40 02 D5 55  01 00 FF 00 07 00 00 00
            """)
        let parsed = try RTCPCompound.parse(bytes)
        guard case .transportFeedback(let fb) = try #require(parsed.first) else { Issue.record("not TWCC"); return }
        #expect(fb.packets.map(\.delta) == [256, -256, 7])
    }

    @Test func buildsFromArrivals() throws {
        // Arrivals in nanoseconds; the reference is the first arrival rounded
        // down to 64 ms, deltas round to the nearest 250 µs without drift.
        let ms: Int64 = 1_000_000
        let arrivals: [Instant?] = [
            Instant(nanoseconds: 1_000 * ms + 100_000),  // 1000.1 ms
            nil,
            Instant(nanoseconds: 1_000 * ms + 350_000),  // +0.25 ms
            Instant(nanoseconds: 990 * ms),              // earlier: negative delta
            Instant(nanoseconds: 1_200 * ms),            // +210 ms: large
        ]
        let fb = try RTCPTransportFeedback(
            senderSSRC: SSRC(1), mediaSSRC: SSRC(2), baseSequenceNumber: 7, feedbackPacketCount: 9, arrivals: arrivals)
        #expect(fb.referenceTime == 15)  // 960 ms
        // 1000.1 ms - 960 ms = 40.1 ms = 160.4 ticks → 160.
        #expect(fb.packets.map(\.delta) == [160, nil, 1, -41, 840])
        let times = fb.receiveTimesMicroseconds
        #expect(times == [1_000_000, nil, 1_000_250, 990_000, 1_200_000])
        let round = try RTCPCompound.parse(try RTCPCompound.serialize([.transportFeedback(fb)]))
        #expect(round == [.transportFeedback(fb)])
        // A gap over 16 bits of ticks is refused.
        #expect(throws: RTCPError.invalidValue) {
            try RTCPTransportFeedback(senderSSRC: SSRC(1), mediaSSRC: SSRC(2), baseSequenceNumber: 0, feedbackPacketCount: 0,
                                      arrivals: [Instant(nanoseconds: 0), Instant(nanoseconds: 9_000 * ms)])
        }
    }

    @Test func randomRoundTrips() throws {
        var rng = SplitMix64(seed: 7)
        for _ in 0..<300 {
            let n = Int.random(in: 1...200, using: &rng)
            let lossRate = Double.random(in: 0...1, using: &rng)
            let largeRate = Double.random(in: 0...0.3, using: &rng)
            let packets = (0..<n).map { i -> RTCPTransportFeedback.PacketResult in
                let seq = UInt16(truncatingIfNeeded: 60000 + i)
                if Double.random(in: 0..<1, using: &rng) < lossRate { return .init(sequenceNumber: seq, delta: nil) }
                if Double.random(in: 0..<1, using: &rng) < largeRate {
                    return .init(sequenceNumber: seq, delta: Int16.random(in: .min ... .max, using: &rng))
                }
                return .init(sequenceNumber: seq, delta: Int16.random(in: 0...255, using: &rng))
            }
            let fb = RTCPTransportFeedback(
                senderSSRC: SSRC(3), mediaSSRC: SSRC(4), baseSequenceNumber: 60000, referenceTime: UInt32.random(in: 0...0xFFFFFF, using: &rng),
                feedbackPacketCount: UInt8.random(in: 0...255, using: &rng), packets: packets)
            let bytes = try RTCPCompound.serialize([.transportFeedback(fb)])
            #expect(try RTCPCompound.parse(bytes) == [.transportFeedback(fb)])
        }
    }

    @Test func longRunsSplitAcrossChunks() throws {
        // 9000 lost packets need two run-length chunks (13-bit run ≤ 8191).
        let packets = (0..<9000).map { RTCPTransportFeedback.PacketResult(sequenceNumber: UInt16($0), delta: nil) }
            + [RTCPTransportFeedback.PacketResult(sequenceNumber: 9000, delta: 1)]
        let fb = RTCPTransportFeedback(senderSSRC: SSRC(1), mediaSSRC: SSRC(2), baseSequenceNumber: 0, referenceTime: 0,
                                       feedbackPacketCount: 0, packets: packets)
        #expect(fb.encodeChunks().count == 3)
        #expect(try RTCPCompound.parse(try RTCPCompound.serialize([.transportFeedback(fb)])) == [.transportFeedback(fb)])
    }
}
