#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Codecs

/// A progress bar on stderr, drawn only when stderr is a terminal (so logs
/// and the summary on stdout never get control characters).
final class ProgressBar {
    private let total: Int
    private var done = 0
    private let enabled: Bool

    init(total: Int, enabled: Bool) {
        self.total = max(1, total)
        self.enabled = enabled && isatty(2) == 1
    }

    func step(_ label: String) {
        done = min(total, done + 1)
        guard enabled else { return }
        let width = 30
        let filled = done * width / total
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let text = "\r[\(bar)] \(pad("\(done * 100 / total)", 3))% \(label)"
        writeStderr(text + "\u{1b}[K")
    }

    private func writeStderr(_ text: String) {
        var bytes = Array(text.utf8)
        _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    }

    func finish() {
        guard enabled else { return }
        writeStderr("\r\u{1b}[K")
    }
}

/// Runs `parley bench codec`: the Parley side in process, the libvpx /
/// libopus command-line tools as subprocesses on the same input files,
/// alternating per repetition so slow phases of a shared machine hit both.
public enum CodecBenchRunner {
    public static func run(_ options: CodecBenchOptions, log: (String) -> Void) throws(CodecBenchError) -> CodecBenchReport {
        try validate(options)
        let work = try makeWorkDirectory(options.workDirectory)
        defer { removeWorkDirectory(work, created: options.workDirectory == nil) }
        var report = CodecBenchReport(options: options)

        let isY4M = options.inputPath?.hasSuffix(".y4m") ?? false
        let isWAV = options.inputPath?.hasSuffix(".wav") ?? false
        let video = options.codec.includesVideo ? try loadVideo(options, fromFile: isY4M) : []
        let audio = options.codec.includesAudio ? try loadAudio(options, fromFile: isWAV) : nil

        let tools = options.compareWithTools
        let repeats = options.repetitions
        var steps = 0
        if !video.isEmpty { steps += options.bitratesKbps.count * repeats * (tools ? 5 : 3) }
        if audio != nil { steps += repeats * (tools ? 4 : 2) }
        if options.lossMode { steps += options.lossRates.count * ((video.isEmpty ? 0 : 1) + (audio == nil ? 0 : 1)) }
        let progress = ProgressBar(total: steps, enabled: options.progress)
        defer { progress.finish() }

        if let first = video.first {
            let y4m = "\(work)/source.y4m"
            try VideoBench.writeY4M(video, frameRate: options.frameRate, path: y4m)
            for kbps in options.bitratesKbps {
                let config = options.vp8Configuration(width: first.width, height: first.height, kbps: kbps)
                var row = BenchRow(kind: .vp8)
                (row.width, row.height, row.frameRate, row.frames) = (first.width, first.height, options.frameRate, video.count)
                (row.targetKbps, row.cpuUsed, row.threads) = (kbps, options.cpuUsed, options.threads)
                let n = Double(video.count)
                for r in 0..<repeats {
                    let label = "vp8 \(kbps)kbps run \(r + 1)/\(repeats)"
                    let (stream, enc) = try VideoBench.encode(video, configuration: config)
                    row.record(Metric.parleyEncodeMemWallFPS, n / enc.wall)
                    row.record(Metric.parleyEncodeMemCPUFPS, n / enc.cpu)
                    progress.step(label + ": parley encode")
                    let ivf = "\(work)/parley.ivf"
                    let encFile = try VideoBench.encodeFile(input: y4m, output: ivf, configuration: config)
                    row.record(Metric.parleyEncodeFileWallFPS, n / encFile.wall)
                    row.record(Metric.parleyEncodeFileCPUFPS, n / encFile.cpu)
                    progress.step(label + ": parley file encode")
                    if tools {
                        let tool = try VPXTools.encode(input: y4m, output: "\(work)/vpxenc.ivf", configuration: config,
                                                       workDirectory: work)
                        row.record(Metric.vpxencReportedFPS, tool.reportedFPS)
                        row.record(Metric.vpxencProcessWallFPS, n / tool.elapsed.wall)
                        row.record(Metric.vpxencProcessCPUFPS, n / tool.elapsed.cpu)
                        progress.step(label + ": vpxenc")
                    }
                    let dec = try VideoBench.decode(stream, threads: options.threads)
                    row.record(Metric.parleyDecodeMemWallFPS, n / dec.wall)
                    row.record(Metric.parleyDecodeMemCPUFPS, n / dec.cpu)
                    let decFile = try VideoBench.decodeFile(input: ivf, threads: options.threads)
                    row.record(Metric.parleyDecodeFileWallFPS, n / decFile.wall)
                    row.record(Metric.parleyDecodeFileCPUFPS, n / decFile.cpu)
                    progress.step(label + ": parley decode")
                    if tools {
                        // vpxdec decodes Parley's IVF: the same bitstream
                        // Parley's decoder was just timed on.
                        let tool = try VPXTools.decode(input: ivf, threads: options.threads, workDirectory: work)
                        row.record(Metric.vpxdecReportedFPS, tool.reportedFPS)
                        row.record(Metric.vpxdecProcessWallFPS, n / tool.elapsed.wall)
                        row.record(Metric.vpxdecProcessCPUFPS, n / tool.elapsed.cpu)
                        progress.step(label + ": vpxdec")
                    }
                    if r == 0 {
                        let q = try VideoBench.quality(of: stream, sources: video, frameRate: options.frameRate)
                        row.record(Metric.parleyPSNRY, q.psnrY)
                        row.record(Metric.parleyPSNR, q.psnrOverall)
                        row.record(Metric.parleyKbps, q.achievedKbps)
                        if tools {
                            let t = try VideoBench.quality(of: try VideoBench.readIVF(path: "\(work)/vpxenc.ivf"),
                                                           sources: video, frameRate: options.frameRate)
                            row.record(Metric.vpxencPSNRY, t.psnrY)
                            row.record(Metric.vpxencPSNR, t.psnrOverall)
                            row.record(Metric.vpxencKbps, t.achievedKbps)
                        }
                    }
                }
                report.rows.append(row)
            }
        }

        if let audio {
            let config = options.opusConfiguration(channels: audio.channels)
            var row = BenchRow(kind: .opus)
            (row.channels, row.targetKbps) = (audio.channels, options.opusKbps)
            let wav = "\(work)/source.wav"
            do {
                let sink = try FileSink(path: wav)
                try sink.write(WAVAudio(format: WAVFormat(channels: audio.channels), samples: audio.samples).serialized())
                sink.close()
            } catch { throw .file(error) }
            for r in 0..<repeats {
                let label = "opus run \(r + 1)/\(repeats)"
                let (stream, enc) = try AudioBench.encode(audio.samples, configuration: config)
                let seconds = stream.durationSeconds
                row.record(Metric.parleyEncodeMemWallRT, seconds / enc.wall)
                row.record(Metric.parleyEncodeMemCPURT, seconds / enc.cpu)
                let ogg = "\(work)/parley.opus"
                let encFile = try AudioBench.encodeFile(input: wav, output: ogg, configuration: config)
                row.record(Metric.parleyEncodeFileWallRT, seconds / encFile.wall)
                row.record(Metric.parleyEncodeFileCPURT, seconds / encFile.cpu)
                progress.step(label + ": parley encode")
                if tools {
                    let t = try OpusTools.encode(input: wav, output: "\(work)/opusenc.opus", configuration: config,
                                                 workDirectory: work)
                    row.record(Metric.opusencProcessWallRT, seconds / t.wall)
                    row.record(Metric.opusencProcessCPURT, seconds / t.cpu)
                    progress.step(label + ": opusenc")
                }
                let dec = try AudioBench.decode(stream, channels: audio.channels)
                row.record(Metric.parleyDecodeMemWallRT, seconds / dec.wall)
                row.record(Metric.parleyDecodeMemCPURT, seconds / dec.cpu)
                let decFile = try AudioBench.decodeFile(input: ogg, output: "\(work)/parley-decoded.wav")
                row.record(Metric.parleyDecodeFileWallRT, seconds / decFile.wall)
                row.record(Metric.parleyDecodeFileCPURT, seconds / decFile.cpu)
                progress.step(label + ": parley decode")
                if tools {
                    // opusdec decodes Parley's file: the same packets.
                    let t = try OpusTools.decode(input: ogg, output: "\(work)/opusdec.wav", workDirectory: work)
                    row.record(Metric.opusdecProcessWallRT, seconds / t.wall)
                    row.record(Metric.opusdecProcessCPURT, seconds / t.cpu)
                    progress.step(label + ": opusdec")
                }
                if r == 0 {
                    let decoded = try AudioBench.decodeAll(stream, channels: audio.channels)
                    row.record(Metric.parleySNR, AudioBench.snr(reference: audio.samples, decoded: decoded,
                                                                channels: audio.channels, lookahead: stream.lookahead))
                    row.record(Metric.parleyKbps, stream.kbps)
                    if tools {
                        let toolOgg = "\(work)/opusenc.opus"
                        _ = try OpusTools.decode(input: toolOgg, output: "\(work)/opusenc-decoded.wav", workDirectory: work)
                        do {
                            let pcm = try WAVAudio(parsing: try MediaFile.readAll(path: "\(work)/opusenc-decoded.wav"))
                            // opusdec trims the pre-skip itself: delay search from 0.
                            row.record(Metric.opusencSNR, AudioBench.snr(reference: audio.samples, decoded: pcm.samples,
                                                                         channels: audio.channels, lookahead: 0))
                            // Packet bytes only (no Ogg overhead), like Parley's figure.
                            let packets = try OggOpusStream(parsing: try MediaFile.readAll(path: toolOgg)).packets
                            let size = packets.reduce(0) { $0 + $1.bytes.count }
                            row.record(Metric.opusencKbps, Double(size * 8) / seconds / 1000)
                        } catch { throw .input("opusenc output: \(error)") }
                    }
                }
            }
            report.rows.append(row)
        }

        if options.lossMode {
            let delayFrames = max(1, (options.keyframeRequestDelayMilliseconds * options.frameRate + 999) / 1000)
            if let first = video.first {
                // The first (with --bitrates, usually the lowest) bitrate:
                // a keyframe there spans few packets, so at high loss it
                // can still get through whole.
                let kbps = options.bitratesKbps.first ?? 1500
                let config = options.vp8Configuration(width: first.width, height: first.height, kbps: kbps)
                for rate in options.lossRates {
                    let result = try LossRoundTrip.video(
                        frames: video, configuration: config, lossRate: rate / 100, reorderRate: options.reorderRate,
                        seed: options.seed, keyframeRequestDelayFrames: delayFrames, mtu: options.mtu)
                    var row = BenchRow(kind: .vp8Loss)
                    (row.width, row.height, row.frameRate, row.frames) = (first.width, first.height, options.frameRate, video.count)
                    (row.targetKbps, row.cpuUsed, row.threads, row.lossPercent) = (kbps, options.cpuUsed, options.threads, rate)
                    row.record(Metric.lossPSNRY, result.psnrY)
                    row.record(Metric.lossPSNR, result.psnrOverall)
                    row.record(Metric.framesDecoded, Double(result.framesDecoded))
                    row.record(Metric.framesFrozen, Double(result.framesFrozen))
                    row.record(Metric.keyframeRequests, Double(result.keyframeRequests))
                    row.record(Metric.packetsSent, Double(result.packetsSent))
                    row.record(Metric.packetsLost, Double(result.packetsLost))
                    report.rows.append(row)
                    progress.step("vp8 loss \(fixed(rate, 1))%")
                }
            }
            if let audio {
                // Loss runs use speech and VoIP mode: in-band FEC (LBRR)
                // lives in Opus's SILK layer, which music at 64 kbit/s
                // does not use.
                var speech = SpeechSource(channels: audio.channels)
                var pcm = [Int16](repeating: 0, count: audio.samples.count)
                speech.fill(&pcm)
                var config = options.opusConfiguration(channels: audio.channels)
                config.application = .voip
                for rate in options.lossRates {
                    let result = try LossRoundTrip.audio(pcm: pcm, configuration: config, lossRate: rate / 100,
                                                         reorderRate: options.reorderRate, seed: options.seed)
                    var row = BenchRow(kind: .opusLoss)
                    (row.channels, row.targetKbps, row.lossPercent) = (audio.channels, options.opusKbps, rate)
                    row.record(Metric.snrFEC, result.snrFEC)
                    row.record(Metric.snrPLC, result.snrPLC)
                    row.record(Metric.recoveredByFEC, Double(result.recoveredByFEC))
                    row.record(Metric.packetsSent, Double(result.packetsSent))
                    row.record(Metric.packetsLost, Double(result.packetsLost))
                    report.rows.append(row)
                    progress.step("opus loss \(fixed(rate, 1))%")
                }
            }
        }
        progress.finish()
        return report
    }

    static func validate(_ o: CodecBenchOptions) throws(CodecBenchError) {
        guard o.repetitions >= 1 else { throw .invalidOption("--repeat must be at least 1") }
        guard o.frames >= 1, o.frameRate >= 1 else { throw .invalidOption("--frames and --fps must be positive") }
        guard !o.bitratesKbps.isEmpty, o.bitratesKbps.allSatisfy({ $0 > 0 }) else {
            throw .invalidOption("--bitrate/--bitrates must be positive")
        }
        guard o.channels == 1 || o.channels == 2 else { throw .invalidOption("--channels must be 1 or 2") }
        guard o.audioSeconds > 0 else { throw .invalidOption("--seconds must be positive") }
        guard o.lossRates.allSatisfy({ (0...100).contains($0) }) else { throw .invalidOption("--loss-rates must be 0…100") }
        guard o.videoSource.isVideo, !o.audioSource.isVideo else { throw .invalidOption("bad source") }
        if let path = o.inputPath, !(path.hasSuffix(".y4m") || path.hasSuffix(".wav")) {
            throw .invalidOption("--input must be a .y4m or .wav file")
        }
        if o.compareWithTools {
            var needed: [String] = []
            if o.codec.includesVideo { needed += ["vpxenc", "vpxdec"] }
            if o.codec.includesAudio { needed += ["opusenc", "opusdec"] }
            for tool in needed where !Tool.isInstalled(tool) {
                throw .tool(.spawnFailed(tool: tool, errno: ENOENT))
            }
        }
    }

    static func loadVideo(_ o: CodecBenchOptions, fromFile: Bool) throws(CodecBenchError) -> [I420Frame] {
        var frames: [I420Frame] = []
        if fromFile, let path = o.inputPath {
            do {
                var reader = try Y4MReader(bytes: try MediaFile.readAll(path: path))
                var frame = I420Frame(width: reader.header.width, height: reader.header.height)
                while frames.count < o.frames, try reader.nextFrame(into: &frame) { frames.append(frame) }
            } catch { throw .input("\(path): \(error)") }
            guard !frames.isEmpty else { throw .input("\(path): no frames") }
            return frames
        }
        guard (16...4096).contains(o.width), (16...4096).contains(o.height) else {
            throw .invalidOption("--width/--height must be 16…4096")
        }
        frames.reserveCapacity(o.frames)
        var frame = I420Frame(width: o.width, height: o.height)
        switch o.videoSource {
        case .screen:
            var source = ScreenSource(width: o.width, height: o.height)
            for _ in 0..<o.frames { source.nextFrame(into: &frame); frames.append(frame) }
        default:
            var source = CameraSource(width: o.width, height: o.height)
            for _ in 0..<o.frames { source.nextFrame(into: &frame); frames.append(frame) }
        }
        return frames
    }

    struct Audio { var samples: [Int16]; var channels: Int }

    static func loadAudio(_ o: CodecBenchOptions, fromFile: Bool) throws(CodecBenchError) -> Audio {
        if fromFile, let path = o.inputPath {
            do {
                let wav = try WAVAudio(parsing: try MediaFile.readAll(path: path))
                guard wav.format.sampleRate == 48_000, wav.format.channels <= 2 else {
                    throw CodecBenchError.input("\(path): need 48 kHz mono or stereo")
                }
                return Audio(samples: wav.samples, channels: wav.format.channels)
            } catch let e as CodecBenchError { throw e } catch { throw .input("\(path): \(error)") }
        }
        var samples = [Int16](repeating: 0, count: Int(o.audioSeconds * 48_000) * o.channels)
        if o.audioSource == .speech {
            var s = SpeechSource(channels: o.channels); s.fill(&samples)
        } else {
            var s = MusicSource(channels: o.channels); s.fill(&samples)
        }
        return Audio(samples: samples, channels: o.channels)
    }

    static func makeWorkDirectory(_ given: String?) throws(CodecBenchError) -> String {
        if let given {
            if mkdir(given, 0o755) != 0 && errno != EEXIST { throw .file(.open(path: given, errno: errno)) }
            return given
        }
        var template = Array("/tmp/parley-bench-codec-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw .file(.open(path: "/tmp", errno: errno)) }
        return String(cString: made)
    }

    static func removeWorkDirectory(_ path: String, created: Bool) {
        for name in ["source.y4m", "source.wav", "parley.ivf", "vpxenc.ivf", "parley.opus", "opusenc.opus",
                     "parley-decoded.wav", "opusdec.wav", "opusenc-decoded.wav"] {
            unlink("\(path)/\(name)")
        }
        if created { rmdir(path) }
    }
}
