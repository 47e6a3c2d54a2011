import Benchmark
import Foundation
import SDP

func registerSDPBenchmarks() {
    // A real Chromium offer (audio + video, 6 KB), from the SDP tests'
    // fixtures, located relative to this file.
    let path = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
        .appendingPathComponent("Tests/SDPTests/Fixtures/chromium_audio_video.sdp").path
    guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
        fatalError("cannot read \(path)")
    }
    _ = try! SessionDescription(parsing: text)
    Benchmark("SDP parse Chromium audio+video offer (6 KB)", configuration: .init(scalingFactor: .one)) { benchmark throws in
        for _ in benchmark.scaledIterations {
            blackHole(try SessionDescription(parsing: text))
        }
    }
}
