import ArgumentParser
import Chat
import ChatStoreSQLite
import Foundation
import Logging
import MediaServer
import NIOPosix
import Prometheus
import RTCBase
import ServiceLifecycle
import Signaling
import TURN

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
    @Option(help: "SFU media port, UDP and ICE-TCP; worker i uses this + i (PARLEY_MEDIA_PORT). Default 50000.")
    var mediaPort: Int?
    @Option(help: "SFU media workers, one engine and thread each; a call is pinned to one (PARLEY_MEDIA_WORKERS). Default 1.")
    var mediaWorkers: Int?
    @Flag(inversion: .prefixedNo, help: "Also offer ICE over TCP (RFC 6544 passive) on the media port numbers, for clients whose UDP is blocked (PARLEY_ICE_TCP=0 turns it off). Default on.")
    var iceTcp = true
    @Option(help: "Seconds without an ICE check before a peer connection has lost consent and its participant leaves (RFC 7675) (PARLEY_ICE_CONSENT_TIMEOUT). Default 30.")
    var iceConsentTimeout: Int?
    @Option(help: "Seconds an unanswered call rings before it ends with reason timeout (PARLEY_CALL_RING_TIMEOUT). Default 30.")
    var callRingTimeout: Int?
    @Option(help: "Directory for call recordings; without it calls cannot be recorded (PARLEY_RECORD_DIR).")
    var recordDir: String?
    @Option(help: "Comma-separated origins (https://app.example) whose pages may open /ws; default: any origin (PARLEY_ALLOWED_ORIGINS).")
    var allowedOrigins: String?
    @Option(help: "STUN/TURN port, 0 = off (PARLEY_TURN_PORT). Default 3478.")
    var turnPort: Int?
    @Option(help: "Address advertised in media candidates and TURN relays (PARLEY_PUBLIC_IP). Default: --host.")
    var publicIP: String?
    @Option(help: "TURN over TLS port, used only with --turn-tls-cert and --turn-tls-key (PARLEY_TURN_TLS_PORT). Default 5349.")
    var turnTlsPort: Int?
    @Option(help: "PEM certificate (chain) for TURN over TLS (PARLEY_TURN_TLS_CERT).")
    var turnTlsCert: String?
    @Option(help: "PEM private key for TURN over TLS (PARLEY_TURN_TLS_KEY).")
    var turnTlsKey: String?
    @Option(help: "UDP port range for TURN relays, LOW-HIGH (PARLEY_RELAY_PORTS). Default 49160-49999.")
    var relayPorts: String?
    @Option(help: "TURN realm (PARLEY_REALM). Default parley.")
    var realm: String?
    @Option(help: "Shared secret for TURN REST credentials, the ones login_response hands out (PARLEY_TURN_SECRET). Default: random per start.")
    var turnSecret: String?
    @Option(help: "A static TURN user NAME:PASSWORD; repeatable (PARLEY_TURN_USERS, comma-separated).")
    var turnUser: [String] = []
    @Option(help: "TURN allocations one user may hold (PARLEY_TURN_QUOTA_PER_USER). Default 10.")
    var turnQuotaPerUser: Int?
    @Option(help: "TURN allocations in total (PARLEY_TURN_TOTAL_QUOTA). Default 10000.")
    var turnTotalQuota: Int?
    @Option(help: "Relayed bytes per second per TURN allocation, 0 = no cap (PARLEY_TURN_BANDWIDTH). Default 0.")
    var turnBandwidth: Int?
    @Option(help: "Unauthenticated STUN/TURN answers (Binding, 401, 438) per second per source IP, burst twice that; 0 = no limit, for benchmarks (PARLEY_TURN_UNAUTHENTICATED_RATE). Default 200.")
    var turnUnauthenticatedRate: Int?
    @Flag(inversion: .prefixedNo, help: "Send runs of equal-size TURN/STUN datagrams to one destination as one UDP GSO send (Linux UDP_SEGMENT); falls back by itself where the route cannot (PARLEY_TURN_GSO=0 turns it off). Default on.")
    var turnGso = true
    @Flag(help: "Let TURN relay to loopback peers (127.0.0.0/8, ::1). FOR TESTS ONLY: it exposes the server's own services (PARLEY_ALLOW_LOOPBACK_PEERS=1).")
    var allowLoopbackPeers = false
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
        var config = SignalingConfiguration(host: host, httpPort: httpPort, linePort: linePort, maxFrameBytes: maxFrame,
                                            rateLimit: Double(rate), rateBurst: Double(burst))
        let originList = Setting.value(allowedOrigins, env: "PARLEY_ALLOWED_ORIGINS", default: "")
        config.allowedOrigins = originList.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
        let metrics = SignalingMetrics()

        // The SFU first: TURN needs its addresses (clients behind NAT reach it through relays).
        let media = try await startMedia(host: host, port: mediaPort, publicIP: publicIP, registry: metrics.registry,
                                         logger: logger)
        var turn = try turnSettings(host: host, port: turnPort, publicIP: publicIP, logger: logger)
        turn?.service.engine.serverPeers = Set(media.workers.advertisedAddresses + media.workers.boundAddresses)
        if let turn { config.iceServers = turn.iceServers }
        let calls = CallService(chat: service, media: CallMediaAdapter(workers: media.workers), settings: media.calls)
        let ended = try await calls.recoverAfterRestart()
        if ended > 0 { logger.notice("calls left open by the last run were ended", metadata: ["calls": "\(ended)"]) }
        let pump = Task {
            for await event in media.workers.events {
                if let e = CallMediaAdapter.callEvent(event) { await calls.handle(e) }
            }
        }
        let context = SignalingContext(service: service, hub: hub, metrics: metrics, configuration: config,
                                       logger: logger, calls: calls)
        let app = HTTPServer.makeApplication(context: context, healthCheck: { try await store.ping() })
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: app)]
        if linePort != 0 {
            // It returns only once shutdown has begun; the group carries on.
            services.append(.init(service: LineServer(context: context), successTerminationBehavior: .ignore))
        }
        if let turn {
            services.append(.init(service: TURNService(configuration: turn.service, registry: metrics.registry,
                                                       logger: logger),
                                  successTerminationBehavior: .ignore))
        }
        let group = ServiceGroup(configuration: .init(services: services,
                                                      gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            await media.workers.shutdown()
            throw error
        }
        await media.workers.shutdown()
        pump.cancel()
        logger.info("stopped")
    }

    /// Starts the SFU's media workers from the media flags.
    func startMedia(host: String, port: Int, publicIP: String, registry: PrometheusCollectorRegistry,
                    logger: Logger) async throws -> (workers: MediaWorkers, calls: CallService.Settings) {
        guard let advertised = IPAddress(publicIP) else {
            throw ValidationError("--public-ip must be an IP address, got '\(publicIP)'")
        }
        let workers = try Setting.int(mediaWorkers, env: "PARLEY_MEDIA_WORKERS", default: 1)
        guard (1...64).contains(workers) else { throw ValidationError("--media-workers must be 1–64") }
        guard port == 0 || port + workers - 1 <= 65535 else { throw ValidationError("--media-port + workers exceeds 65535") }
        let consent = try Setting.int(iceConsentTimeout, env: "PARLEY_ICE_CONSENT_TIMEOUT", default: 30)
        let ring = try Setting.int(callRingTimeout, env: "PARLEY_CALL_RING_TIMEOUT", default: 30)
        guard consent >= 1, ring >= 1 else { throw ValidationError("timeouts must be at least 1 second") }
        let tcp = iceTcp && !["0", "false", "no"].contains(ProcessInfo.processInfo.environment["PARLEY_ICE_TCP"]?.lowercased() ?? "")
        var config = MediaConfiguration(host: host, port: port, workers: workers, publicIP: advertised, iceTCP: tcp)
        config.consentTimeout = .seconds(consent)
        config.recordDirectory = recordDir ?? ProcessInfo.processInfo.environment["PARLEY_RECORD_DIR"]
        if advertised == .v4(0) || advertised == .v6(high: 0, low: 0) {
            logger.warning("the SFU advertises the wildcard address; set --public-ip to an address clients can reach")
        }
        let started = try await MediaWorkers.start(configuration: config, registry: registry, logger: logger)
        if let dir = config.recordDirectory { logger.info("call recording enabled", metadata: ["dir": "\(dir)"]) }
        return (started, CallService.Settings(ringTimeout: .seconds(ring), recordingAvailable: config.recordDirectory != nil))
    }
}

/// The TURN side of `serve`: the service configuration and what logins hand out.
struct TURNSettings {
    var service: TURNServiceConfiguration
    var iceServers: @Sendable (String) -> [ICEServer]
}

extension Serve {
    /// Reads the TURN flags; nil when `--turn-port 0`.
    func turnSettings(host: String, port: Int, publicIP: String, logger: Logger) throws -> TURNSettings? {
        guard port != 0 else { return nil }
        guard let advertised = IPAddress(publicIP) else {
            throw ValidationError("--public-ip must be an IP address for TURN, got '\(publicIP)'")
        }
        let rangeText = Setting.value(relayPorts, env: "PARLEY_RELAY_PORTS", default: "49160-49999")
        let bounds = rangeText.split(separator: "-").map { UInt16($0.trimmingCharacters(in: .whitespaces)) }
        guard bounds.count == 2, let low = bounds[0], let high = bounds[1], low > 0, low <= high else {
            throw ValidationError("--relay-ports must look like 49160-49999, got '\(rangeText)'")
        }
        let realm = Setting.value(realm, env: "PARLEY_REALM", default: "parley")
        // coturn's convention: the secret's text is the HMAC key.
        let secretText = Setting.value(turnSecret, env: "PARLEY_TURN_SECRET", default: Self.randomHex(32))
        let secret = Array(secretText.utf8)
        var users: [String: String] = [:]
        let userSpecs = turnUser.isEmpty
            ? (ProcessInfo.processInfo.environment["PARLEY_TURN_USERS"]?.split(separator: ",").map(String.init) ?? [])
            : turnUser
        for spec in userSpecs {
            guard let colon = spec.firstIndex(of: ":"), colon != spec.startIndex else {
                throw ValidationError("--turn-user must be NAME:PASSWORD, got '\(spec)'")
            }
            users[String(spec[..<colon])] = String(spec[spec.index(after: colon)...])
        }
        let perUser = try Setting.int(turnQuotaPerUser, env: "PARLEY_TURN_QUOTA_PER_USER", default: 10)
        let total = try Setting.int(turnTotalQuota, env: "PARLEY_TURN_TOTAL_QUOTA", default: 10_000)
        let bandwidth = try Setting.int(turnBandwidth, env: "PARLEY_TURN_BANDWIDTH", default: 0)
        let unauthenticatedRate = try Setting.int(turnUnauthenticatedRate, env: "PARLEY_TURN_UNAUTHENTICATED_RATE", default: 200)
        guard perUser > 0, total > 0, bandwidth >= 0, unauthenticatedRate >= 0 else {
            throw ValidationError("TURN quotas must be positive, --turn-bandwidth and --turn-unauthenticated-rate not negative")
        }
        let loopback = allowLoopbackPeers
            || ["1", "true", "yes"].contains(ProcessInfo.processInfo.environment["PARLEY_ALLOW_LOOPBACK_PEERS"]?.lowercased() ?? "")
        var tls: TURNServiceConfiguration.TLS?
        let tlsPort = try Setting.port(turnTlsPort, env: "PARLEY_TURN_TLS_PORT", default: 5349)
        let cert = turnTlsCert ?? ProcessInfo.processInfo.environment["PARLEY_TURN_TLS_CERT"]
        let key = turnTlsKey ?? ProcessInfo.processInfo.environment["PARLEY_TURN_TLS_KEY"]
        switch (cert, key) {
        case let (cert?, key?) where tlsPort != 0:
            tls = .init(port: tlsPort, certificatePath: cert, keyPath: key)
        case (nil, nil), (_?, _?):
            break
        default:
            throw ValidationError("TURN over TLS needs both --turn-tls-cert and --turn-tls-key")
        }

        var nonceSecret = [UInt8](repeating: 0, count: 32)
        for i in nonceSecret.indices { nonceSecret[i] = UInt8.random(in: 0...255) }
        var engine = TURNServerConfiguration(realm: realm, publicIP: advertised, relayPorts: low...high,
                                             nonceSecret: nonceSecret,
                                             wallClockSeconds: { _ in Int64(Date().timeIntervalSince1970) })
        engine.users = users
        engine.restSecret = secret
        engine.maxAllocationsPerUser = perUser
        engine.maxAllocations = total
        engine.bandwidthLimit = bandwidth > 0 ? bandwidth : nil
        engine.unauthenticatedRate = unauthenticatedRate > 0 ? Double(unauthenticatedRate) : nil
        engine.unauthenticatedBurst = Double(2 * max(unauthenticatedRate, 1))
        engine.allowLoopbackPeers = loopback
        if loopback { logger.warning("TURN relays to loopback peers are allowed (--allow-loopback-peers): tests only") }

        if advertised == .v4(0) || advertised == .v6(high: 0, low: 0) {
            logger.warning("TURN advertises the wildcard address; set --public-ip to an address clients can reach")
        }
        let urlHost = advertised.isIPv4 ? publicIP : "[\(publicIP)]"
        var urls = ["stun:\(urlHost):\(port)", "turn:\(urlHost):\(port)?transport=udp",
                    "turn:\(urlHost):\(port)?transport=tcp"]
        if let tls { urls.append("turns:\(urlHost):\(tls.port)?transport=tcp") }
        let iceServers: @Sendable (String) -> [ICEServer] = { [urls] user in
            let credential = TURNRESTCredential(user: user, secret: secret, unixTime: Int64(Date().timeIntervalSince1970),
                                                ttl: 86_400)
            return [ICEServer(urls: urls, username: credential.username, credential: credential.password)]
        }
        var service = TURNServiceConfiguration(host: host, port: port, tls: tls, engine: engine)
        service.udpSegmentation = turnGso
            && !["0", "false", "no"].contains(ProcessInfo.processInfo.environment["PARLEY_TURN_GSO"]?.lowercased() ?? "")
        return TURNSettings(service: service, iceServers: iceServers)
    }

    static func randomHex(_ bytes: Int) -> String {
        (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
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
