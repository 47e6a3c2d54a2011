import RTCBase

/// Maps RTP timestamps onto one continuous output timeline (in the RTP
/// clock's units, starting at 0), across SSRC changes and timestamp jumps.
///
/// RTP timestamps count media time from a random origin (RFC 3550 §5.1),
/// and only within one SSRC. Normally a packet sits `timestamp - previous`
/// after the previous one: that keeps gaps (loss, DTX silence, frames the
/// encoder skipped) at their real length. That step is not trusted when
/// - the source changed (a new SSRC numbers its timestamps afresh),
/// - it is zero or negative (a reset, or a sender bug), or
/// - it is longer than the time that passed between the two arrivals plus
///   `jumpTolerance` (a forward jump; a real pause takes as long to arrive
///   as it lasts).
/// Then the packet goes `max(minimumAdvance, arrival gap)` after the
/// previous one, capped at `maximumGap`, so the output never stands still
/// or runs backwards and a pause keeps roughly its wall-clock length.
struct MediaTimeline {
    /// Ticks per second (90 000 for video, 48 000 for Opus, RFC 7587 §4.1).
    let clockRate: Int64
    let jumpTolerance: Int64
    let maximumGap: Int64

    private var anchor: (timestamp: UInt32, position: Int64, arrival: Instant)?
    private var discontinuity = false

    init(clockRate: Int64, jumpToleranceSeconds: Int64 = 2, maximumGapSeconds: Int64 = 3600) {
        self.clockRate = clockRate
        jumpTolerance = jumpToleranceSeconds * clockRate
        maximumGap = maximumGapSeconds * clockRate
    }

    /// Whether any packet was placed yet.
    var hasStarted: Bool { anchor != nil }

    /// The next packet starts a new source: its timestamp says nothing
    /// about the last one's.
    mutating func markDiscontinuity() { discontinuity = true }

    /// Places the packet with `timestamp` that arrived at `arrival`;
    /// `minimumAdvance` is how far after the previous packet it goes at
    /// least when its timestamp cannot be used (the previous packet's
    /// duration). Returns its position in ticks.
    mutating func place(timestamp: UInt32, arrival: Instant, minimumAdvance: Int64) -> Int64 {
        guard let previous = anchor else {
            anchor = (timestamp, 0, arrival)
            discontinuity = false
            return 0
        }
        let elapsed = ticks(from: previous.arrival, to: arrival)
        // Serial-number difference (RFC 1982 style): a wrap of the 32-bit
        // timestamp is a small forward step, not a jump.
        let step = Int64(Int32(bitPattern: timestamp &- previous.timestamp))
        let position: Int64
        if !discontinuity, step > 0, step <= elapsed + jumpTolerance {
            position = previous.position + step
        } else {
            position = previous.position + min(maximumGap, max(minimumAdvance, elapsed, 1))
        }
        discontinuity = false
        anchor = (timestamp, position, arrival)
        return position
    }

    /// Non-negative ticks between two arrivals (clamped: arrivals of
    /// reordered packets need not be monotonic).
    private func ticks(from start: Instant, to end: Instant) -> Int64 {
        let nanoseconds = end.nanoseconds &- start.nanoseconds
        guard nanoseconds > 0 else { return 0 }
        // Microseconds first so the product cannot overflow for any
        // realistic gap (2^63 µs·Hz / 90 kHz is about 3 years).
        let (product, overflow) = (nanoseconds / 1000).multipliedReportingOverflow(by: clockRate)
        return overflow ? maximumGap : product / 1_000_000
    }
}
