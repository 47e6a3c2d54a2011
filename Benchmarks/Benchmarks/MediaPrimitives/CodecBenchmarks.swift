import Benchmark
import Codecs

// Steady-state codec calls, one frame (or one 20 ms packet) per operation,
// with mallocCountTotal: after warm-up the wrappers reuse their libvpx /
// libopus state and buffers, so the expected count is 0 per frame. Inputs
// are made before the benchmark (a few distinct synthetic frames / a second
// of audio, cycled) so each call does real coding work.
func registerCodecBenchmarks() {
    let perFrame = Benchmark.Configuration(
        metrics: [.wallClock, .mallocCountTotal, .throughput], scalingFactor: .one,
        maxDuration: .seconds(2), maxIterations: 2000)

    // VP8 encode, 640x480, CBR 1500 kbit/s, cpu-used -8, one thread: the
    // frame-by-frame call with the closure API (the packet bytes are only
    // looked at, not copied).
    let width = 640, height = 480
    var source = CameraSource(width: width, height: height)
    var scratch = I420Frame(width: width, height: height)
    let frames: [I420Frame] = (0..<30).map { _ in source.nextFrame(into: &scratch); return scratch }
    var config = VP8EncoderConfiguration(width: width, height: height, targetBitrate: 1500)
    config.cpuUsed = -8
    let encoder = try! VP8Encoder(configuration: config)
    var encodeIndex = 0
    Benchmark("Codec VP8 encode 640x480 frame (1500 kbps, cpu-used -8)", configuration: perFrame) { benchmark throws in
        var bytes = 0
        for _ in benchmark.scaledIterations {
            let frame = frames[encodeIndex % frames.count]
            try encoder.encode(frame, pts: Int64(encodeIndex * 3000), forceKeyframe: encodeIndex == 0) { bytes &+= $0.bytes.count }
            encodeIndex += 1
        }
        blackHole(bytes)
    }

    // VP8 decode of a 300-frame stream (one keyframe, then inter frames),
    // cycled; the decoded picture is handed out as a view, not copied.
    var stream: [[UInt8]] = []
    let streamEncoder = try! VP8Encoder(configuration: config)
    for i in 0..<300 {
        var out: [UInt8] = []
        _ = try! streamEncoder.encode(frames[i % frames.count], pts: Int64(i * 3000), forceKeyframe: i == 0, into: &out)
        stream.append(out)
    }
    let decoder = try! VP8Decoder()
    var decodeIndex = 0
    Benchmark("Codec VP8 decode 640x480 frame", configuration: perFrame) { benchmark throws in
        var shown = 0
        for _ in benchmark.scaledIterations {
            let packet = stream[decodeIndex % stream.count]
            try packet.withUnsafeBytes { raw in if try decoder.decode(raw, { _ in }) { shown += 1 } }
            decodeIndex += 1
        }
        blackHole(shown)
    }

    // Opus, 48 kHz stereo, 64 kbit/s, 20 ms frames, complexity 10.
    var music = MusicSource(channels: 2)
    var pcm = [Int16](repeating: 0, count: 48_000 * 2)
    music.fill(&pcm)
    var opusConfig = OpusEncoderConfiguration(application: .audio, channels: 2, bitrate: 64_000)
    opusConfig.complexity = 10
    let opusEncoder = try! OpusAudioEncoder(configuration: opusConfig)
    let step = opusEncoder.samplesPerFrame
    let pcmBuffer = UnsafeMutableBufferPointer<Int16>.allocate(capacity: pcm.count)
    _ = pcmBuffer.initialize(from: pcm)
    var opusIndex = 0
    Benchmark("Codec Opus encode 20 ms stereo (64 kbps)", configuration: perFrame) { benchmark throws in
        var bytes = 0
        let frameCount = pcm.count / step
        for _ in benchmark.scaledIterations {
            let i = opusIndex % frameCount
            bytes &+= try opusEncoder.encode(UnsafeBufferPointer(rebasing: pcmBuffer[(i * step)..<((i + 1) * step)])) { $0.count }
            opusIndex += 1
        }
        blackHole(bytes)
    }

    var packets: [[UInt8]] = []
    let packetEncoder = try! OpusAudioEncoder(configuration: opusConfig)
    for i in 0..<(pcm.count / step) {
        var out: [UInt8] = []
        try! packetEncoder.encode(Array(pcm[(i * step)..<((i + 1) * step)]), into: &out)
        packets.append(out)
    }
    let opusDecoder = try! OpusAudioDecoder(channels: 2)
    var packetIndex = 0
    Benchmark("Codec Opus decode 20 ms stereo (64 kbps)", configuration: perFrame) { benchmark throws in
        var samples = 0
        for _ in benchmark.scaledIterations {
            let packet = packets[packetIndex % packets.count]
            samples &+= try packet.withUnsafeBytes { raw in try opusDecoder.decode(raw) { $0.count } }
            packetIndex += 1
        }
        blackHole(samples)
    }
}
