import RTCBase

/// What RFC 3550 asks a receiver to know about one source (Appendix A.3 and
/// A.8): the extended highest sequence number, packets expected and
/// received (hence lost, and the fraction lost per report interval),
/// interarrival jitter, and the last SR for a report block's LSR/DLSR.
/// One per received SSRC, on both sides of a call (the SFU for what
/// publishers send, clients for what the SFU forwards).
public struct RTPReceptionStatistics: Sendable {
    public let clockRate: Int64
    private var unwrapper = SequenceUnwrapper()
    public private(set) var baseIndex: Int64?
    public private(set) var highestIndex: Int64 = 0
    public private(set) var received: Int64 = 0
    /// Packet bytes received.
    public private(set) var bytes: Int64 = 0
    private var expectedPrior: Int64 = 0
    private var receivedPrior: Int64 = 0
    /// Jitter in timestamp units ×16 (A.8's integer form keeps 4 fraction bits).
    private var jitterQ4: Int64 = 0
    private var lastTransit: Int64?
    private var firstArrival: Instant?
    /// Middle 32 bits of the last SR's NTP time, and when it arrived (RFC 3550 §6.4.1).
    public var lastSenderReport: (middle: UInt32, at: Instant)?

    public init(clockRate: UInt32) { self.clockRate = Int64(max(1, clockRate)) }

    /// Records one packet; returns its extended (64-bit) sequence index. A
    /// repair (retransmission) counts as received but says nothing about
    /// transit time.
    @discardableResult
    public mutating func record(sequence: SequenceNumber, timestamp: UInt32, size: Int = 0, arrival: Instant,
                                isRepair: Bool = false) -> Int64 {
        let index = unwrapper.unwrap(sequence)
        if baseIndex == nil {
            baseIndex = index
            highestIndex = index
        }
        if let base = baseIndex, index < base { baseIndex = index }
        highestIndex = max(highestIndex, index)
        received += 1
        bytes += Int64(size)
        guard !isRepair else { return index }
        // A.8: transit in timestamp units, counted from the first arrival so
        // the product with the clock rate cannot overflow.
        let first = firstArrival ?? arrival
        if firstArrival == nil { firstArrival = arrival }
        let arrivalUnits = (arrival - first).nanoseconds / 1000 * clockRate / 1_000_000
        let transit = arrivalUnits - Int64(timestamp)
        if let last = lastTransit {
            var d = transit - last
            // Timestamps wrap at 2^32: a transit jump across the wrap is not jitter.
            if d > Int64(Int32.max) { d -= 1 << 32 } else if d < -Int64(Int32.max) { d += 1 << 32 }
            jitterQ4 += abs(d) - (jitterQ4 + 8) >> 4
        }
        lastTransit = transit
        return index
    }

    /// The source's SR arrived (for LSR/DLSR).
    public mutating func senderReport(ntp: UInt64, at now: Instant) {
        lastSenderReport = (UInt32(truncatingIfNeeded: ntp >> 16), now)
    }

    public var expected: Int64 { baseIndex.map { highestIndex - $0 + 1 } ?? 0 }
    /// Never negative (duplicates can make received exceed expected).
    public var lost: Int64 { max(0, expected - received) }
    /// Jitter in timestamp units (RFC 3550 A.8).
    public var jitter: UInt32 { UInt32(clamping: jitterQ4 >> 4) }
    public var jitterSeconds: Double { Double(jitterQ4 >> 4) / Double(clockRate) }

    /// A report block for `ssrc` (RFC 3550 §6.4.1); starts the next
    /// interval for the fraction lost.
    public mutating func reportBlock(ssrc: SSRC, now: Instant) -> RTCPReportBlock {
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
/// `maxRetries` times while younger than `maxAge`, then given up on. A hole
/// wider than `maxGap` is not repaired packet by packet: that is a
/// keyframe's job.
public struct NACKGenerator: Sendable {
    /// What one arrival meant.
    public enum Arrival: Sendable, Equatable {
        /// The newest packet so far (maybe after a hole now being tracked).
        case inOrder
        /// A packet that was asked for: repaired by a retransmission.
        case repaired
        /// A missing packet that came late, before it was asked for.
        case late
        /// The newest packet, after a hole too wide to track (ask for a keyframe).
        case gapTooWide
        /// Older than anything missing: a duplicate or given up on.
        case old
    }

    struct Missing: Sendable {
        var since: Instant
        var lastAsked: Instant?
        var asks: Int
    }

    public var retryInterval: Duration
    public var maxRetries: Int
    public var maxAge: Duration
    public var maxGap: Int
    private var missing: [Int64: Missing] = [:]
    private var highest: Int64?
    /// Packets repaired after being asked for, and holes given up on.
    public private(set) var recovered = 0
    public private(set) var abandoned = 0

    public init(retryInterval: Duration = .milliseconds(100), maxRetries: Int = 10, maxAge: Duration = .milliseconds(1500),
                maxGap: Int = 256) {
        self.retryInterval = retryInterval
        self.maxRetries = maxRetries
        self.maxAge = maxAge
        self.maxGap = maxGap
    }

    /// Sequence numbers missing right now.
    public var outstanding: Int { missing.count }

    /// A packet with extended index `index` arrived.
    @discardableResult
    public mutating func received(_ index: Int64, now: Instant) -> Arrival {
        guard let h = highest else {
            highest = index
            return .inOrder
        }
        if index > h {
            highest = index
            let gap = index - h - 1
            if gap > Int64(maxGap) {
                missing.removeAll(keepingCapacity: true)
                return .gapTooWide
            }
            if gap > 0 {
                for i in (h + 1)..<index { missing[i] = Missing(since: now, lastAsked: nil, asks: 0) }
                // Never more than `maxGap` outstanding: the oldest go first.
                if missing.count > maxGap {
                    for old in missing.keys.sorted().prefix(missing.count - maxGap) {
                        missing[old] = nil
                        abandoned += 1
                    }
                }
            }
            return .inOrder
        }
        guard let m = missing.removeValue(forKey: index) else { return .old }
        if m.asks > 0 {
            recovered += 1
            return .repaired
        }
        return .late
    }

    /// The sequence numbers to ask for now, oldest first (marked as asked);
    /// those past their retries or age are dropped and counted in `abandoned`.
    public mutating func due(now: Instant) -> [UInt16] {
        guard !missing.isEmpty else { return [] }
        var out: [Int64] = []
        for (index, var m) in missing {
            if now - m.since > maxAge || (m.asks >= maxRetries && m.lastAsked.map { now - $0 >= retryInterval } ?? true) {
                missing[index] = nil
                abandoned += 1
                continue
            }
            guard m.asks < maxRetries, m.lastAsked.map({ now - $0 >= retryInterval }) ?? true else { continue }
            m.lastAsked = now
            m.asks += 1
            missing[index] = m
            out.append(index)
        }
        return out.sorted().map { UInt16(truncatingIfNeeded: $0) }
    }

    /// Forgets everything (a new source).
    public mutating func reset() {
        missing.removeAll(keepingCapacity: true)
        highest = nil
    }
}
