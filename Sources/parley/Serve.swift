import ArgumentParser
import Chat
import ChatStoreSQLite
import Foundation
import Logging
import NIOPosix
import ServiceLifecycle
import Signaling

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the server: WebSocket signaling and HTTP, the line protocol, media and TURN.",
        discussion: "Every option can also be set by the environment variable named after it (PARLEY_HTTP_PORT, …).")

    @Option(help: "Bind address for all listeners (PARLEY_HOST). Default 127.0.0.1.")
    var host: String?
    @Option(help: "HTTP + WebSocket port (PARLEY_HTTP_PORT). Default 8080.")
    var httpPort: Int?
    @Option(help: "Line protocol TCP port, 0 = off (PARLEY_LINE_PORT). Default 7070.")
    var linePort: Int?
    @Option(help: "SFU media UDP port (PARLEY_MEDIA_PORT). Default 50000.")
    var mediaPort: Int?
    @Option(help: "STUN/TURN port, 0 = off (PARLEY_TURN_PORT). Default 3478.")
    var turnPort: Int?
    @Option(help: "Address advertised in media candidates and TURN relays (PARLEY_PUBLIC_IP). Default: --host.")
    var publicIP: String?
    @Option(help: "Directory for the SQLite database and attachments (PARLEY_DATA_DIR). Default ./data.")
    var dataDir: String?
    @Option(help: "trace, debug, info, notice, warning, error or critical (PARLEY_LOG_LEVEL). Default info.")
    var logLevel: String?
    @Option(help: "Largest accepted WebSocket message in bytes (PARLEY_MAX_FRAME_BYTES). Default 65536.")
    var maxFrameBytes: Int?
    @Option(help: "Requests per second each connection may send (PARLEY_RATE_LIMIT). Default 50.")
    var rateLimit: Int?
    @Option(help: "Burst of requests allowed above the rate (PARLEY_RATE_BURST). Default 200.")
    var rateBurst: Int?
    @Option(help: "normal: commits survive a process crash; full: also power loss, fsync per commit (PARLEY_SYNC). Default normal.")
    var sync: String?
    @Option(help: "PBKDF2 iterations for new password hashes (PARLEY_PASSWORD_ITERATIONS). Default 210000; lower only for tests and benchmarks.")
    var passwordIterations: Int?

    func run() async throws {
        let host = Setting.value(host, env: "PARLEY_HOST", default: "127.0.0.1")
        let httpPort = try Setting.port(httpPort, env: "PARLEY_HTTP_PORT", default: 8080)
        let linePort = try Setting.port(linePort, env: "PARLEY_LINE_PORT", default: 7070)
        let mediaPort = try Setting.port(mediaPort, env: "PARLEY_MEDIA_PORT", default: 50000)
        let turnPort = try Setting.port(turnPort, env: "PARLEY_TURN_PORT", default: 3478)
        let publicIP = Setting.value(publicIP, env: "PARLEY_PUBLIC_IP", default: host)
        let dataDir = Setting.value(dataDir, env: "PARLEY_DATA_DIR", default: "./data")
        let levelName = Setting.value(logLevel, env: "PARLEY_LOG_LEVEL", default: "info")
        guard let level = Logger.Level(rawValue: levelName.lowercased()) else {
            throw ValidationError("unknown log level '\(levelName)'")
        }
        let maxFrame = try Setting.int(maxFrameBytes, env: "PARLEY_MAX_FRAME_BYTES", default: 65536)
        guard maxFrame >= 1024 else { throw ValidationError("--max-frame-bytes must be at least 1024") }
        let rate = try Setting.int(rateLimit, env: "PARLEY_RATE_LIMIT", default: 50)
        let burst = try Setting.int(rateBurst, env: "PARLEY_RATE_BURST", default: 200)
        guard rate > 0, burst > 0 else { throw ValidationError("rate limit and burst must be positive") }
        let syncName = Setting.value(sync, env: "PARLEY_SYNC", default: "normal")
        guard let durability = SQLiteChatStore.Durability(rawValue: syncName.lowercased()) else {
            throw ValidationError("--sync must be 'normal' or 'full'")
        }
        let iterations = try Setting.int(passwordIterations, env: "PARLEY_PASSWORD_ITERATIONS",
                                         default: PasswordHasher.defaultIterations)
        guard iterations >= 1 else { throw ValidationError("--password-iterations must be positive") }

        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        var logger = Logger(label: "parley")
        logger.logLevel = level

        try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
        let dbPath = URL(fileURLWithPath: dataDir).appendingPathComponent("parley.sqlite").path
        let store = try SQLiteChatStore(path: dbPath, durability: durability)
        let migrations = try store.appliedMigrations().joined(separator: ",")
        logger.info("storage ready", metadata: ["database": "\(dbPath)", "sync": "\(durability.rawValue)",
                                                "migrations": "\(migrations)"])
        if iterations < PasswordHasher.defaultIterations {
            logger.warning("password hashing below the production work factor",
                           metadata: ["iterations": "\(iterations)"])
        }

        let hub = ConnectionHub()
        let service = ChatService(store: store, delivery: hub, hasher: PasswordHasher(iterations: iterations),
                                  runner: ThreadPoolRunner(), now: { Millis(Date().timeIntervalSince1970 * 1000) })
        let config = SignalingConfiguration(host: host, httpPort: httpPort, linePort: linePort, maxFrameBytes: maxFrame,
                                            rateLimit: Double(rate), rateBurst: Double(burst))
        let context = SignalingContext(service: service, hub: hub, metrics: SignalingMetrics(), configuration: config,
                                       logger: logger)
        let app = HTTPServer.makeApplication(context: context, healthCheck: { try await store.ping() })
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: app)]
        if linePort != 0 {
            // It returns only once shutdown has begun; the group carries on.
            services.append(.init(service: LineServer(context: context), successTerminationBehavior: .ignore))
        }
        // The SFU and TURN listeners come with the media issues; say so rather
        // than pretend.
        logger.notice("media relay and TURN are not part of this build yet",
                      metadata: ["media-port": "\(mediaPort)", "turn-port": "\(turnPort)", "public-ip": "\(publicIP)"])

        let group = ServiceGroup(configuration: .init(services: services,
                                                      gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        logger.info("stopped")
    }
}

/// Runs password hashing on NIO's blocking-work thread pool, off the threads
/// that serve connections.
struct ThreadPoolRunner: BlockingWorkRunner {
    func run<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        do {
            return try await NIOThreadPool.singleton.runIfActive { work() }
        } catch {
            return work()
        }
    }
}
