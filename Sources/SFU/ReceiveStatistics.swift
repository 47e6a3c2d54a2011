import RTCBase
import RTP

/// What RFC 3550 §6.4.1 and Appendix A.3/A.8 ask a receiver to know about
/// one source: the extended highest sequence number, packets expected and
/// received (hence lost), interarrival jitter, and the last SR for the
/// round-trip fields of a report block. One per publisher SSRC.
struct ReceiveStatistics {
    private var unwrapper = SequenceUnwrapper()
    private(set) var baseIndex: Int64?
    private(set) var highestIndex: Int64 = 0
    private(set) var received: Int64 = 0
    /// Counted when the report before was sent (for the fraction lost).
    private var expectedPrior: Int64 = 0
    private var receivedPrior: Int64 = 0
    /// RFC 3550 A.8, in timestamp units, scaled by 16.
    private var jitterQ4: Int64 = 0
    private var lastTransit: Int64?
    let clockRate: Int64
    /// Middle 32 bits of the last SR's NTP time, and when it arrived.
    private(set) var lastSenderReport: (middle: UInt32, at: Instant)?
    private(set) var bytes: Int64 = 0

    init(clockRate: UInt32) { self.clockRate = Int64(clockRate) }

    /// Records a packet; returns its extended (64-bit) sequence index.
    @inline(__always)
    mutating func record(sequence: SequenceNumber, timestamp: UInt32, size: Int, now: Instant) -> Int64 {
        let index = unwrapper.unwrap(sequence)
        if baseIndex == nil { baseIndex = index; highestIndex = index }
        if index > highestIndex { highestIndex = index }
        received += 1
        bytes += Int64(size)
        // A.8: transit = arrival (in RTP units) - timestamp; jitter tracks |D|.
        let arrival = now.nanoseconds / 1000 * clockRate / 1_000_000
        let transit = arrival &- Int64(timestamp)
        if let last = lastTransit {
            var d = transit &- last
            if d < 0 { d = -d }
            if d < clockRate * 10 { jitterQ4 += d - ((jitterQ4 + 8) >> 4) }
        }
        lastTransit = transit
        return index
    }

    mutating func senderReport(ntp: UInt64, at now: Instant) {
        lastSenderReport = (UInt32(truncatingIfNeeded: ntp >> 16), now)
    }

    var expected: Int64 { baseIndex.map { highestIndex - $0 + 1 } ?? 0 }
    var lost: Int64 { max(0, expected - received) }
    /// Jitter in timestamp units (RFC 3550 A.8).
    var jitter: UInt32 { UInt32(clamping: jitterQ4 >> 4) }

    /// A report block for `ssrc`; resets the interval used for `fractionLost`.
    mutating func reportBlock(ssrc: SSRC, now: Instant) -> RTCPReportBlock {
        let expectedInterval = expected - expectedPrior
        let receivedInterval = received - receivedPrior
        expectedPrior = expected
        receivedPrior = received
        let lostInterval = expectedInterval - receivedInterval
        let fraction: UInt8 = expectedInterval <= 0 || lostInterval <= 0
            ? 0 : UInt8(clamping: (lostInterval << 8) / expectedInterval)
        var lsr: UInt32 = 0
        var dlsr: UInt32 = 0
        if let sr = lastSenderReport {
            lsr = sr.middle
            // 1/65536 s units.
            dlsr = UInt32(clamping: (now - sr.at).nanoseconds * 65536 / 1_000_000_000)
        }
        return RTCPReportBlock(ssrc: ssrc, fractionLost: fraction, cumulativeLost: Int32(clamping: lost),
                               extendedHighestSequenceNumber: UInt32(truncatingIfNeeded: highestIndex),
                               jitter: jitter, lastSenderReport: lsr, delaySinceLastSenderReport: dlsr)
    }
}

/// The generic NACK side of a receiver (RFC 4585 §6.2.1): sequence numbers
/// that did not arrive are asked for again every `retryInterval`, up to
/// `maxRetries` times and while they are younger than `maxAge`, so a
/// publisher's uplink loss is repaired before the subscribers see it.
struct NACKGenerator {
    struct Missing {
        var index: Int64
        var firstMissed: Instant
        var lastAsked: Instant?
        var asks: Int
    }

    var retryInterval: Duration = .milliseconds(100)
    var maxRetries = 10
    var maxAge: Duration = .milliseconds(1500)
    /// At most this many outstanding numbers (a longer gap is a keyframe's job).
    var capacity = 256
    private(set) var missing: [Missing] = []
    private var highest: Int64?
    /// Numbers recovered after being asked for, and given up on.
    private(set) var recovered = 0
    private(set) var abandoned = 0

    /// A packet with extended index `index` arrived. Returns true when it
    /// is one that was asked for (repaired by a retransmission, plain or
    /// RTX); a late packet not yet asked for just stops being missing.
    @discardableResult
    mutating func received(_ index: Int64, now: Instant) -> Bool {
        guard let h = highest else {
            highest = index
            return false
        }
        if index > h {
            if index - h > 1 {
                let gap = index - h - 1
                if gap > Int64(capacity) {
                    // Too much to ask for one by one.
                    missing.removeAll(keepingCapacity: true)
                } else {
                    for i in (h + 1)..<index { missing.append(Missing(index: i, firstMissed: now, lastAsked: nil, asks: 0)) }
                    if missing.count > capacity { missing.removeFirst(missing.count - capacity) }
                }
            }
            highest = index
            return false
        }
        if let i = missing.firstIndex(where: { $0.index == index }) {
            let asked = missing[i].asks > 0
            if asked { recovered += 1 }
            missing.remove(at: i)
            return asked
        }
        return false
    }

    /// The sequence numbers to ask for now (marked as asked).
    mutating func due(now: Instant) -> [UInt16] {
        guard !missing.isEmpty else { return [] }
        var out: [UInt16] = []
        var kept: [Missing] = []
        kept.reserveCapacity(missing.count)
        for var m in missing {
            if now - m.firstMissed > maxAge || m.asks >= maxRetries {
                abandoned += 1
                continue
            }
            if m.lastAsked.map({ now - $0 >= retryInterval }) ?? true {
                m.lastAsked = now
                m.asks += 1
                out.append(UInt16(truncatingIfNeeded: m.index))
            }
            kept.append(m)
        }
        missing = kept
        return out
    }

    /// Forgets everything (a new source).
    mutating func reset() {
        missing.removeAll(keepingCapacity: true)
        highest = nil
    }
}

/// The last packets of one video source, as received (plaintext, RTX
/// unwrapped), so a subscriber's NACK is answered one hop away instead of
/// by the publisher (RFC 4588). Fixed slots, no allocation per packet.
final class RetransmissionCache {
    let slots: Int
    let slotSize: Int
    private let storage: UnsafeMutableRawPointer
    private var lengths: [Int]
    private var sequences: [UInt16]
    private var stored: [Bool]

    init(slots: Int = 512, slotSize: Int = 1500) {
        self.slots = slots
        self.slotSize = slotSize
        storage = .allocate(byteCount: slots * slotSize, alignment: 16)
        lengths = Array(repeating: 0, count: slots)
        sequences = Array(repeating: 0, count: slots)
        stored = Array(repeating: false, count: slots)
    }

    deinit { storage.deallocate() }

    @inline(__always)
    func store(_ packet: UnsafeRawBufferPointer, sequence: UInt16) {
        guard packet.count <= slotSize, let base = packet.baseAddress else { return }
        let slot = Int(sequence) % slots
        (storage + slot * slotSize).copyMemory(from: base, byteCount: packet.count)
        lengths[slot] = packet.count
        sequences[slot] = sequence
        stored[slot] = true
    }

    /// The stored packet with `sequence`, if it is still there.
    @inline(__always)
    func packet(_ sequence: UInt16) -> UnsafeRawBufferPointer? {
        let slot = Int(sequence) % slots
        guard stored[slot], sequences[slot] == sequence else { return nil }
        return UnsafeRawBufferPointer(start: storage + slot * slotSize, count: lengths[slot])
    }

    func clear() {
        for i in 0..<slots { stored[i] = false }
    }
}

/// Arrival times of transport-wide sequence numbers on one publish
/// transport, turned into transport-cc feedback (draft-holmer-rmcat-
/// transport-wide-cc-extensions-01 §3.1) every 100 ms so the browser's
/// send-side estimator (GCC) can ramp its bitrate.
struct TransportFeedbackRecorder {
    private var unwrapper = SequenceUnwrapper()
    /// Arrivals from `base` on, by unwrapped index.
    private var arrivals: [Instant?] = []
    private var base: Int64?
    private var feedbackCount: UInt8 = 0
    private(set) var packetsRecorded = 0

    @inline(__always)
    mutating func record(_ sequence: UInt16, at now: Instant) {
        let index = unwrapper.unwrap(SequenceNumber(sequence))
        packetsRecorded += 1
        guard let b = base else {
            base = index
            arrivals.append(now)
            return
        }
        let offset = index - b
        if offset < 0 { return }  // older than what was reported
        if offset >= 4096 {
            // A jump: start over from here.
            base = index
            arrivals.removeAll(keepingCapacity: true)
            arrivals.append(now)
            return
        }
        let i = Int(offset)
        if i >= arrivals.count { arrivals.append(contentsOf: repeatElement(nil, count: i - arrivals.count + 1)) }
        if arrivals[i] == nil { arrivals[i] = now }
    }

    /// Feedback for what arrived since the last call, or nil when nothing did.
    mutating func feedback(senderSSRC: SSRC, mediaSSRC: SSRC) -> RTCPTransportFeedback? {
        guard let b = base, !arrivals.isEmpty, arrivals.contains(where: { $0 != nil }) else { return nil }
        // Trailing unknowns are not reported yet: they may still arrive.
        var end = arrivals.count
        while end > 0, arrivals[end - 1] == nil { end -= 1 }
        let chunk = Array(arrivals[0..<min(end, 0xFFFF)])
        guard let fb = try? RTCPTransportFeedback(
            senderSSRC: senderSSRC, mediaSSRC: mediaSSRC, baseSequenceNumber: UInt16(truncatingIfNeeded: b),
            feedbackPacketCount: feedbackCount, arrivals: chunk) else {
            // Gaps too long for one packet's deltas: drop what we had.
            arrivals.removeAll(keepingCapacity: true)
            base = nil
            return nil
        }
        feedbackCount &+= 1
        arrivals.removeFirst(chunk.count)
        base = b + Int64(chunk.count)
        return fb
    }
}
