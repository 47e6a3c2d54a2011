/// Keeps packets with a wild sequence number out of one source's stream.
///
/// Within one SSRC, sequence numbers advance by one per packet (RFC 3550
/// §5.1); loss and reordering move them by a few, not by thousands. A
/// packet far from the rest is corrupt or stray, and letting it in would
/// make a reassembler see thousands of lost packets (or take all later
/// packets for old ones). Unless the sender really restarted its
/// numbering: that shows as a second far packet right after the first,
/// the same two-in-a-row test RFC 3550 Appendix A.1 applies to a new
/// source.
struct SequenceGuard {
    enum Verdict {
        case accept
        /// Out of place: skip it.
        case reject
        /// The numbering restarted here: reset sequence state, then take it.
        case restart
    }

    /// Farther than this from the highest sequence number is "far".
    static let maximumDistance = 3000

    private var highest: UInt16?
    private var farCandidate: UInt16?

    mutating func check(_ sequenceNumber: UInt16) -> Verdict {
        guard let highest else {
            self.highest = sequenceNumber
            return .accept
        }
        let distance = Int16(bitPattern: sequenceNumber &- highest)
        if abs(Int(distance)) <= Self.maximumDistance {
            if distance > 0 { self.highest = sequenceNumber }
            farCandidate = nil
            return .accept
        }
        if let candidate = farCandidate, (1...3).contains(sequenceNumber &- candidate) {
            self.highest = sequenceNumber
            farCandidate = nil
            return .restart
        }
        farCandidate = sequenceNumber
        return .reject
    }
}
