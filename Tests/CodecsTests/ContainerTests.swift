import Testing
@testable import Codecs

@Suite("IVF, Y4M, WAV and Ogg Opus containers")
struct ContainerTests {
    // MARK: IVF

    @Test("IVF round-trips frames and header fields in memory")
    func ivfRoundTrip() throws {
        var muxer = IVFMuxer(header: IVFHeader(width: 320, height: 240, timebaseDenominator: 30))
        let frames: [[UInt8]] = [[1, 2, 3], [], Array(repeating: 7, count: 1000)]
        for (i, f) in frames.enumerated() { f.withUnsafeBytes { muxer.append(frame: $0, pts: Int64(i)) } }
        #expect(Array(muxer.bytes.prefix(4)) == Array("DKIF".utf8))
        var reader = try IVFReader(bytes: muxer.bytes)
        #expect(reader.header == IVFHeader(width: 320, height: 240, timebaseDenominator: 30, frameCount: 3))
        #expect(reader.header.isVP8)
        let read = try reader.readAll()
        #expect(read.map { Array($0.bytes) } == frames)
        #expect(read.map(\.pts) == [0, 1, 2])
    }

    @Test("truncated or foreign IVF input yields typed errors")
    func ivfErrors() throws {
        var muxer = IVFMuxer(header: IVFHeader(width: 16, height: 16, timebaseDenominator: 30))
        [UInt8](repeating: 9, count: 50).withUnsafeBytes { muxer.append(frame: $0, pts: 0) }
        [UInt8](repeating: 9, count: 50).withUnsafeBytes { muxer.append(frame: $0, pts: 1) }
        let bytes = muxer.bytes
        #expect(throws: IVFError.truncatedHeader) { try IVFReader(bytes: Array(bytes.prefix(20))) }
        var bad = bytes; bad[0] = 0x58
        #expect(throws: IVFError.badSignature) { try IVFReader(bytes: bad) }
        // Every cut inside the frames fails on the frame it cuts, never traps.
        let firstFrameEnd = 32 + 12 + 50
        var clean = try IVFReader(bytes: Array(bytes.prefix(firstFrameEnd)))
        #expect(try clean.readAll().count == 1)
        for cut in 33..<bytes.count where cut != firstFrameEnd {
            var reader = try IVFReader(bytes: Array(bytes.prefix(cut)))
            let expectedIndex = cut < 32 + 12 + 50 ? 0 : 1
            #expect(throws: IVFError.truncatedFrame(index: expectedIndex)) { _ = try reader.readAll() }
        }
    }

    // MARK: Y4M

    @Test("Y4M round-trips odd-sized frames")
    func y4mRoundTrip() throws {
        let header = Y4MHeader(width: 33, height: 17, frameRateNumerator: 25)
        var bytes = header.serialized()
        var source = CameraSource(width: 33, height: 17)
        var frames: [I420Frame] = []
        for _ in 0..<3 {
            var f = I420Frame(width: 33, height: 17)
            source.nextFrame(into: &f)
            frames.append(f)
            Y4MWriter.appendFrame(f, to: &bytes)
        }
        #expect(bytes.count == header.serialized().count + 3 * (6 + 33 * 17 + 2 * 17 * 9))
        var reader = try Y4MReader(bytes: bytes)
        #expect(reader.header == header)
        var f = I420Frame(width: 33, height: 17)
        var read: [I420Frame] = []
        while try reader.nextFrame(into: &f) { read.append(f) }
        #expect(read == frames)
    }

    @Test("Y4M header variants parse; unsupported or broken input is a typed error")
    func y4mHeaders() throws {
        func parse(_ s: String) throws(Y4MError) -> Y4MReader { try Y4MReader(bytes: Array(s.utf8)) }
        #expect(try parse("YUV4MPEG2 W8 H4 F30000:1001 Ip A0:0 C420mpeg2 XYSCSS=420MPEG2\n").header.colorspace == "420mpeg2")
        #expect(try parse("YUV4MPEG2 W8 H4 F30:1\n").header.colorspace == "420jpeg")
        #expect(try parse("YUV4MPEG2 W8 H4 C420\n").header.frameRateNumerator == 30)
        #expect(throws: Y4MError.unsupportedColorspace("444")) { try parse("YUV4MPEG2 W8 H4 C444\n") }
        #expect(throws: Y4MError.unsupportedColorspace("420p10")) { try parse("YUV4MPEG2 W8 H4 C420p10\n") }
        #expect(throws: Y4MError.missingDimensions) { try parse("YUV4MPEG2 W8 F30:1\n") }
        #expect(throws: Y4MError.missingSignature) { try parse("RIFF") }
        #expect(throws: Y4MError.unterminatedHeader) { try parse("YUV4MPEG2 W8 H4") }
        #expect(throws: Y4MError.invalidParameter("Wx")) { try parse("YUV4MPEG2 Wx H4\n") }

        let frameBytes = 8 * 4 + 2 * 4 * 2
        let good = Array("YUV4MPEG2 W8 H4\nFRAME\n".utf8) + [UInt8](repeating: 50, count: frameBytes)
        var f = I420Frame(width: 8, height: 4)
        for cut in 17..<good.count {
            var reader = try Y4MReader(bytes: Array(good.prefix(cut)))
            #expect(throws: Y4MError.truncatedFrame(index: 0)) { _ = try reader.nextFrame(into: &f) }
        }
        var badMarker = try Y4MReader(bytes: Array("YUV4MPEG2 W8 H4\nFRAMX\n".utf8) + [UInt8](repeating: 0, count: frameBytes))
        #expect(throws: Y4MError.badFrameMarker(index: 0)) { _ = try badMarker.nextFrame(into: &f) }
        var wrongSize = I420Frame(width: 4, height: 4)
        var reader = try Y4MReader(bytes: good)
        #expect(throws: Y4MError.frameSizeMismatch) { _ = try reader.nextFrame(into: &wrongSize) }
        #expect(try reader.nextFrame(into: &f))
        #expect(try reader.nextFrame(into: &f) == false)
    }

    // MARK: WAV

    @Test("WAV round-trips 16-bit PCM; extensible format and extra chunks are understood")
    func wavRoundTrip() throws {
        var speech = SpeechSource(channels: 2)
        var samples = [Int16](repeating: 0, count: 2 * 4800)
        speech.fill(&samples)
        let audio = WAVAudio(format: WAVFormat(channels: 2, sampleRate: 48_000), samples: samples)
        let bytes = audio.serialized()
        #expect(bytes.count == 44 + samples.count * 2)
        #expect(try WAVAudio(parsing: bytes) == audio)

        // WAVE_FORMAT_EXTENSIBLE fmt chunk (40 bytes) and a LIST chunk of odd size before data.
        var ext: [UInt8] = []
        ext.appendASCII("RIFF"); ext.appendLE32(0); ext.appendASCII("WAVE")
        ext.appendASCII("fmt "); ext.appendLE32(40)
        ext.appendLE16(0xfffe); ext.appendLE16(1); ext.appendLE32(16_000); ext.appendLE32(32_000)
        ext.appendLE16(2); ext.appendLE16(16); ext.appendLE16(22); ext.appendLE16(16); ext.appendLE32(4)
        ext.appendLE16(1); ext.append(contentsOf: [UInt8](repeating: 0, count: 14))
        ext.appendASCII("LIST"); ext.appendLE32(3); ext.append(contentsOf: [1, 2, 3, 0])
        ext.appendASCII("data"); ext.appendLE32(4); ext.append(contentsOf: [0x01, 0x00, 0xff, 0xff])
        let parsed = try WAVAudio(parsing: ext)
        #expect(parsed.format == WAVFormat(channels: 1, sampleRate: 16_000))
        #expect(parsed.samples == [1, -1])
    }

    @Test("truncated or unsupported WAV input yields typed errors")
    func wavErrors() throws {
        let bytes = WAVAudio(format: WAVFormat(channels: 1), samples: [1, 2, 3, 4]).serialized()
        #expect(throws: WAVError.notRIFFWave) { try WAVAudio(parsing: Array(bytes.prefix(10))) }
        #expect(throws: WAVError.truncatedData(declared: 8, available: 6)) { try WAVAudio(parsing: Array(bytes.prefix(50))) }
        #expect(throws: WAVError.truncatedChunk) { try WAVAudio(parsing: Array(bytes.prefix(30))) }
        for cut in 12..<bytes.count {
            #expect(throws: WAVError.self) { try WAVAudio(parsing: Array(bytes.prefix(cut))) }
        }
        var eightBit = bytes
        eightBit[34] = 8
        #expect(throws: WAVError.unsupportedBitsPerSample(8)) { try WAVAudio(parsing: eightBit) }
        var float = bytes
        float[20] = 3
        #expect(throws: WAVError.unsupportedFormat(3)) { try WAVAudio(parsing: float) }
    }

    // MARK: Ogg Opus

    @Test("the Ogg CRC is CRC-32 with polynomial 0x04c11db7, init 0, no reflection, no final xor")
    func oggCRC() {
        let check = Array("123456789".utf8).reduce(UInt32(0)) { oggCRCUpdate($0, $1) }
        #expect(check == 0x89a1_897f)
    }

    func opusPackets(count: Int) throws -> (packets: [[UInt8]], lookahead: Int) {
        let encoder = try OpusAudioEncoder(configuration: OpusEncoderConfiguration(bitrate: 32_000))
        var speech = SpeechSource()
        let (_, packets) = try encodeAudio(encoder, frames: count) { speech.fill(&$0) }
        return (packets, encoder.lookahead)
    }

    @Test("Ogg Opus round-trips packets, headers and granule positions (RFC 7845)")
    func oggRoundTrip() throws {
        let (packets, lookahead) = try opusPackets(count: 120)
        var muxer = OggOpusMuxer(head: OpusHead(channels: 1, preSkip: lookahead),
                                 tags: OpusTags(vendor: "Parley test", comments: ["TITLE=speech"]), serialNumber: 42)
        for p in packets { try muxer.append(packet: p, samples: 960) }
        muxer.finish(originalSampleCount: 120 * 960 - 500)
        let stream = try OggOpusStream(parsing: muxer.output)
        #expect(stream.head.channels == 1 && stream.head.preSkip == lookahead && stream.head.version == 1)
        #expect(stream.tags == OpusTags(vendor: "Parley test", comments: ["TITLE=speech"]))
        #expect(stream.serialNumber == 42)
        #expect(stream.packets.map(\.bytes) == packets)
        #expect(stream.isComplete)
        // 2.4 s of audio in pages of about one second, plus the two header pages.
        #expect(stream.pageCount == 5)
        #expect(stream.lastGranulePosition == Int64(lookahead + 120 * 960 - 500))
        #expect(stream.sampleCount == 120 * 960 - 500)
        // Intermediate pages carry the granule of their last packet.
        let granules = stream.packets.compactMap(\.granulePosition)
        #expect(granules.count == 3)
        #expect(granules.first == Int64(50 * 960))
        // First page: only OpusHead, with the BOS flag; last page: EOS flag.
        #expect(muxer.output[5] == 0x02 && muxer.output[26] == 1 && muxer.output[27] == 19)
    }

    @Test("Ogg lacing handles packets of 255 and 600 bytes and packets continued across pages")
    func oggLacing() throws {
        var muxer = OggOpusMuxer(head: OpusHead(channels: 2, preSkip: 312), serialNumber: 7)
        let sizes = [255, 600, 0, 1, 510]
        let packets = sizes.enumerated().map { i, n in [UInt8](repeating: UInt8(i + 1), count: n) }
        for p in packets { try muxer.append(packet: p, samples: 960) }
        muxer.finish()
        let stream = try OggOpusStream(parsing: muxer.output)
        #expect(stream.packets.map(\.bytes) == packets)
        #expect(stream.head.channels == 2)

        // A hand-built stream whose 300-byte audio packet spans two pages.
        var bytes = Array(muxer.output.prefix(upTo: headerPagesEnd(muxer.output)))
        let big = [UInt8](repeating: 0xab, count: 300)
        appendPage(&bytes, type: 0, granule: -1, sequence: 2, lacing: [255], body: Array(big[0..<255]))
        appendPage(&bytes, type: 0x05, granule: 960, sequence: 3, lacing: [45], body: Array(big[255...]))
        let spanned = try OggOpusStream(parsing: bytes)
        #expect(spanned.packets.map(\.bytes) == [big])
        #expect(spanned.sampleCount == 960 - 312)
    }

    /// End offset of the first two pages (OpusHead, OpusTags).
    func headerPagesEnd(_ bytes: [UInt8]) -> Int {
        var offset = 0
        for _ in 0..<2 {
            let segments = Int(bytes[offset + 26])
            let body = bytes[(offset + 27)..<(offset + 27 + segments)].reduce(0) { $0 + Int($1) }
            offset += 27 + segments + body
        }
        return offset
    }

    func appendPage(_ out: inout [UInt8], type: UInt8, granule: Int64, sequence: UInt32, lacing: [UInt8], body: [UInt8]) {
        let start = out.count
        out.appendASCII("OggS"); out.append(0); out.append(type)
        out.appendLE64(UInt64(bitPattern: granule)); out.appendLE32(7); out.appendLE32(sequence); out.appendLE32(0)
        out.append(UInt8(lacing.count)); out.append(contentsOf: lacing); out.append(contentsOf: body)
        let crc = out[start...].reduce(UInt32(0)) { oggCRCUpdate($0, $1) }
        out.setLE32(crc, at: start + 22)
    }

    @Test("truncated, corrupt or incomplete Ogg Opus input yields typed errors")
    func oggErrors() throws {
        let (packets, lookahead) = try opusPackets(count: 10)
        var muxer = OggOpusMuxer(head: OpusHead(channels: 1, preSkip: lookahead), serialNumber: 1)
        for p in packets { try muxer.append(packet: p, samples: 960) }
        muxer.finish()
        let bytes = muxer.output
        for cut in [1, 26, 27, 40, bytes.count - 1] {
            #expect(throws: OggOpusError.self) { try OggOpusStream(parsing: Array(bytes.prefix(cut))) }
        }
        #expect(throws: OggOpusError.truncatedPage(offset: 0)) { try OggOpusStream(parsing: Array(bytes.prefix(20))) }
        var flipped = bytes
        flipped[bytes.count - 3] ^= 0x40
        #expect(throws: OggOpusError.crcMismatch(pageSequence: 2)) { try OggOpusStream(parsing: flipped) }
        var garbage = bytes
        garbage[0] = 0x70
        #expect(throws: OggOpusError.badCapturePattern(offset: 0)) { try OggOpusStream(parsing: garbage) }
        // Only the first page: OpusHead but no OpusTags.
        let firstPage = Array(bytes.prefix(27 + 1 + 19))
        #expect(throws: OggOpusError.missingOpusTags) { try OggOpusStream(parsing: firstPage) }
        #expect(throws: OggOpusError.missingOpusHead) { try OggOpusStream(parsing: []) }
        // An OpusHead with a major version of 1 is incompatible (RFC 7845 §5.1).
        var v16 = Array(bytes.prefix(headerPagesEnd(bytes)))
        v16[27 + 1 + 8] = 0x10
        let crc = (0..<47).reduce(UInt32(0)) { crc, i in oggCRCUpdate(crc, (22..<26).contains(i) ? 0 : v16[i]) }
        v16.setLE32(crc, at: 22)
        #expect(throws: OggOpusError.unsupportedVersion(16)) { try OggOpusStream(parsing: v16) }
    }
}
