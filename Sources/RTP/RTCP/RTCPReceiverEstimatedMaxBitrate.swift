import RTCBase

/// Receiver estimated max bitrate: application-layer feedback, PSFB FMT=15,
/// identified by "REMB" (draft-alvestrand-rmcat-remb-03 §2.2).
public struct RTCPReceiverEstimatedMaxBitrate: Sendable, Equatable {
    public static let format: UInt8 = 15
    static let identifier: UInt32 = 0x5245_4D42  // "REMB"

    public var senderSSRC: SSRC
    /// Always 0 per the draft; kept for round trips.
    public var mediaSSRC: SSRC
    /// Bits per second. Written as an 18-bit mantissa and 6-bit exponent, so
    /// values above 2^18 lose their low bits (rounded down).
    public var bitrate: UInt64
    /// The SSRCs the estimate applies to.
    public var ssrcs: [SSRC]

    public init(senderSSRC: SSRC, mediaSSRC: SSRC = SSRC(0), bitrate: UInt64, ssrcs: [SSRC]) {
        self.senderSSRC = senderSSRC
        self.mediaSSRC = mediaSSRC
        self.bitrate = bitrate
        self.ssrcs = ssrcs
    }

    /// True when a PSFB FMT=15 packet carries the "REMB" identifier.
    public static func matches(_ p: RTCPPacketView) -> Bool {
        guard p.packetType == RTCPPacketType.payloadFeedback, p.count == format, p.body.count >= 12 else { return false }
        return UInt32(bigEndian: p.body.loadUnaligned(fromByteOffset: 8, as: UInt32.self)) == identifier
    }

    public init(parsing p: RTCPPacketView) throws(RTCPError) {
        var r: RTCPBodyReader
        (senderSSRC, mediaSSRC, r) = try readFeedbackSSRCs(p, type: RTCPPacketType.payloadFeedback, format: Self.format)
        guard try r.u32() == Self.identifier else { throw .wrongType }
        let count = try r.u8()
        let packed = try r.u24()
        let exponent = packed >> 18
        let mantissa = UInt64(packed & 0x3FFFF)
        // An 18-bit mantissa shifted by up to 63 can overflow; saturate.
        let shift = UInt64(exponent)
        if shift > 0, mantissa >> (64 - shift) != 0 {
            bitrate = .max
        } else {
            bitrate = mantissa << shift
        }
        ssrcs = []
        for _ in 0..<count { ssrcs.append(try r.ssrc()) }
    }

    /// The (exponent, mantissa) pair written for `bitrate`.
    public static func encode(_ bitrate: UInt64) -> (exponent: UInt8, mantissa: UInt32) {
        var exponent: UInt8 = 0
        var mantissa = bitrate
        while mantissa > 0x3FFFF {
            mantissa >>= 1
            exponent += 1
        }
        return (exponent, UInt32(mantissa))
    }

    public var marshalSize: Int { 20 + 4 * ssrcs.count }

    public func write(to writer: inout ByteWriter) throws(RTCPError) {
        guard ssrcs.count <= 255 else { throw .invalidValue }
        try writeFeedbackHeader(
            to: &writer, type: RTCPPacketType.payloadFeedback, format: Self.format, size: marshalSize,
            sender: senderSSRC, media: mediaSSRC)
        let (exponent, mantissa) = Self.encode(bitrate)
        try writing(RTCPError.bufferTooSmall) { () throws(ByteReaderError) in
            try writer.write(Self.identifier)
            try writer.write(UInt8(ssrcs.count))
            try writer.write24(UInt32(exponent) << 18 | mantissa)
            for s in ssrcs { try writer.write(s.rawValue) }
        }
    }
}
