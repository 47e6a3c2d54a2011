import ArgumentParser
import CodecBench
import Codecs

struct BenchCodec: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "codec",
        abstract: "Parley's VP8/Opus encode and decode vs vpxenc/vpxdec/opusenc/opusdec, same input and settings.",
        discussion: """
        Summary clock (--clock): 'cpu' (default) compares process CPU time of the same file-to-file work \
        on both sides (Parley reads the Y4M/WAV file, codes, writes IVF/Ogg; the tool process does the \
        same, timed by rusage). 'wall' compares the wall clock of the codec calls only: Parley's loop over \
        frames in memory vs the fps vpxenc/vpxdec print for their own codec calls (Opus: whole process). \
        All figures are printed in the detail section either way.
        """)

    @Option(help: "vp8, opus or both.") var codec: String = "both"
    @Option(help: "Synthetic source: camera or screen (video), speech or music (audio).") var source: [String] = []
    @Option(help: "A .y4m or .wav file instead of a synthetic source.") var input: String?
    @Option var width = 640
    @Option var height = 480
    @Option var fps = 30
    @Option(help: "Video frames.") var frames = 150
    @Option(help: "Seconds of audio.") var seconds = 10.0
    @Option(help: "VP8 target bitrate, kbit/s.") var bitrate: Int?
    @Option(help: "Several VP8 bitrates, comma separated (e.g. 300,600,1000,1500,2500).") var bitrates: String?
    @Option(name: .customLong("cpu-used"), parsing: .unconditional, help: "libvpx speed, -16…16 (negative values fix the speed).")
    var cpuUsed = -8
    @Option var threads = 1
    @Option(name: .customLong("repeat"), help: "Repetitions; the median is reported.") var repetitions = 3
    @Option(name: .customLong("opus-bitrate"), help: "Opus bitrate, kbit/s.") var opusBitrate = 64
    @Option(help: "Audio channels (1 or 2).") var channels = 2
    @Option(help: "Opus frame size in ms (10, 20, 40, 60).") var framesize = 20
    @Option(help: "Opus complexity 0…10.") var comp = 10
    @Option(help: "Summary clock: cpu or wall.") var clock: String = "cpu"
    @Flag(help: "Loss round trip (RTP packetize, lossy link, repair, decode).") var loss = false
    @Option(name: .customLong("loss-rates"), help: "Loss percentages for --loss.") var lossRates = "0,1,5,10,20"
    @Option(name: .customLong("reorder-rate"), help: "Share of packets swapped with the next one.") var reorderRate = 0.01
    @Option(help: "Keyframe request delay (PLI + RTT), ms.") var rtt = 100
    @Option(help: "Seed of the simulated link.") var seed: UInt64 = 1
    @Option var mtu = 1200
    @Option(help: "Write one CSV row per run.") var csv: String?
    @Option(help: "Write a PNG plot (gnuplot).") var plot: String?
    @Flag(name: .customLong("no-tools"), help: "Parley only; do not run the libvpx/opus tools.") var noTools = false
    @Flag(help: "No progress bar.") var quiet = false

    func run() throws {
        var o = CodecBenchOptions()
        guard let c = CodecSelection(rawValue: codec) else { throw ValidationError("--codec must be vp8, opus or both") }
        o.codec = c
        for s in source {
            guard let kind = BenchSource(rawValue: s) else { throw ValidationError("unknown --source \(s)") }
            if kind == .camera || kind == .screen { o.videoSource = kind } else { o.audioSource = kind }
        }
        o.inputPath = input
        (o.width, o.height, o.frameRate, o.frames, o.audioSeconds) = (width, height, fps, frames, seconds)
        if let bitrates {
            let list = bitrates.split(separator: ",").compactMap { Int($0.filter { $0 != " " }) }
            guard !list.isEmpty else { throw ValidationError("--bitrates: comma-separated kbit/s") }
            o.bitratesKbps = list
        } else if let bitrate {
            o.bitratesKbps = [bitrate]
        }
        (o.cpuUsed, o.threads, o.repetitions) = (cpuUsed, threads, repetitions)
        (o.opusKbps, o.channels, o.opusComplexity) = (opusBitrate, channels, comp)
        guard let duration = OpusEncoderConfiguration.FrameDuration(rawValue: framesize) else {
            throw ValidationError("--framesize must be 10, 20, 40 or 60")
        }
        o.opusFrameDuration = duration
        guard let clk = SummaryClock(rawValue: clock) else { throw ValidationError("--clock must be cpu or wall") }
        o.clock = clk
        o.lossMode = loss
        o.lossRates = lossRates.split(separator: ",").compactMap { Double($0.filter { $0 != " " }) }
        (o.reorderRate, o.keyframeRequestDelayMilliseconds, o.seed, o.mtu) = (reorderRate, rtt, seed, mtu)
        (o.csvPath, o.plotPath, o.compareWithTools, o.progress) = (csv, plot, !noTools, !quiet)

        let report: CodecBenchReport
        do { report = try CodecBenchRunner.run(o) { print($0) } } catch { throw ValidationError("bench codec: \(error)") }
        for line in report.detailLines() { print(line) }
        for line in report.lossTable() { print(line) }
        if let csv {
            do { try report.writeCSV(to: csv) } catch { throw ValidationError("--csv: \(error)") }
        }
        if let plot {
            do { try ReportPlot.write(report, to: plot) } catch { throw ValidationError("--plot: \(error)") }
        }
        print("summary (\(clk == .cpu ? "process CPU time, file to file" : "wall clock, codec calls only")):")
        for line in report.summaryLines() { print(line) }
    }
}

