import Foundation
import Testing
@testable import Codecs

/// Files Parley writes are read by FFmpeg, and files vpxenc writes are read
/// by Parley. Needs ffprobe/ffmpeg (ffmpeg package) and vpxenc (vpx-tools)
/// on PATH; a missing tool fails the test with a message saying so.
@Suite("Interop with ffprobe, ffmpeg and vpxenc")
struct ToolInteropTests {
    @Test("an IVF file written by Parley is read by ffprobe as VP8 with every frame")
    func ivfThroughFFprobe() throws {
        let dir = try makeTemporaryDirectory()
        defer { cleanup(dir) }
        let path = dir + "/parley.ivf"
        let frames = cameraFrames(width: 160, height: 120, count: 15)
        let encoder = try VP8Encoder(configuration: .camera(width: 160, height: 120, targetBitrate: 300))
        let writer = try IVFFileWriter(path: path, header: IVFHeader(width: 160, height: 120, timebaseDenominator: 90_000))
        for (i, frame) in frames.enumerated() {
            try encoder.encode(frame, pts: Int64(i * 3000)) { encoded in
                try? writer.write(frame: encoded.bytes, pts: encoded.info.pts)
            }
        }
        try writer.finish()
        #expect(writer.frameCount == 15)
        #expect(try IVFReader(bytes: MediaFile.readAll(path: path)).header.frameCount == 15)

        let result = try #require(try runTool("ffprobe", [
            "-v", "error", "-count_frames", "-select_streams", "v:0",
            "-show_entries", "stream=codec_name,width,height,nb_read_frames", "-of", "default=noprint_wrappers=1", path,
        ]))
        #expect(result.status == 0, "ffprobe: \(result.stderr)")
        let fields = keyValues(result.stdout)
        #expect(fields["codec_name"] == "vp8")
        #expect(fields["width"] == "160" && fields["height"] == "120")
        #expect(fields["nb_read_frames"] == "15")
    }

    @Test("an Ogg Opus file written by Parley is read by ffprobe and decoded by ffmpeg to the right length")
    func oggThroughFFmpeg() throws {
        let dir = try makeTemporaryDirectory()
        defer { cleanup(dir) }
        let path = dir + "/parley.opus"
        let encoder = try OpusAudioEncoder(configuration: OpusEncoderConfiguration(application: .audio, channels: 2,
                                                                                   bitrate: 64_000))
        var music = MusicSource(channels: 2)
        let (pcm, packets) = try encodeAudio(encoder, frames: 100) { music.fill(&$0) }
        // Pretend the input was 300 samples shorter than the packets cover
        // (after the lookahead) and let the last granule trim it (RFC 7845 §4.5).
        let original = 100 * 960 - encoder.lookahead - 300
        let writer = try OggOpusFileWriter(path: path, head: OpusHead(channels: 2, preSkip: encoder.lookahead))
        for p in packets { try writer.write(packet: p, samples: 960) }
        try writer.finish(originalSampleCount: original)

        let probe = try #require(try runTool("ffprobe", [
            "-v", "error", "-show_entries", "stream=codec_name,channels:format=duration",
            "-of", "default=noprint_wrappers=1", path,
        ]))
        #expect(probe.status == 0, "ffprobe: \(probe.stderr)")
        let fields = keyValues(probe.stdout)
        #expect(fields["codec_name"] == "opus")
        #expect(fields["channels"] == "2")
        let duration = try #require(fields["duration"].flatMap(Double.init))
        #expect(abs(duration - Double(original) / 48_000) < 0.01, "ffprobe duration \(duration)")

        // ffmpeg honours pre-skip and end trimming: it outputs exactly the
        // input's length, aligned with the input.
        let wavPath = dir + "/decoded.wav"
        let decode = try #require(try runTool("ffmpeg", ["-v", "error", "-y", "-i", path, "-c:a", "pcm_s16le", wavPath]))
        #expect(decode.status == 0, "ffmpeg: \(decode.stderr)")
        let wav = try WAVAudio(parsing: MediaFile.readAll(path: wavPath))
        #expect(wav.format.channels == 2 && wav.format.sampleRate == 48_000)
        #expect(wav.samples.count == original * 2)
        let cmp = try #require(AudioQuality.compare(reference: pcm, decoded: wav.samples, channels: 2, maxDelay: 50))
        #expect(cmp.delay == 0, "pre-skip not applied: delay \(cmp.delay)")
        #expect(cmp.correlation > 0.95)
    }

    @Test("a WAV file written by Parley is read by ffprobe")
    func wavThroughFFprobe() throws {
        let dir = try makeTemporaryDirectory()
        defer { cleanup(dir) }
        let path = dir + "/speech.wav"
        var speech = SpeechSource()
        var samples = [Int16](repeating: 0, count: 24_000)
        speech.fill(&samples)
        let writer = try WAVFileWriter(path: path, format: WAVFormat(channels: 1))
        try writer.write(samples)
        try writer.finish()
        #expect(try WAVAudio(parsing: MediaFile.readAll(path: path)).samples == samples)
        let probe = try #require(try runTool("ffprobe", [
            "-v", "error", "-show_entries", "stream=codec_name,sample_rate,channels,duration_ts",
            "-of", "default=noprint_wrappers=1", path,
        ]))
        let fields = keyValues(probe.stdout)
        #expect(fields["codec_name"] == "pcm_s16le")
        #expect(fields["sample_rate"] == "48000" && fields["channels"] == "1")
        #expect(fields["duration_ts"] == "24000")
    }

    @Test("an IVF file made by vpxenc from a Parley Y4M decodes in Parley with the right frame count and PSNR")
    func vpxencToParley() throws {
        let dir = try makeTemporaryDirectory()
        defer { cleanup(dir) }
        let y4mPath = dir + "/camera.y4m", ivfPath = dir + "/vpxenc.ivf"
        let frames = cameraFrames(width: 160, height: 120, count: 12)
        let y4m = try Y4MFileWriter(path: y4mPath, header: Y4MHeader(width: 160, height: 120))
        for f in frames { try y4m.write(f) }
        y4m.finish()

        // The same settings Parley's encoder would use, as vpxenc arguments.
        var config = VP8EncoderConfiguration(width: 160, height: 120, targetBitrate: 400)
        config.cpuUsed = -8
        let result = try #require(try runTool("vpxenc", config.vpxencArguments + ["--quiet", "--ivf", "-o", ivfPath, y4mPath]))
        #expect(result.status == 0, "vpxenc: \(result.stderr)")

        var reader = try IVFReader(bytes: MediaFile.readAll(path: ivfPath))
        #expect(reader.header.isVP8 && reader.header.width == 160 && reader.header.height == 120)
        let decoder = try VP8Decoder()
        var out = I420Frame(width: 160, height: 120)
        var count = 0
        var psnr: [Double] = []
        while let frame = try reader.nextFrame() {
            #expect(try decoder.decode(frame.bytes, into: &out))
            psnr.append(try #require(VideoQuality.psnr(frames[count], out)).y)
            count += 1
        }
        #expect(count == 12)
        #expect(reader.header.frameCount == 12)
        let mean = psnr.reduce(0, +) / Double(max(1, psnr.count))
        #expect(mean > 30, "mean luma PSNR \(mean) dB")
    }
}
