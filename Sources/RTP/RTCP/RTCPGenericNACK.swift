import RTCBase

/// One generic NACK entry (RFC 4585 §6.2.1): a lost packet id and a bitmask
/// of the 16 packets after it, bit i (LSB = 0) meaning PID+i+1 is lost too.
public struct RTCPNACKPair: Sendable, Hashable {
    public var packetID: UInt16
    public var lostBitmask: UInt16

    public init(packetID: UInt16, lostBitmask: UInt16 = 0) {
        self.packetID = packetID
        self.lostBitmask = lostBitmask
    }

    /// Calls `body` with each sequence number this entry reports lost, in
    /// order, without allocating.
    @inlinable
    public func forEachLost(_ body: (UInt16) -> Void) {
        body(packetID)
        var mask = lostBitmask
        var i: UInt16 = 1
        while mask != 0 {
            if mask & 1 != 0 { body(packetID &+ i) }
            mask >>= 1
            i &+= 1
        }
    }

    public var lostSequenceNumbers: [UInt16] {
        var out: [UInt16] = []
        forEachLost { out.append($0) }
        return out
    }
}

/// Generic NACK, RTPFB FMT=1 (RFC 4585 §6.2.1).
public struct RTCPGenericNACK: Sendable, Equatable {
    public static let format: UInt8 = 1

    public var senderSSRC: SSRC
    public var mediaSSRC: SSRC
    public var pairs: [RTCPNACKPair]

    public init(senderSSRC: SSRC, mediaSSRC: SSRC, pairs: [RTCPNACKPair]) {
        self.senderSSRC = senderSSRC
        self.mediaSSRC = mediaSSRC
        self.pairs = pairs
    }

    /// A NACK for a set of missing sequence numbers, packed into the fewest entries.
    public init(senderSSRC: SSRC, mediaSSRC: SSRC, missing: some Sequence<UInt16>) {
        self.init(senderSSRC: senderSSRC, mediaSSRC: mediaSSRC, pairs: RTCPGenericNACK.pairs(forMissing: missing))
    }

    public init(parsing p: RTCPPacketView) throws(RTCPError) {
        var r: RTCPBodyReader
        (senderSSRC, mediaSSRC, r) = try readFeedbackSSRCs(p, type: RTCPPacketType.transportFeedback, format: Self.format)
        guard r.remaining % 4 == 0 else { throw .malformed }
        pairs = []
        pairs.reserveCapacity(r.remaining / 4)
        while r.remaining > 0 {
            pairs.append(RTCPNACKPair(packetID: try r.u16(), lostBitmask: try r.u16()))
        }
    }

    /// Every sequence number reported lost, in entry order (duplicates kept).
    public var lostSequenceNumbers: [UInt16] {
        var out: [UInt16] = []
        for p in pairs { p.forEachLost { out.append($0) } }
        return out
    }

    /// Packs missing sequence numbers into the fewest PID+BLP entries.
    ///
    /// Numbers are ordered around the 16-bit circle starting after its widest
    /// gap, so a set straddling the wrap (65534, 65535, 0, 1) stays one run.
    /// Greedily opening an entry at the first uncovered number and letting it
    /// cover the next 16 is optimal for fixed-width windows.
    public static func pairs(forMissing missing: some Sequence<UInt16>) -> [RTCPNACKPair] {
        let sorted = Array(Set(missing)).sorted()
        guard let firstValue = sorted.first, let lastValue = sorted.last else { return [] }
        // Find where the widest circular gap ends; start there.
        var start = 0
        var widest = Int(firstValue) + 65536 - Int(lastValue)
        for i in 1..<max(sorted.count, 1) where i < sorted.count {
            let gap = Int(sorted[i]) - Int(sorted[i - 1])
            if gap > widest {
                widest = gap
                start = i
            }
        }
        var out: [RTCPNACKPair] = []
        var current: RTCPNACKPair?
        for k in 0..<sorted.count {
            let seq = sorted[(start + k) % sorted.count]
            if var c = current {
                let offset = seq &- c.packetID
                if offset >= 1, offset <= 16 {
                    c.lostBitmask |= 1 << (offset - 1)
                    current = c
                    continue
                }
                out.append(c)
            }
            current = RTCPNACKPair(packetID: seq)
        }
        if let current { out.append(current) }
        return out
    }

    public var marshalSize: Int { 12 + 4 * pairs.count }

    public func write(to writer: inout ByteWriter) throws(RTCPError) {
        try writeFeedbackHeader(
            to: &writer, type: RTCPPacketType.transportFeedback, format: Self.format, size: marshalSize,
            sender: senderSSRC, media: mediaSSRC)
        try writing(RTCPError.bufferTooSmall) { () throws(ByteReaderError) in
            for p in pairs {
                try writer.write(p.packetID)
                try writer.write(p.lostBitmask)
            }
        }
    }
}
