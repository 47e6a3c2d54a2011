import RTCBase
import RTP
import STUN

// Inputs for the media benchmarks, built once at start-up.

/// RFC 5769 §2.1: a Binding request with SOFTWARE, PRIORITY, ICE-CONTROLLED,
/// USERNAME, MESSAGE-INTEGRITY and FINGERPRINT.
public enum RFC5769 {
    public static let password = "VOkJxbRl1RmTxUk/WvJxBt"
    public static let request: [UInt8] = [
        0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42,
        0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
        0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e, 0x20, 0x74, 0x65, 0x73, 0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74,
        0x00, 0x24, 0x00, 0x04, 0x6e, 0x00, 0x01, 0xff,
        0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36,
        0x00, 0x06, 0x00, 0x09, 0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76, 0x59, 0x20, 0x20, 0x20,
        0x00, 0x08, 0x00, 0x14, 0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e, 0xf2, 0xb5,
        0xb2, 0xd3, 0xf2, 0x49, 0xc1, 0xb5, 0x71, 0xa2,
        0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf,
    ]
}

/// A browser's connectivity check to the SFU's lite agent (RFC 8445 §7.1.2):
/// USERNAME "server:client", PRIORITY, ICE-CONTROLLING, USE-CANDIDATE,
/// MESSAGE-INTEGRITY with the server's password, FINGERPRINT.
public enum LiteCheck {
    public static let serverUfrag = "sRvr"
    public static let serverPassword = "S3rverPassw0rdS3rverPa"
    public static let clientUfrag = "cLnt"
    public static let clientPassword = "Cl1entPassw0rdCl1entPa"

    public static func request() throws -> [UInt8] {
        var rng = SplitMix64(seed: 3)
        let tid = STUNTransactionID.random(using: &rng)
        let attributes: [STUNAttribute] = [
            .username(serverUfrag + ":" + clientUfrag),
            .priority(1_845_501_695),
            .iceControlling(tieBreaker: 0x1234_5678_9ABC_DEF0),
            .useCandidate,
        ]
        return try STUNMessage(type: .bindingRequest, transactionID: tid, attributes: attributes)
            .encoded(integrity: STUNIntegrityKey(shortTermPassword: serverPassword), fingerprint: true)
    }
}

/// RTP header extension IDs of the forwarded-video fixture (RFC 8285 one-byte form).
public enum VideoExtensionID {
    public static let absSendTime: UInt8 = 2
    public static let transportCC: UInt8 = 3
    public static let mid: UInt8 = 4
}

/// A 1200-octet VP8 RTP packet as Chrome sends it: one-byte header
/// extensions (abs-send-time, transport-cc, mid "0"), then a VP8 payload
/// descriptor with X, I (15-bit PictureID), L (TL0PICIDX) and T (TID) set,
/// then frame data.
public func makeVP8RTPPacket(size: Int = 1200) -> [UInt8] {
    var p: [UInt8] = [0x90, 96, 0x12, 0x34, 0x00, 0x01, 0x5F, 0x90, 0xCA, 0xFE, 0xBA, 0xBE]
    // Extension block: 0xBEDE, 3 words.
    p += [0xBE, 0xDE, 0x00, 0x03]
    p += [VideoExtensionID.absSendTime << 4 | 2, 0x12, 0x34, 0x56]
    p += [VideoExtensionID.transportCC << 4 | 1, 0x00, 0x2A]
    p += [VideoExtensionID.mid << 4 | 0, 0x30]
    p += [0x00, 0x00, 0x00]  // padding to the word boundary
    precondition(p.count == 28)
    // VP8 descriptor: X=1 S=1 PID=0 | I L T | M + 15-bit PictureID | TL0PICIDX | TID=0 Y=1
    p += [0x90, 0xE0, 0x80 | 0x12, 0x34, 0x07, 0x20]
    var rng = SplitMix64(seed: 11)
    p += rng.bytes(size - p.count)
    return p
}

/// The RTP payload offset of `makeVP8RTPPacket` (12 header + 16 extension).
public let vp8PacketPayloadOffset = 28

/// A compound RTCP packet as an SFU receives it from a browser: SR with one
/// report block, SDES CNAME, REMB, generic NACK and transport-wide CC feedback
/// for 40 packets.
public func makeRTCPCompound() throws -> [UInt8] {
    let sender = SSRC(0x1111_1111), media = SSRC(0x2222_2222)
    let sr = RTCPSenderReport(
        ssrc: sender, ntpTimestamp: 0xE8A1_2345_6789_ABCD, rtpTimestamp: 0x0102_0304, packetCount: 1000,
        octetCount: 1_000_000,
        reports: [RTCPReportBlock(ssrc: media, fractionLost: 3, cumulativeLost: 17, extendedHighestSequenceNumber: 70_000,
                                  jitter: 40, lastSenderReport: 0x2345_6789, delaySinceLastSenderReport: 0x1000)])
    let sdes = RTCPSourceDescription(source: sender, cname: "4TOk42mSjXCkVIa6")
    let remb = RTCPReceiverEstimatedMaxBitrate(senderSSRC: sender, bitrate: 2_500_000, ssrcs: [media])
    let nack = RTCPGenericNACK(senderSSRC: sender, mediaSSRC: media, missing: [100, 101, 105, 130, 131, 170])
    var arrivals: [Instant?] = []
    var t = Instant.milliseconds(10_000)
    for i in 0..<40 {
        if i % 9 == 4 {
            arrivals.append(nil)
        } else {
            t += .microseconds(i % 5 == 0 ? 70_000 : 2_500)
            arrivals.append(t)
        }
    }
    let twcc = try RTCPTransportFeedback(senderSSRC: sender, mediaSSRC: media, baseSequenceNumber: 5000,
                                         feedbackPacketCount: 7, arrivals: arrivals)
    return try RTCPCompound.serialize([
        .senderReport(sr), .sourceDescription(sdes), .receiverEstimatedMaxBitrate(remb),
        .genericNACK(nack), .transportFeedback(twcc),
    ])
}

/// A copy of `bytes` in memory the benchmarks own (no array, no CoW checks).
public func ownedBuffer(_ bytes: [UInt8], capacity: Int? = nil) -> UnsafeMutableRawBufferPointer {
    let b = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity ?? bytes.count, alignment: 16)
    b.initializeMemory(as: UInt8.self, repeating: 0)
    b.copyBytes(from: bytes)
    return b
}
