import RTCBase

/// Decides which RTP source (SSRC, payload type) a recording follows.
///
/// A new source is taken only after two packets of it with close sequence
/// numbers, the probation of RFC 3550 Appendix A.1 (MIN_SEQUENTIAL = 2): one
/// stray or corrupt packet with a random SSRC must not end a recording's
/// current source, which would cost the video a keyframe wait. The first
/// packet of a probation is held and replayed once the source is taken, so
/// nothing is lost by waiting.
///
/// A source that was left is ignored for `retiredGrace` afterwards: its
/// packets still in flight (reordered behind the new source's first ones)
/// must not switch the recording back.
struct SourceSelector {
    struct HeldPacket {
        var bytes: [UInt8]
        var arrival: Instant
    }

    enum Decision {
        /// The packet belongs to the current source.
        case current
        /// A new source was taken; the caller processes these packets (the
        /// held ones and this one) in order, after starting the new source.
        case switched([HeldPacket])
        /// Held while its source is on probation.
        case held
        /// Not part of the recording (other payload type, a left source).
        case ignored
    }

    /// Sequence numbers of two probation packets this close belong to one
    /// source (loss and reordering between them allowed).
    static let probationDistance: Int16 = 32

    let requiredPayloadType: UInt8?
    let retiredGrace: Duration
    private(set) var current: (ssrc: SSRC, payloadType: UInt8)?
    private var candidate: (ssrc: SSRC, payloadType: UInt8, firstSequence: UInt16, packets: [HeldPacket])?
    private var retired: [(ssrc: SSRC, at: Instant)] = []

    init(payloadType: UInt8?, retiredGrace: Duration = .seconds(1)) {
        requiredPayloadType = payloadType
        self.retiredGrace = retiredGrace
    }

    mutating func admit(ssrc: SSRC, payloadType: UInt8, sequenceNumber: UInt16, packet: UnsafeRawBufferPointer,
                        arrival: Instant) -> Decision {
        if let required = requiredPayloadType, payloadType != required { return .ignored }
        if let current, current.ssrc == ssrc {
            return current.payloadType == payloadType ? .current : .ignored
        }
        retired.removeAll { arrival - $0.at > retiredGrace }
        if retired.contains(where: { $0.ssrc == ssrc }) { return .ignored }

        let held = HeldPacket(bytes: Array(packet), arrival: arrival)
        if var c = candidate, c.ssrc == ssrc, c.payloadType == payloadType {
            let distance = Int16(bitPattern: sequenceNumber &- c.firstSequence)
            if distance != 0, abs(Int(distance)) <= Int(Self.probationDistance) {
                c.packets.append(held)
                if let old = current {
                    retired.append((old.ssrc, arrival))
                    if retired.count > 8 { retired.removeFirst() }
                }
                current = (ssrc, payloadType)
                candidate = nil
                return .switched(c.packets)
            }
            if distance == 0 { return .ignored } // a duplicate of the held packet
        }
        // A first packet, or one too far from the held one: (re)start probation.
        candidate = (ssrc, payloadType, sequenceNumber, [held])
        return .held
    }

    /// At the end of a recording whose only source never passed probation
    /// (a single packet), its held packets; nil otherwise.
    mutating func takeUnconfirmed() -> [HeldPacket]? {
        guard current == nil, let c = candidate else { return nil }
        current = (c.ssrc, c.payloadType)
        candidate = nil
        return c.packets
    }
}
