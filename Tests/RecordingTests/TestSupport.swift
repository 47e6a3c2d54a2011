import Codecs
import ExternalTools
import Foundation
import RTCBase
import RTP
import Testing
@testable import Recording

// MARK: external tools

/// Runs /usr/bin/`name` (or the first on PATH); records an issue saying
/// what to install if it is missing.
func runTool(_ name: String, _ arguments: [String]) throws -> ToolResult? {
    guard let executable = ExternalTool.find(name) else {
        Issue.record("\(name) not found (looked in /usr/bin and PATH): install FFmpeg (apt-get install ffmpeg)")
        return nil
    }
    return try ExternalTool.run(executable, arguments)
}

struct ProbeResult {
    var codec: String?
    var width: Int?
    var height: Int?
    var channels: Int?
    var duration: Double?
}

/// ffprobe's view of the file's first stream and its duration.
func probe(_ path: String) throws -> ProbeResult? {
    guard let result = try runTool("ffprobe", [
        "-v", "error", "-show_entries", "stream=codec_name,width,height,channels:format=duration",
        "-of", "default=noprint_wrappers=1", path,
    ]) else { return nil }
    #expect(result.status == 0, "ffprobe failed: \(result.stderr)")
    var fields: [String: String] = [:]
    for line in result.stdout.split(separator: "\n") {
        let parts = line.split(separator: "=", maxSplits: 1)
        if parts.count == 2, fields[String(parts[0])] == nil { fields[String(parts[0])] = String(parts[1]) }
    }
    return ProbeResult(codec: fields["codec_name"], width: fields["width"].flatMap { Int($0) },
                       height: fields["height"].flatMap { Int($0) }, channels: fields["channels"].flatMap { Int($0) },
                       duration: fields["duration"].flatMap { Double($0) })
}

/// Checks ffprobe's codec and a duration within 10 % of `seconds`, and that
/// `ffmpeg -v error -i FILE -f null -` decodes the whole file silently.
func expectPlayable(_ path: String, codec: String, seconds: Double,
                    sourceLocation: SourceLocation = #_sourceLocation) throws {
    let info = try #require(try probe(path), sourceLocation: sourceLocation)
    #expect(info.codec == codec, "ffprobe codec \(info.codec ?? "none")", sourceLocation: sourceLocation)
    let duration = try #require(info.duration, "ffprobe reports no duration", sourceLocation: sourceLocation)
    #expect(abs(duration - seconds) <= 0.1 * seconds,
            "ffprobe duration \(duration) s, media time \(seconds) s", sourceLocation: sourceLocation)
    let decode = try #require(try runTool("ffmpeg", ["-nostdin", "-v", "error", "-i", path, "-f", "null", "-"]),
                              sourceLocation: sourceLocation)
    #expect(decode.status == 0, "ffmpeg exit status \(decode.status)", sourceLocation: sourceLocation)
    #expect(decode.stderr.isEmpty, "ffmpeg reported: \(decode.stderr)", sourceLocation: sourceLocation)
}

// MARK: temporary files

/// A fresh directory under the system's temporary directory, removed on deinit.
final class TemporaryDirectory {
    let path: String

    init() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("parley-recording-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        path = url.path
    }

    func file(_ name: String) -> String { path + "/" + name }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

// MARK: RTP

func rtpPacket(ssrc: UInt32, sequenceNumber: UInt16, timestamp: UInt32, marker: Bool = false, payloadType: UInt8,
               payload: [UInt8], paddingLength: UInt8 = 0) throws -> [UInt8] {
    let pt = try #require(PayloadType(rawValue: payloadType))
    let header = RTPHeader(marker: marker, payloadType: pt, sequenceNumber: SequenceNumber(sequenceNumber),
                           timestamp: timestamp, ssrc: SSRC(ssrc))
    return try RTPPacket(header: header, payload: payload, paddingLength: paddingLength).serialized()
}

/// A one-way network path: independent loss, and a delay of `baseDelay`
/// plus uniform jitter, which reorders packets sent closer together than
/// the jitter. Deterministic from its seed.
struct SimulatedLink {
    var random: SplitMix64
    var lossRate: Double
    var baseDelay: Duration = .milliseconds(20)
    var maximumJitter: Duration
    private var inFlight: [(arrival: Instant, order: Int, bytes: [UInt8])] = []
    private var sent = 0
    private(set) var lost = 0

    init(seed: UInt64, lossRate: Double, maximumJitter: Duration) {
        random = SplitMix64(seed: seed)
        self.lossRate = lossRate
        self.maximumJitter = maximumJitter
    }

    mutating func send(_ bytes: [UInt8], at time: Instant) {
        sent += 1
        if Double.random(in: 0..<1, using: &random) < lossRate {
            lost += 1
            return
        }
        let jitter = Int64.random(in: 0...max(0, maximumJitter.nanoseconds), using: &random)
        inFlight.append((time + baseDelay + .nanoseconds(jitter), sent, bytes))
    }

    /// Packets that have arrived by `time`, in arrival order.
    mutating func deliver(until time: Instant) -> [(bytes: [UInt8], arrival: Instant)] {
        let due = inFlight.filter { $0.arrival <= time }.sorted { ($0.arrival, $0.order) < ($1.arrival, $1.order) }
        inFlight.removeAll { $0.arrival <= time }
        return due.map { ($0.bytes, $0.arrival) }
    }
}

/// Counts packets that arrived after one sent later (by sequence number).
struct ReorderCounter {
    private var highest: Int64?
    private var unwrapper = SequenceUnwrapper()
    private(set) var reordered = 0

    mutating func observe(_ packet: [UInt8]) {
        guard packet.count >= 12 else { return }
        let index = unwrapper.unwrap(SequenceNumber(UInt16(packet[2]) << 8 | UInt16(packet[3])))
        if let highest, index < highest { reordered += 1 }
        highest = max(highest ?? index, index)
    }
}

// MARK: media sources

/// One encoded video frame as sent.
struct SentVideoFrame {
    var bytes: [UInt8]
    var isKeyFrame: Bool
    /// Which sender (SSRC period) sent it.
    var stream: Int
}

/// A publisher's video track: synthetic camera frames, the Codecs VP8
/// encoder, RFC 7741 packetization into RTP at 30 fps on the 90 kHz clock.
final class VideoPublisher {
    let ssrc: UInt32
    let payloadType: UInt8 = 96
    var sequenceNumber: UInt16
    let timestampBase: UInt32
    private let encoder: VP8Encoder
    private var packetizer = VP8Packetizer(pictureID: 100)
    private var source: CameraSource
    private var picture: I420Frame
    private(set) var framesEncoded = 0
    let maxPayloadSize: Int

    init(ssrc: UInt32, sequenceNumber: UInt16, timestamp: UInt32, width: Int = 160, height: Int = 120,
         bitrate: Int = 250, maxPayloadSize: Int = 700) throws {
        self.ssrc = ssrc
        self.sequenceNumber = sequenceNumber
        timestampBase = timestamp
        self.maxPayloadSize = maxPayloadSize
        encoder = try VP8Encoder(configuration: .camera(width: width, height: height, targetBitrate: bitrate))
        source = CameraSource(width: width, height: height)
        picture = I420Frame(width: width, height: height)
    }

    func requestKeyFrame() { encoder.requestKeyframe() }

    var currentTimestamp: UInt32 { timestampBase &+ UInt32(framesEncoded * 3000) }

    /// Encodes the next picture; returns the frame and its RTP packets.
    func nextFrame() throws -> (frame: SentVideoFrame, packets: [[UInt8]]) {
        source.nextFrame(into: &picture)
        var encoded: [UInt8] = []
        var isKey = false
        try encoder.encode(picture, pts: Int64(framesEncoded * 3000)) { out in
            encoded = Array(out.bytes)
            isKey = out.info.isKeyframe
        }
        let timestamp = currentTimestamp
        framesEncoded += 1
        let payloads = try packetizer.packetize(frame: encoded, maxPayloadSize: maxPayloadSize)
        var packets: [[UInt8]] = []
        for (i, payload) in payloads.enumerated() {
            packets.append(try rtpPacket(ssrc: ssrc, sequenceNumber: sequenceNumber, timestamp: timestamp,
                                         marker: i == payloads.count - 1, payloadType: payloadType, payload: payload))
            sequenceNumber &+= 1
        }
        return (SentVideoFrame(bytes: encoded, isKeyFrame: isKey, stream: 0), packets)
    }
}

/// A publisher's audio track: synthetic audio, the Codecs Opus encoder,
/// one 20 ms Opus packet per RTP payload (RFC 7587).
final class AudioPublisher {
    let ssrc: UInt32
    let payloadType: UInt8 = 111
    var sequenceNumber: UInt16
    var timestamp: UInt32
    private let encoder: OpusAudioEncoder
    private var speech: SpeechSource?
    private var music: MusicSource?
    private var pcm: [Int16]
    private var packet: [UInt8] = []

    init(ssrc: UInt32, sequenceNumber: UInt16, timestamp: UInt32, music: Bool = false) throws {
        self.ssrc = ssrc
        self.sequenceNumber = sequenceNumber
        self.timestamp = timestamp
        let channels = music ? 2 : 1
        encoder = try OpusAudioEncoder(configuration: OpusEncoderConfiguration(
            application: music ? .audio : .voip, channels: channels, bitrate: music ? 64_000 : 32_000))
        if music { self.music = MusicSource(channels: 2) } else { speech = SpeechSource(channels: 1) }
        pcm = [Int16](repeating: 0, count: encoder.samplesPerFrame)
    }

    /// The next 20 ms: the Opus packet and its RTP packet.
    func nextPacket() throws -> (opus: [UInt8], rtp: [UInt8]) {
        if speech != nil { speech?.fill(&pcm) } else { music?.fill(&pcm) }
        try encoder.encode(pcm, into: &packet)
        let rtp = try rtpPacket(ssrc: ssrc, sequenceNumber: sequenceNumber, timestamp: timestamp,
                                payloadType: payloadType, payload: packet)
        sequenceNumber &+= 1
        timestamp &+= 960
        return (packet, rtp)
    }
}

// MARK: reading the results back

/// The written IVF frames, each matched to the sent frame it is a copy of
/// (by bytes, in order). Records an issue for a frame that matches none.
func matchWrittenFrames(_ frames: [IVFFrame], to sent: [SentVideoFrame],
                        sourceLocation: SourceLocation = #_sourceLocation) -> [Int] {
    var indices: [Int] = []
    var next = 0
    for frame in frames {
        let bytes = Array(frame.bytes)
        guard let i = sent[next...].firstIndex(where: { $0.bytes == bytes }) else {
            Issue.record("written frame (pts \(frame.pts)) is not a sent frame, or out of order",
                         sourceLocation: sourceLocation)
            return indices
        }
        indices.append(i)
        next = i + 1
    }
    return indices
}

/// Every written frame is decodable: the first is a keyframe and every
/// inter frame follows the frame it was encoded after (single-layer VP8
/// predicts from the previous frame). The Codecs decoder takes them all.
func expectDecodable(_ written: [Int], _ frames: [IVFFrame], sent: [SentVideoFrame],
                     sourceLocation: SourceLocation = #_sourceLocation) throws {
    guard let first = written.first else {
        Issue.record("no frame written", sourceLocation: sourceLocation)
        return
    }
    #expect(sent[first].isKeyFrame, "first written frame is not a keyframe", sourceLocation: sourceLocation)
    for (previous, index) in zip(written, written.dropFirst()) where !sent[index].isKeyFrame {
        #expect(previous == index - 1 && sent[previous].stream == sent[index].stream,
                "inter frame \(index) written after \(previous): its reference is missing",
                sourceLocation: sourceLocation)
    }
    let decoder = try VP8Decoder()
    var picture = I420Frame(width: 16, height: 16)
    for frame in frames {
        #expect(try decoder.decode(frame.bytes, into: &picture), sourceLocation: sourceLocation)
    }
}

func readIVF(_ path: String) throws -> (header: IVFHeader, frames: [IVFFrame]) {
    var reader = try IVFReader(bytes: MediaFile.readAll(path: path))
    return (reader.header, try reader.readAll())
}
