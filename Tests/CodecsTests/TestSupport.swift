import Foundation
import Testing
@testable import Codecs

/// Runs an external tool found on PATH; `nil` if it is not installed.
func findTool(_ name: String) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    for dir in path.split(separator: ":") {
        let candidate = "\(dir)/\(name)"
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
}

struct ToolResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs `name` with `arguments`; records an issue (clear message) if the
/// tool is missing. ffmpeg/vpx-tools are installed by the Makefile.
func runTool(_ name: String, _ arguments: [String]) throws -> ToolResult? {
    guard let executable = findTool(name) else {
        Issue.record("\(name) not found on PATH: install ffmpeg, vpx-tools and opus-tools (apt-get install ffmpeg vpx-tools opus-tools)")
        return nil
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    // Read before waiting so a chatty tool cannot fill the pipe and block.
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return ToolResult(status: process.terminationStatus,
                      stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self))
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
