import RTCBase

/// Reads the two SSRCs every feedback message starts with (RFC 4585 §6.1).
func readFeedbackSSRCs(_ p: RTCPPacketView, type: UInt8, format: UInt8) throws(RTCPError) -> (SSRC, SSRC, RTCPBodyReader) {
    guard p.packetType == type, p.count == format else { throw .wrongType }
    var r = RTCPBodyReader(p.body)
    let sender = try r.ssrc()
    let media = try r.ssrc()
    return (sender, media, r)
}

/// Writes the common header and both SSRCs of a feedback message.
func writeFeedbackHeader(
    to writer: inout ByteWriter, type: UInt8, format: UInt8, size: Int, sender: SSRC, media: SSRC
) throws(RTCPError) {
    try writeRTCPHeader(to: &writer, count: format, packetType: type, size: size)
    try writing(RTCPError.bufferTooSmall) { () throws(ByteReaderError) in
        try writer.write(sender.rawValue)
        try writer.write(media.rawValue)
    }
}

/// In-place edits of feedback packets (RFC 4585 §6.1) for an SFU relaying
/// them between legs: the packet sender and media source SSRCs are the first
/// two body words of every RTPFB/PSFB message.
public enum RTCPFeedbackRewriter {
    /// Rewrites the SSRCs of the feedback packet that starts `packet` (its
    /// common header first); nil leaves a field as it is. FIR and REMB carry
    /// their target SSRCs in the FCI instead (RFC 5104 §4.3.1, REMB §2.2),
    /// which this does not touch.
    @inlinable
    public static func rewrite(
        _ packet: UnsafeMutableRawBufferPointer, senderSSRC: SSRC? = nil, mediaSSRC: SSRC? = nil
    ) throws(RTCPError) {
        guard packet.count >= 12 else { throw .truncated }
        let type = packet[1]
        guard type == RTCPPacketType.transportFeedback || type == RTCPPacketType.payloadFeedback else { throw .wrongType }
        if let senderSSRC { packet.storeBytes(of: senderSSRC.rawValue.bigEndian, toByteOffset: 4, as: UInt32.self) }
        if let mediaSSRC { packet.storeBytes(of: mediaSSRC.rawValue.bigEndian, toByteOffset: 8, as: UInt32.self) }
    }
}

extension RTCPGenericNACK {
    /// Calls `body` with every sequence number a generic NACK reports lost,
    /// straight from the packet bytes: no allocation, for the SFU's
    /// retransmission path.
    @inlinable
    public static func forEachLost(in p: RTCPPacketView, _ body: (UInt16) -> Void) throws(RTCPError) {
        guard p.packetType == RTCPPacketType.transportFeedback, p.count == format else { throw .wrongType }
        let fci = p.body.count - 8
        guard fci >= 0 else { throw .truncated }
        guard fci % 4 == 0 else { throw .malformed }
        var offset = 8
        while offset < p.body.count {
            let pid = UInt16(bigEndian: p.body.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
            let blp = UInt16(bigEndian: p.body.loadUnaligned(fromByteOffset: offset + 2, as: UInt16.self))
            RTCPNACKPair(packetID: pid, lostBitmask: blp).forEachLost(body)
            offset += 4
        }
    }
}
