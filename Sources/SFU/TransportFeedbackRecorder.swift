import RTCBase
import RTP

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
