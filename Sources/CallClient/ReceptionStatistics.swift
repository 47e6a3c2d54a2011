import RTCBase

/// Per-SSRC reception statistics as RFC 3550 Appendix A keeps them: the
/// extended highest sequence number and expected/lost counts (A.3), the
/// interval fraction lost, and interarrival jitter (A.8).
struct ReceptionStatistics {
    let clockRate: Int64
    private var unwrapper = SequenceUnwrapper()
    private(set) var baseIndex: Int64?
    private(set) var highestIndex: Int64 = 0
    private(set) var received: Int64 = 0
    private var expectedPrior: Int64 = 0
    private var receivedPrior: Int64 = 0
    /// Jitter in timestamp units, ×16 (the A.8 integer form keeps 4 fraction bits).
    private var jitterQ4: Int64 = 0
    private var lastTransit: Int64?
    private var firstArrival: Instant?
    /// The SFU's last SR for this SSRC: middle 32 NTP bits and when it came
    /// (RFC 3550 §6.4.1 LSR/DLSR).
    var lastSenderReport: (middle: UInt32, at: Instant)?

    init(clockRate: UInt32) { self.clockRate = Int64(max(1, clockRate)) }

    /// Records one packet; returns its unwrapped index. `isRepair`: a
    /// retransmission, which counts as received but says nothing about
    /// transit time.
    @discardableResult
    mutating func record(sequenceNumber: SequenceNumber, timestamp: UInt32, arrival: Instant, isRepair: Bool) -> Int64 {
        let index = unwrapper.unwrap(sequenceNumber)
        if baseIndex == nil {
            baseIndex = index
            highestIndex = index
        }
        if let base = baseIndex, index < base { baseIndex = index }
        highestIndex = max(highestIndex, index)
        received += 1
        guard !isRepair else { return index }
        // A.8: transit in timestamp units, relative to the first arrival so
        // the product with the clock rate cannot overflow.
        let first = firstArrival ?? arrival
        if firstArrival == nil { firstArrival = arrival }
        let arrivalUnits = (arrival - first).nanoseconds / 1000 * clockRate / 1_000_000
        let transit = arrivalUnits - Int64(timestamp)
        if let last = lastTransit {
            var d = transit - last
            // Timestamps wrap at 2^32; a transit jump across it is not jitter.
            if d > Int64(Int32.max) { d -= 1 << 32 } else if d < -Int64(Int32.max) { d += 1 << 32 }
            jitterQ4 += abs(d) - (jitterQ4 + 8) >> 4
        }
        lastTransit = transit
        return index
    }

    var expected: Int64 { baseIndex.map { highestIndex - $0 + 1 } ?? 0 }
    /// Never negative (duplicates can make received exceed expected).
    var lost: Int64 { max(0, expected - received) }
    var jitter: UInt32 { UInt32(clamping: jitterQ4 >> 4) }
    var jitterSeconds: Double { Double(jitterQ4 >> 4) / Double(clockRate) }

    /// A report block (RFC 3550 §6.4.1); starts the next fraction interval.
    mutating func reportBlock(ssrc: SSRC, now: Instant) -> RTPReportValues {
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
            dlsr = UInt32(clamping: (now - sr.at).nanoseconds * 65536 / 1_000_000_000)
        }
        return RTPReportValues(ssrc: ssrc, fractionLost: fraction, cumulativeLost: Int32(clamping: lost),
                               extendedHighest: UInt32(truncatingIfNeeded: highestIndex), jitter: jitter,
                               lastSenderReport: lsr, delaySinceLastSenderReport: dlsr)
    }
}

/// The fields of one report block, before the RTP target's type is built.
struct RTPReportValues {
    var ssrc: SSRC
    var fractionLost: UInt8
    var cumulativeLost: Int32
    var extendedHighest: UInt32
    var jitter: UInt32
    var lastSenderReport: UInt32
    var delaySinceLastSenderReport: UInt32
}

/// Which sequence numbers to NACK (RFC 4585 §6.2.1): holes below the
/// highest seen, asked for again every `retryInterval` up to `maxRetries`
/// times while younger than `maxAge`, then given up (the depacketizer drops
/// the frame and a PLI follows).
struct NACKTracker {
    struct Missing {
        var since: Instant
        var lastAsked: Instant?
        var retries: Int
    }

    var retryInterval: Duration = .milliseconds(40)
    var maxRetries = 5
    var maxAge: Duration = .milliseconds(1000)
    /// A hole wider than this is not worth repairing packet by packet.
    var maxHole = 256
    private(set) var missing: [Int64: Missing] = [:]
    /// Holes given up on so far.
    private(set) var gaveUp = 0
    private var highest: Int64?

    /// Returns true when the hole was too wide to track (ask for a keyframe).
    @discardableResult
    mutating func received(_ index: Int64, now: Instant) -> Bool {
        missing[index] = nil
        guard let h = highest else {
            highest = index
            return false
        }
        guard index > h else { return false }
        highest = index
        let gap = index - h - 1
        guard gap > 0 else { return false }
        if gap > Int64(maxHole) {
            missing.removeAll()
            return true
        }
        for i in (h + 1)..<index { missing[i] = Missing(since: now, lastAsked: nil, retries: 0) }
        return false
    }

    /// Sequence numbers to ask for now; drops the ones that aged out
    /// (`gaveUp` counts them).
    mutating func due(now: Instant) -> [UInt16] {
        var out: [UInt16] = []
        for (index, var m) in missing {
            if let last = m.lastAsked, m.retries >= maxRetries, now - last >= retryInterval {
                missing[index] = nil
                gaveUp += 1
                continue
            }
            if now - m.since > maxAge {
                missing[index] = nil
                gaveUp += 1
                continue
            }
            if m.retries >= maxRetries { continue }
            if let last = m.lastAsked, now - last < retryInterval { continue }
            m.lastAsked = now
            m.retries += 1
            missing[index] = m
            out.append(UInt16(truncatingIfNeeded: index))
        }
        return out.sorted { SequenceNumber($1).isNewer(than: SequenceNumber($0)) }
    }
}
