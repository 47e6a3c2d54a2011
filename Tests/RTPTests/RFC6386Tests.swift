import RTCBase
import Testing
@testable import RTP

/// Keyframe detection from the VP8 frame tag and uncompressed data chunk
/// (RFC 6386 §9.1), as RFC 7741 §4.3 reads them.
@Suite struct RFC6386Tests {
    /// Frame tag for a keyframe: key_frame=0 (bit 0), version 0 (bits 1–3),
    /// show_frame=1 (bit 4), first_part_size=1234 (bits 5–23), little-endian:
    /// 1234 << 5 | 1 << 4 = 0x9A50 → 50 9A 00. Then the start code 9d 01 2a,
    /// width 640 scale 0 (0x0280 → 80 02), height 480 scale 1 (0x41E0 → E0 41).
    static let keyFrame: [UInt8] = [0x50, 0x9A, 0x00, 0x9D, 0x01, 0x2A, 0x80, 0x02, 0xE0, 0x41, 0x12, 0x34]

    @Test func frameTag() throws {
        let header = try Self.keyFrame.withUnsafeBytes { try VP8PayloadHeader(parsing: $0) }
        #expect(header.isKeyFrame)
        #expect(header.version == 0)
        #expect(header.showFrame)
        #expect(header.firstPartitionSize == 1234)
        // An interframe: the (inverted) P bit set, version 2, hidden.
        let inter = try [UInt8]([0x05 | 0x20, 0x00, 0x01]).withUnsafeBytes { try VP8PayloadHeader(parsing: $0) }
        #expect(!inter.isKeyFrame)
        #expect(inter.version == 2)
        #expect(!inter.showFrame)
        #expect(inter.firstPartitionSize == 1 | 1 << 11)
    }

    @Test func keyFrameSize() throws {
        let k = try Self.keyFrame.withUnsafeBytes { try VP8KeyFrameHeader(parsing: $0) }
        #expect(k == VP8KeyFrameHeader(width: 640, horizontalScale: 0, height: 480, verticalScale: 1))
        var badStart = Self.keyFrame
        badStart[4] = 0x02
        #expect(throws: VP8Error.badStartCode) { try badStart.withUnsafeBytes { try VP8KeyFrameHeader(parsing: $0) } }
        #expect(throws: VP8Error.truncatedPayloadHeader) {
            try Array(Self.keyFrame[..<9]).withUnsafeBytes { try VP8KeyFrameHeader(parsing: $0) }
        }
        #expect(throws: VP8Error.truncatedPayloadHeader) {
            try Array(Self.keyFrame[..<2]).withUnsafeBytes { try VP8PayloadHeader(parsing: $0) }
        }
        var inter = Self.keyFrame
        inter[0] |= 1
        #expect(throws: VP8Error.notKeyFrame) { try inter.withUnsafeBytes { try VP8KeyFrameHeader(parsing: $0) } }
    }

    @Test func keyFrameDetectionNeedsFirstPacketOfPartitionZero() {
        func isKey(_ descriptor: [UInt8], _ frame: [UInt8] = RFC6386Tests.keyFrame) -> Bool {
            (descriptor + frame).withUnsafeBytes { VP8PayloadDescriptor.isKeyFrame(rtpPayload: $0) }
        }
        #expect(isKey([0x10]))                        // S=1 PID=0
        #expect(isKey([0x90, 0x80, 0x81, 0x23]))      // with a 15-bit PictureID
        #expect(!isKey([0x00]))                       // S=0: a continuation
        #expect(!isKey([0x11]))                       // PID=1
        var inter = Self.keyFrame
        inter[0] |= 1
        #expect(!isKey([0x10], inter))
        #expect(!isKey([0x10], [0x50, 0x9A]))           // payload header cut short
        #expect(!isKey([0x80]))                       // descriptor cut short
    }
}
