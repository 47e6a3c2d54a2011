import RTCBase

/// Picture loss indication, PSFB FMT=1 (RFC 4585 §6.3.1): no FCI.
public struct RTCPPictureLossIndication: Sendable, Equatable {
    public static let format: UInt8 = 1

    public var senderSSRC: SSRC
    public var mediaSSRC: SSRC

    public init(senderSSRC: SSRC, mediaSSRC: SSRC) {
        self.senderSSRC = senderSSRC
        self.mediaSSRC = mediaSSRC
    }

    public init(parsing p: RTCPPacketView) throws(RTCPError) {
        // Any FCI is ignored: §6.3.1 defines none.
        (senderSSRC, mediaSSRC, _) = try readFeedbackSSRCs(p, type: RTCPPacketType.payloadFeedback, format: Self.format)
    }

    public var marshalSize: Int { 12 }

    public func write(to writer: inout ByteWriter) throws(RTCPError) {
        try writeFeedbackHeader(
            to: &writer, type: RTCPPacketType.payloadFeedback, format: Self.format, size: marshalSize,
            sender: senderSSRC, media: mediaSSRC)
    }
}
