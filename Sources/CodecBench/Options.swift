import Codecs

/// Which codec(s) `parley bench codec` measures.
public enum CodecSelection: String, Sendable, CaseIterable {
    case vp8, opus, both
    var includesVideo: Bool { self != .opus }
    var includesAudio: Bool { self != .vp8 }
}

/// The synthetic sources (Codecs' deterministic generators).
public enum BenchSource: String, Sendable, CaseIterable {
    case camera, screen, speech, music
    var isVideo: Bool { self == .camera || self == .screen }
}

/// Which clock the summary lines compare (all figures are printed anyway).
public enum SummaryClock: String, Sendable, CaseIterable {
    /// Process CPU time (user + system) of the whole file→file path on both
    /// sides: Parley reads the input file, codes and writes the output file;
    /// the tool process does the same (rusage of the child). Robust on a
    /// shared machine, since waiting for a core costs no CPU time.
    case cpu
    /// Wall clock of the codec calls only: Parley's loop over frames held in
    /// memory vs the figure vpxenc/vpxdec print themselves (their timers
    /// wrap only the encode/decode calls). opusenc/opusdec print no such
    /// figure, so Opus falls back to the whole process's wall clock.
    case wall
}

/// Everything `parley bench codec` can be told. Plain values, so the
/// command-line layer only fills this in.
public struct CodecBenchOptions: Sendable {
    public var codec: CodecSelection = .both
    /// Video source (camera or screen) when no `.y4m` input is given.
    public var videoSource: BenchSource = .camera
    /// Audio source (speech or music) when no `.wav` input is given.
    public var audioSource: BenchSource = .music
    /// A `.y4m` or `.wav` file to use instead of a synthetic source.
    public var inputPath: String?
    public var width = 640
    public var height = 480
    public var frameRate = 30
    public var frames = 150
    /// Seconds of audio (the video length is `frames`).
    public var audioSeconds = 10.0
    /// VP8 target bitrates, kbit/s: one run per entry.
    public var bitratesKbps = [1500]
    public var cpuUsed = -8
    public var threads = 1
    public var repetitions = 3
    public var opusKbps = 64
    public var channels = 2
    public var opusFrameDuration: OpusEncoderConfiguration.FrameDuration = .ms20
    public var opusComplexity = 10
    public var clock: SummaryClock = .cpu
    /// Run the external tools too (off: Parley's figures only).
    public var compareWithTools = true

    // Loss round trip.
    public var lossMode = false
    public var lossRates: [Double] = [0, 1, 5, 10, 20]
    /// Share of surviving packets swapped with their successor.
    public var reorderRate = 0.01
    /// Delay from a failed decode to the forced keyframe (PLI + one RTT).
    public var keyframeRequestDelayMilliseconds = 100
    public var seed: UInt64 = 1
    public var mtu = 1200

    public var csvPath: String?
    public var plotPath: String?
    public var progress = true
    /// Scratch directory for the Y4M/WAV/IVF/Ogg files (made and removed).
    public var workDirectory: String?

    public init() {}

    /// The VP8 settings used on both sides (Parley and vpxenc).
    public func vp8Configuration(width: Int, height: Int, kbps: Int) -> VP8EncoderConfiguration {
        var c = VP8EncoderConfiguration.camera(width: width, height: height, targetBitrate: kbps)
        if videoSource == .screen { c = .screenShare(width: width, height: height, targetBitrate: kbps) }
        c.cpuUsed = cpuUsed
        c.threads = threads
        c.frameRate = frameRate
        return c
    }

    /// The Opus settings used on both sides (Parley and opusenc).
    public func opusConfiguration(channels: Int) -> OpusEncoderConfiguration {
        var c = OpusEncoderConfiguration(application: audioSource == .speech ? .voip : .audio, channels: channels,
                                         bitrate: opusKbps * 1000, frameDuration: opusFrameDuration)
        c.complexity = opusComplexity
        return c
    }
}

public enum CodecBenchError: Error, Sendable, Equatable {
    case invalidOption(String)
    case input(String)
    case video(VP8EncoderError)
    case videoDecode(VP8DecoderError)
    case audio(OpusCodecError)
    case file(FileIOError)
    case tool(ToolError)
}
