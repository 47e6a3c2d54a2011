import RTCBase
import Testing
@testable import RTP

/// Opus TOC and frame packing (RFC 6716 §3.1, §3.2, rules R1–R7 of §3.4)
/// and the RTP payload format (RFC 7587).
@Suite struct RFC6716Tests {
    /// Table 2 of RFC 6716 §3.1, written out: (mode, bandwidth, frame ms×10).
    static let table2: [(OpusMode, OpusBandwidth, Int)] = {
        var rows: [(OpusMode, OpusBandwidth, Int)] = []
        for bw in [OpusBandwidth.narrowband, .mediumband, .wideband] { for ms in [100, 200, 400, 600] { rows.append((.silk, bw, ms)) } }
        for bw in [OpusBandwidth.superWideband, .fullband] { for ms in [100, 200] { rows.append((.hybrid, bw, ms)) } }
        for bw in [OpusBandwidth.narrowband, .wideband, .superWideband, .fullband] { for ms in [25, 50, 100, 200] { rows.append((.celt, bw, ms)) } }
        return rows
    }()

    @Test(arguments: 0..<32)
    func everyConfigAndCode(_ config: Int) throws {
        let (mode, bandwidth, tenthsMs) = Self.table2[config]
        let samples = tenthsMs * 48 / 10
        for stereo in [false, true] {
            let toc = UInt8(config << 3) | (stereo ? 4 : 0)
            // Code 0: one frame of any length up to 1275.
            let c0 = try OpusPacketInfo(parsing: [toc] + Array(repeating: 1, count: 10))
            #expect(c0.toc.config == UInt8(config))
            #expect(c0.toc.mode == mode)
            #expect(c0.toc.bandwidth == bandwidth)
            #expect(c0.toc.isStereo == stereo)
            #expect(c0.toc.samplesPerFrame == samples)
            #expect(c0.frameCount == 1)
            #expect(c0.samples == samples)
            #expect(c0.durationMicroseconds == tenthsMs * 100)
            // Code 1: two equal frames.
            let c1 = try OpusPacketInfo(parsing: [toc | 1] + Array(repeating: 1, count: 10))
            #expect(c1.frameCount == 2 && c1.samples == 2 * samples)
            // Code 2: two frames, the first 3 bytes long.
            let c2 = try OpusPacketInfo(parsing: [toc | 2, 3] + Array(repeating: 1, count: 10))
            #expect(c2.frameCount == 2)
            // Code 3: as many frames as fit in 120 ms, CBR and VBR.
            let maxFrames = min(48, 5760 / samples)
            let cbr = try OpusPacketInfo(parsing: [toc | 3, UInt8(maxFrames)] + Array(repeating: 1, count: maxFrames * 2))
            #expect(cbr.frameCount == maxFrames && !cbr.isVBR && cbr.samples <= 5760)
            #expect(throws: OpusError.badFrameCount) {
                try OpusPacketInfo(parsing: [toc | 3, UInt8(maxFrames + 1)] + Array(repeating: 1, count: (maxFrames + 1) * 2))
            }
            let vbrLengths = [UInt8](repeating: 2, count: maxFrames - 1)
            let vbr = try OpusPacketInfo(parsing: [toc | 3, 0x80 | UInt8(maxFrames)] + vbrLengths + Array(repeating: 1, count: maxFrames * 2))
            #expect(vbr.frameCount == maxFrames && vbr.isVBR)
        }
    }

    static let invalid: [(String, [UInt8], OpusError)] = [
        ("R1 empty", [], .empty),
        ("R2 code 0 frame over 1275", [0x00] + Array(repeating: 0, count: 1276), .frameTooLong),
        ("R3 code 1 odd", [0x01, 1, 2, 3], .oddLengthCode1),
        ("R3 code 1 frames over 1275", [0x01] + Array(repeating: 0, count: 2552), .frameTooLong),
        ("R4 code 2 no length", [0x02], .badFrameLength),
        ("R4 code 2 second length byte missing", [0x02, 252], .badFrameLength),
        ("R4 code 2 length past end", [0x02, 5, 1, 2], .badFrameLength),
        ("R4 code 2 second frame over 1275", [0x02, 0] + Array(repeating: 0, count: 1276), .frameTooLong),
        ("R5 code 3 no count byte", [0x03], .badFrameCount),
        ("R5 code 3 zero frames", [0x03, 0x00], .badFrameCount),
        ("R5 code 3 over 120 ms", [0xF8 | 3, 7] + Array(repeating: 0, count: 7), .badFrameCount),  // 7 × 20 ms
        ("R6 CBR uneven", [0x03, 3, 1, 2, 3, 4], .unevenCBR),
        ("R6 CBR frames over 1275", [0x03, 1] + Array(repeating: 0, count: 1276), .frameTooLong),
        ("R6 padding length missing", [0x03, 0x41], .badPadding),
        ("R6 padding over the packet", [0x03, 0x41, 10, 1, 2], .badPadding),
        ("R6 padding 255 chain unterminated", [0x03, 0x41, 255], .badPadding),
        ("R7 VBR lengths missing", [0x03, 0x83, 1], .badFrameLength),
        ("R7 VBR lengths exceed data", [0x03, 0x82, 5, 1, 2], .badFrameLength),
        ("R7 VBR last frame over 1275", [0x03, 0x82, 0] + Array(repeating: 0, count: 1276), .frameTooLong),
        ("R7 VBR padding leaves too little", [0x03, 0xC2, 2, 3, 1, 2, 3, 4], .badFrameLength),
    ]

    @Test(arguments: 0..<invalid.count)
    func invalidPackets(_ index: Int) {
        let (name, bytes, error) = Self.invalid[index]
        #expect(throws: error, "\(name)") { try OpusPacketInfo(parsing: bytes) }
    }

    @Test func paddingAndTwoByteLengths() throws {
        // Code 3 CBR, 2 frames, padding 254 + 2 = 256 bytes: 255, 2.
        let padded = try OpusPacketInfo(parsing: [0x03, 0x42, 255, 2] + Array(repeating: 0, count: 4 + 256))
        #expect(padded.paddingLength == 256 && padded.frameCount == 2)
        // Code 2 with a two-byte length: 252 + 4×1 = 256.
        #expect(throws: Never.self) { try OpusPacketInfo(parsing: [0x02, 252, 1] + Array(repeating: 0, count: 256 + 10)) }
        #expect(throws: OpusError.badFrameLength) { try OpusPacketInfo(parsing: [0x02, 252, 1] + Array(repeating: 0, count: 255)) }
        // Zero-length frames are legal (a code 1 packet of just the TOC).
        #expect(try OpusPacketInfo(parsing: [0x01]).frameCount == 2)
    }

    @Test func dtxAndPacketizer() throws {
        var p = OpusPacketizer(timestamp: 1000)
        let speech: [UInt8] = [0xFC, 1, 2, 3, 4]  // config 31 (CELT FB 20 ms)
        let silence: [UInt8] = [0xFC]
        var out: [(UInt32, Bool)] = []
        for packet in [speech, speech, silence, silence, speech] {
            #expect(packet.withUnsafeBytes { OpusPacketInfo.isDTX($0) } == (packet.count <= 2))
            out.append(try packet.withUnsafeBytes { try p.packetize($0) })
        }
        // 20 ms = 960 ticks at 48 kHz; the marker starts the talkspurt after DTX.
        #expect(out.map(\.0) == [1000, 1960, 2920, 3880, 4840])
        #expect(out.map(\.1) == [false, false, false, false, true])
        let info = try speech.withUnsafeBytes { try OpusDepacketizer.depacketize($0) }
        #expect(info.samples == 960)
    }
}
