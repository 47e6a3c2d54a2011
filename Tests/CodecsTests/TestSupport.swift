import ExternalTools
import Foundation
import Testing
@testable import Codecs

/// Runs `name` with `arguments`; records an issue (clear message) if the
/// tool is missing. ffmpeg/vpx-tools are installed by the Makefile.
func runTool(_ name: String, _ arguments: [String]) throws -> ToolResult? {
    guard let executable = ExternalTool.find(name) else {
        Issue.record("\(name) not found on PATH: install ffmpeg, vpx-tools and opus-tools (apt-get install ffmpeg vpx-tools opus-tools)")
        return nil
    }
    return try ExternalTool.run(executable, arguments)
}

/// A fresh temporary directory, removed by the caller with `cleanup`.
func makeTemporaryDirectory() throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("parley-codecs-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir.path
}

func cleanup(_ dir: String) { try? FileManager.default.removeItem(atPath: dir) }

/// Parses ffprobe's `key=value` lines.
func keyValues(_ text: String) -> [String: String] {
    var result: [String: String] = [:]
    for line in text.split(separator: "\n") {
        let parts = line.split(separator: "=", maxSplits: 1)
        if parts.count == 2 { result[String(parts[0])] = String(parts[1]) }
    }
    return result
}

/// Renders `count` camera frames.
func cameraFrames(width: Int, height: Int, count: Int) -> [I420Frame] {
    var source = CameraSource(width: width, height: height)
    var frames: [I420Frame] = []
    for _ in 0..<count {
        var f = I420Frame(width: width, height: height)
        source.nextFrame(into: &f)
        frames.append(f)
    }
    return frames
}

struct EncodedFrame {
    var bytes: [UInt8]
    var info: EncodedFrameInfo
}

/// Encodes frames at 30 fps in the 90 kHz timebase, copying the output.
func encodeAll(_ encoder: VP8Encoder, _ frames: [I420Frame], keyframeAt: Set<Int> = [],
               bitrateChange: (at: Int, kbps: Int)? = nil) throws -> [EncodedFrame] {
    var out: [EncodedFrame] = []
    for (i, frame) in frames.enumerated() {
        if let change = bitrateChange, change.at == i { try encoder.setTargetBitrate(change.kbps) }
        if keyframeAt.contains(i) { encoder.requestKeyframe() }
        try encoder.encode(frame, pts: Int64(i * 3000)) { encoded in
            out.append(EncodedFrame(bytes: Array(encoded.bytes), info: encoded.info))
        }
    }
    return out
}

/// Encodes `seconds` of audio from `fill` with `encoder`, returning the
/// input PCM and the packets.
func encodeAudio(_ encoder: OpusAudioEncoder, frames: Int, fill: (inout [Int16]) -> Void) throws -> (pcm: [Int16], packets: [[UInt8]]) {
    var pcm: [Int16] = []
    var packets: [[UInt8]] = []
    var frame = [Int16](repeating: 0, count: encoder.samplesPerFrame)
    var packet: [UInt8] = []
    for _ in 0..<frames {
        fill(&frame)
        pcm += frame
        try encoder.encode(frame, into: &packet)
        packets.append(packet)
    }
    return (pcm, packets)
}
