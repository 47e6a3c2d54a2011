import RTCBase
import Testing
@testable import RTP

/// RFC 3550 Appendix A reception statistics and the RFC 4585 NACK side of
/// a receiver.
@Suite struct ReceptionTests {
    @Test func lossAndJitterAcrossTheWrap() {
        var stats = RTPReceptionStatistics(clockRate: 90000)
        var seq: UInt16 = 65530
        var ts: UInt32 = 1000
        var now = Instant.seconds(100)
        for i in 0..<20 {
            if i != 8 { stats.record(sequence: SequenceNumber(seq), timestamp: ts, arrival: now) }
            seq &+= 1
            ts &+= 3000
            now += .nanoseconds(33_333_333)
        }
        #expect(stats.expected == 20 && stats.lost == 1)
        #expect(stats.jitter < 2)  // arrivals exactly paced: no jitter
        let block = stats.reportBlock(ssrc: SSRC(1), now: now)
        #expect(block.fractionLost == UInt8(256 / 20) && block.cumulativeLost == 1)
        #expect(block.extendedHighestSequenceNumber == UInt32(65536 + 13))
    }

    @Test func jitterOfUnevenArrivals() {
        var stats = RTPReceptionStatistics(clockRate: 90000)
        var now = Instant.seconds(100)
        for i in 0..<200 {
            // Alternately 10 ms early and late against a 33 ms pace.
            let offset: Int64 = i % 2 == 0 ? 0 : 10_000_000
            stats.record(sequence: SequenceNumber(UInt16(i)), timestamp: UInt32(i * 3000),
                         arrival: now + .nanoseconds(offset))
            now += .nanoseconds(33_333_333)
        }
        // RFC 3550 A.8 converges to |D| = 10 ms here.
        #expect(abs(stats.jitterSeconds * 1000 - 10) < 0.5)
    }

    @Test func nackGeneratorRetriesThenGivesUp() {
        var tracker = NACKGenerator(retryInterval: .milliseconds(40), maxRetries: 5, maxAge: .milliseconds(1000))
        let t = Instant.seconds(100)
        tracker.received(100, now: t)
        tracker.received(104, now: t)
        #expect(tracker.due(now: t) == [101, 102, 103])
        #expect(tracker.due(now: t + .milliseconds(10)).isEmpty)
        tracker.received(102, now: t + .milliseconds(20))
        #expect(tracker.due(now: t + .milliseconds(50)) == [101, 103])
        #expect(tracker.received(101, now: t + .milliseconds(55)) == .repaired)
        #expect(tracker.received(101, now: t + .milliseconds(56)) == .old)
        #expect(tracker.recovered == 2 && tracker.outstanding == 1)  // 102 and 101 were asked for
        for step in 1...5 { _ = tracker.due(now: t + .milliseconds(50 + 40 * Int64(step))) }
        #expect(tracker.due(now: t + .milliseconds(400)).isEmpty)
        #expect(tracker.abandoned == 1 && tracker.outstanding == 0, "103 is given up after its retries")
        #expect(tracker.received(1000, now: t + .milliseconds(410)) == .gapTooWide, "a huge hole asks for a keyframe instead")
        #expect(tracker.outstanding == 0)
    }

    @Test func lateArrivalBeforeAskingIsNotARepair() {
        var tracker = NACKGenerator()
        let t = Instant.seconds(5)
        tracker.received(10, now: t)
        tracker.received(12, now: t)
        #expect(tracker.received(11, now: t) == .late)
        #expect(tracker.recovered == 0 && tracker.outstanding == 0 && tracker.due(now: t).isEmpty)
    }

    @Test func outstandingNeverExceedsMaxGap() {
        var tracker = NACKGenerator(maxGap: 8)
        let t = Instant.seconds(5)
        tracker.received(0, now: t)
        tracker.received(6, now: t)   // 1...5 missing
        tracker.received(12, now: t)  // 7...11 missing: 10 outstanding, the oldest two go
        #expect(tracker.outstanding == 8 && tracker.abandoned == 2)
        #expect(tracker.due(now: t) == [3, 4, 5, 7, 8, 9, 10, 11])
    }

    @Test func askedNumbersWrapToSixteenBits() {
        var tracker = NACKGenerator()
        let t = Instant.seconds(5)
        tracker.received(65534, now: t)
        tracker.received(65538, now: t)
        #expect(tracker.due(now: t) == [65535, 0, 1])
    }
}
