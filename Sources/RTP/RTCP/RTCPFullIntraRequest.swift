import RTCBase

/// Full intra request, PSFB FMT=4 (RFC 5104 §4.3.1).
public struct RTCPFullIntraRequest: Sendable, Equatable {
    public static let format: UInt8 = 4

    /// One FCI entry: whose keyframe is asked for, and the request's command
    /// sequence number (incremented per new request, §4.3.1.2).
    public struct Entry: Sendable, Equatable {
        public var ssrc: SSRC
        public var sequenceNumber: UInt8

        public init(ssrc: SSRC, sequenceNumber: UInt8) {
            self.ssrc = ssrc
            self.sequenceNumber = sequenceNumber
        }
    }

    public var senderSSRC: SSRC
    /// Unused by FIR and SHOULD be 0 (§4.3.1.2); kept for round trips.
    public var mediaSSRC: SSRC
    public var entries: [Entry]

    public init(senderSSRC: SSRC, mediaSSRC: SSRC = SSRC(0), entries: [Entry]) {
        self.senderSSRC = senderSSRC
        self.mediaSSRC = mediaSSRC
        self.entries = entries
    }

    public init(parsing p: RTCPPacketView) throws(RTCPError) {
        var r: RTCPBodyReader
        (senderSSRC, mediaSSRC, r) = try readFeedbackSSRCs(p, type: RTCPPacketType.payloadFeedback, format: Self.format)
        guard r.remaining % 8 == 0 else { throw .malformed }
        entries = []
        while r.remaining > 0 {
            let ssrc = try r.ssrc()
            let seq = try r.u8()
            try r.skip(3)  // reserved
            entries.append(Entry(ssrc: ssrc, sequenceNumber: seq))
        }
    }

    public var marshalSize: Int { 12 + 8 * entries.count }

    public func write(to writer: inout ByteWriter) throws(RTCPError) {
        try writeFeedbackHeader(
            to: &writer, type: RTCPPacketType.payloadFeedback, format: Self.format, size: marshalSize,
            sender: senderSSRC, media: mediaSSRC)
        try writing(RTCPError.bufferTooSmall) { () throws(ByteReaderError) in
            for e in entries {
                try writer.write(e.ssrc.rawValue)
                try writer.write(e.sequenceNumber)
                try writer.write24(0)
            }
        }
    }
}
