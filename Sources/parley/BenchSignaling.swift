import ArgumentParser
import SignalingBench

struct BenchSignaling: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "signaling",
        abstract: "Open N authenticated WebSocket connections and measure message delivery under load.")

    @Option(help: "WebSocket connections (one user each).")
    var connections: Int = 1000
    @Option(help: "Messages per second, in total.")
    var rate: Int = 1000
    @Option(help: "Seconds of sending.")
    var duration: Double = 10
    @Option(help: "ws://host:port/ws of a running server; without it a server is started from this binary.")
    var url: String?
    @Option(help: "Share of messages sent to groups (0–1).")
    var groupFraction: Double = 0.2
    @Option(help: "Members per group.")
    var groupSize: Int = 20
    @Flag(help: "No progress lines.")
    var quiet = false

    func validate() throws {
        guard connections >= 2 else { throw ValidationError("--connections must be at least 2") }
        guard rate > 0, duration > 0 else { throw ValidationError("--rate and --duration must be positive") }
        guard (0...1).contains(groupFraction) else { throw ValidationError("--group-fraction must be in 0…1") }
    }

    func run() async throws {
        let options = SignalingBenchOptions(url: url, connections: connections, rate: rate, duration: duration,
                                            groupFraction: groupFraction, groupSize: groupSize, progress: !quiet)
        let report = try await SignalingBench.run(options)
        print(report.summaryLine)
    }
}
