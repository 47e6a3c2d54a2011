import Foundation

/// What `parley bench signaling` asks for.
public struct SignalingBenchOptions: Sendable {
    /// `ws://host:port/ws` of a running server; `nil` starts a local server from `serverExecutable`.
    public var url: String?
    /// WebSocket connections to open (one user each).
    public var connections: Int
    /// Messages per second, in total over all connections.
    public var rate: Int
    /// Seconds of sending.
    public var duration: Double
    /// Share of sends that go to a group (0...1).
    public var groupFraction: Double
    /// Members per group.
    public var groupSize: Int
    /// The `parley` binary to start when `url` is nil.
    public var serverExecutable: String
    /// Print progress while connecting and a line per second while sending.
    public var progress: Bool
    /// Connections being set up (connect + upgrade + register + login) at once.
    public var connectConcurrency: Int

    public init(
        url: String? = nil,
        connections: Int = 1000,
        rate: Int = 1000,
        duration: Double = 10,
        groupFraction: Double = 0.2,
        groupSize: Int = 20,
        serverExecutable: String = SignalingBenchOptions.currentExecutable,
        progress: Bool = true,
        connectConcurrency: Int = 200
    ) {
        self.url = url
        self.connections = connections
        self.rate = rate
        self.duration = duration
        self.groupFraction = groupFraction
        self.groupSize = groupSize
        self.serverExecutable = serverExecutable
        self.progress = progress
        self.connectConcurrency = connectConcurrency
    }

    /// Absolute path of the running executable (`/proc/self/exe`), falling back to `argv[0]`.
    public static var currentExecutable: String {
        #if os(Linux)
        if let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            return path
        }
        #endif
        return Bundle.main.executablePath ?? CommandLine.arguments.first ?? "parley"
    }
}

/// What a run measured.
public struct SignalingBenchReport: Sendable {
    /// Connections that were open and logged in when sending started.
    public var connections: Int
    public var requestedConnections: Int
    public var duration: Double
    public var targetRate: Int
    public var groups: Int
    /// Send frames written (direct + group).
    public var sent: Int
    public var groupSent: Int
    /// Delivered frames (`receive_message` + `receive_group_message`); one per recipient connection.
    public var delivered: Int
    /// Deliveries the sends should have produced.
    public var expectedDeliveries: Int
    /// `delivered / duration`.
    public var deliveredPerSecond: Double
    public var p50Ms: Double
    public var p99Ms: Double
    public var p999Ms: Double
    public var maxMs: Double
    /// Setup failures + `error` frames + failed writes + dropped connections.
    public var errors: Int
    /// `errors` by kind: `setup` (connect/register/login/group failures), `drop` (connection closed by the
    /// server or the network), `send_failed` (a send picked a connection that had already closed), or the
    /// `error` frame's `code` (e.g. `rate_limited`).
    public var errorCounts: [String: Int]
    /// (server VmRSS after all connections are open and idle − before connecting) / connections.
    /// `nil` when the server's pid is unknown (not local).
    public var rssPerConnectionKiB: Double?
    public var serverRSSBeforeKiB: Int?
    public var serverRSSAfterKiB: Int?
    /// True when the bench started the server itself (with `PARLEY_PASSWORD_ITERATIONS=1000`).
    public var serverStartedLocally: Bool
    /// `signaling N=…: delivered … msg/s, latency p50 … ms p99 … ms p999 … ms, rss/conn … KiB, errors …`
    public var summaryLine: String
}
