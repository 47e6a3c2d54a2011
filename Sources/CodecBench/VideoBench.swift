import Codecs

/// An encoded VP8 stream held in one byte arena (one allocation for the
/// whole run, not one per frame).
public struct EncodedVideo: Sendable {
    public var bytes: [UInt8] = []
    /// `bytes[frameRanges[i]]` is frame i.
    public var frameRanges: [Range<Int>] = []
    public var keyframes = 0

    public var frameCount: Int { frameRanges.count }

    /// Achieved bitrate in kbit/s at `frameRate`.
    public func kbps(frameRate: Int) -> Double {
        guard frameCount > 0 else { return 0 }
        return Double(bytes.count * 8) / (Double(frameCount) / Double(frameRate)) / 1000
    }

    public func withFrame<R>(_ index: Int, _ body: (UnsafeRawBufferPointer) throws(CodecBenchError) -> R)
        throws(CodecBenchError) -> R {
        let range = frameRanges[index]
        let result: Result<R, CodecBenchError> = bytes.withUnsafeBytes { raw in
            do throws(CodecBenchError) { return .success(try body(UnsafeRawBufferPointer(rebasing: raw[range]))) }
            catch { return .failure(error) }
        }
        return try result.get()
    }
}

/// Parley's side of the VP8 measurements, and the quality check used for
/// both sides (the tools' output is decoded and scored the same way).
public enum VideoBench {
    /// Encodes `frames` (already in memory) and times only the loop over
    /// `VP8Encoder.encode`, including copying the output into the arena.
    public static func encode(_ frames: [I420Frame], configuration: VP8EncoderConfiguration)
        throws(CodecBenchError) -> (EncodedVideo, Elapsed) {
        let encoder: VP8Encoder
        do { encoder = try VP8Encoder(configuration: configuration) } catch { throw .video(error) }
        var out = EncodedVideo()
        let perFrame = configuration.targetBitrate * 1000 / 8 / max(1, configuration.frameRate)
        out.bytes.reserveCapacity(perFrame * (frames.count + 8) * 2 + 65_536)
        out.frameRanges.reserveCapacity(frames.count)
        let duration = configuration.timebaseDenominator / configuration.frameRate
        let (_, elapsed) = try Clock.measure { () throws(CodecBenchError) in
            for (i, frame) in frames.enumerated() {
                do throws(VP8EncoderError) {
                    try encoder.encode(frame, pts: Int64(i * duration), forceKeyframe: i == 0) { encoded in
                        let start = out.bytes.count
                        out.bytes.append(contentsOf: encoded.bytes)
                        out.frameRanges.append(start..<out.bytes.count)
                        if encoded.info.isKeyframe { out.keyframes += 1 }
                    }
                } catch { throw .video(error) }
            }
        }
        return (out, elapsed)
    }

    /// Decodes the stream, timing only the decode calls (the picture is not
    /// copied out, like `vpxdec --noblit`).
    public static func decode(_ stream: EncodedVideo, threads: Int = 1) throws(CodecBenchError) -> Elapsed {
        let decoder: VP8Decoder
        do { decoder = try VP8Decoder(threads: threads) } catch { throw .videoDecode(error) }
        var shown = 0
        let (_, elapsed) = try Clock.measure { () throws(CodecBenchError) in
            for i in 0..<stream.frameCount {
                try stream.withFrame(i) { (raw) throws(CodecBenchError) in
                    do throws(VP8DecoderError) { if try decoder.decode(raw, { _ in }) { shown += 1 } } catch { throw .videoDecode(error) }
                }
            }
        }
        guard shown == stream.frameCount else { throw .input("decoded \(shown) of \(stream.frameCount) frames") }
        return elapsed
    }

    /// Decodes `stream` and scores every picture against its source frame.
    public static func quality(of stream: EncodedVideo, sources: [I420Frame], frameRate: Int)
        throws(CodecBenchError) -> VideoQualityFigures {
        let decoder: VP8Decoder
        do { decoder = try VP8Decoder() } catch { throw .videoDecode(error) }
        var ys: [Double] = [], overall: [Double] = []
        for i in 0..<min(stream.frameCount, sources.count) {
            try stream.withFrame(i) { (raw) throws(CodecBenchError) in
                do throws(VP8DecoderError) {
                    try decoder.decode(raw) { view in
                        if let p = sources[i].withView({ VideoQuality.psnr(view, $0) }) {
                            ys.append(VideoStatistics.capped(p.y))
                            overall.append(VideoStatistics.capped(p.overall))
                        }
                    }
                } catch { throw .videoDecode(error) }
            }
        }
        return VideoQualityFigures(psnrY: VideoStatistics.mean(ys) ?? 0, psnrOverall: VideoStatistics.mean(overall) ?? 0,
                                   achievedKbps: stream.kbps(frameRate: frameRate))
    }

    /// Reads an IVF file into an `EncodedVideo` (for scoring vpxenc's output).
    public static func readIVF(path: String) throws(CodecBenchError) -> EncodedVideo {
        let bytes: [UInt8]
        do { bytes = try MediaFile.readAll(path: path) } catch { throw .file(error) }
        var out = EncodedVideo()
        do {
            var reader = try IVFReader(bytes: bytes)
            while let frame = try reader.nextFrame() {
                let start = out.bytes.count
                out.bytes.append(contentsOf: frame.bytes)
                out.frameRanges.append(start..<out.bytes.count)
                if let h = try? VP8FrameHeader(parsing: Array(frame.bytes)), h.isKeyframe { out.keyframes += 1 }
            }
        } catch { throw .input("\(path): \(error)") }
        return out
    }

    /// Writes frames to a Y4M file (the tools' input; not timed).
    public static func writeY4M(_ frames: [I420Frame], frameRate: Int, path: String) throws(CodecBenchError) {
        guard let first = frames.first else { throw .input("no frames") }
        do {
            let writer = try Y4MFileWriter(path: path, header: Y4MHeader(width: first.width, height: first.height,
                                                                          frameRateNumerator: frameRate))
            for f in frames { try writer.write(f) }
            writer.finish()
        } catch { throw .file(error) }
    }

    /// Parley's whole file→file path, the counterpart of one vpxenc run:
    /// read the Y4M file picture by picture, encode, write IVF.
    public static func encodeFile(input: String, output: String, configuration: VP8EncoderConfiguration)
        throws(CodecBenchError) -> Elapsed {
        let (_, elapsed) = try Clock.measure { () throws(CodecBenchError) in
            do {
                let reader = try Y4MFileReader(path: input)
                let encoder = try VP8Encoder(configuration: configuration)
                let writer = try IVFFileWriter(path: output, header: IVFHeader(
                    width: configuration.width, height: configuration.height,
                    timebaseDenominator: configuration.timebaseDenominator))
                var frame = I420Frame(width: reader.header.width, height: reader.header.height)
                let duration = configuration.timebaseDenominator / configuration.frameRate
                var index = 0
                var writeError: FileIOError?
                while try reader.nextFrame(into: &frame) {
                    try encoder.encode(frame, pts: Int64(index * duration), forceKeyframe: index == 0) { encoded in
                        do throws(FileIOError) { try writer.write(frame: encoded.bytes, pts: encoded.info.pts) } catch { writeError = error }
                    }
                    if let writeError { throw writeError }
                    index += 1
                }
                try writer.finish()
            } catch let e as CodecBenchError { throw e }
            catch let e as FileIOError { throw .file(e) }
            catch let e as VP8EncoderError { throw .video(e) }
            catch { throw .input("\(input): \(error)") }
        }
        return elapsed
    }

    /// Parley's file→null decode, the counterpart of `vpxdec --noblit`:
    /// read the IVF file, parse it, decode every frame.
    public static func decodeFile(input: String, threads: Int) throws(CodecBenchError) -> Elapsed {
        let (_, elapsed) = try Clock.measure { () throws(CodecBenchError) in
            do {
                var reader = try IVFReader(bytes: try MediaFile.readAll(path: input))
                let decoder = try VP8Decoder(threads: threads)
                while let frame = try reader.nextFrame() {
                    _ = try frame.bytes.withUnsafeBytes { raw in try decoder.decode(raw, { _ in }) }
                }
            } catch let e as FileIOError { throw .file(e) }
            catch let e as VP8DecoderError { throw .videoDecode(e) }
            catch { throw .input("\(input): \(error)") }
        }
        return elapsed
    }
}

/// vpxenc / vpxdec runs and the figures they print.
public enum VPXTools {
    /// vpxenc with exactly `configuration.vpxencArguments`. Returns the
    /// process's own elapsed times and the fps vpxenc prints (its timer
    /// wraps only the encode calls).
    static func encode(input: String, output: String, configuration: VP8EncoderConfiguration,
                       workDirectory: String) throws(CodecBenchError) -> (elapsed: Elapsed, reportedFPS: Double) {
        let run: ToolRun
        do { run = try Tool.run("vpxenc", configuration.vpxencArguments + ["--ivf", "-o", output, input],
                                workDirectory: workDirectory) } catch { throw .tool(error) }
        guard let fps = parseVpxencFPS(run.stderr + run.stdout) else {
            throw .tool(.unparsableOutput(tool: "vpxenc", output: String(run.stderr.suffix(300))))
        }
        return (run.elapsed, fps)
    }

    /// `vpxdec --noblit --summary`: decodes without writing pictures.
    static func decode(input: String, threads: Int, workDirectory: String)
        throws(CodecBenchError) -> (elapsed: Elapsed, reportedFPS: Double) {
        let run: ToolRun
        do { run = try Tool.run("vpxdec", ["--codec=vp8", "--noblit", "--summary", "--threads=\(threads)", input],
                                workDirectory: workDirectory) } catch { throw .tool(error) }
        guard let fps = parseVpxdecFPS(run.stderr + run.stdout) else {
            throw .tool(.unparsableOutput(tool: "vpxdec", output: String(run.stderr.suffix(300))))
        }
        return (run.elapsed, fps)
    }

    /// vpxenc's last status line ends `206119 us (291.09 fps)`: the figure
    /// in the last parenthesis before " fps)".
    public static func parseVpxencFPS(_ text: String) -> Double? { lastFPS(in: text, marker: " fps)") }

    /// vpxdec `--summary`: `60 decoded frames/60 showed frames in 71126 us (843.57 fps)`.
    public static func parseVpxdecFPS(_ text: String) -> Double? { lastFPS(in: text, marker: " fps)") }

    static func lastFPS(in text: String, marker: String) -> Double? {
        // Status lines are separated by \r or \n; take the last with a figure.
        for part in text.split(separator: "(").reversed() {
            if let r = part.firstRange(of: marker), let value = Double(part[..<r.lowerBound]) { return value }
        }
        return nil
    }
}
