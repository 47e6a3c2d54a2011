import Foundation
import NIOCore
import NIOPosix

/// Signaling load generator: N authenticated WebSocket connections sending direct and group
/// messages at a fixed total rate, measuring delivery latency at the receivers.
public enum SignalingBench {
    public static func run(_ options: SignalingBenchOptions) async throws -> SignalingBenchReport {
        guard options.connections >= 2 else { throw BenchFailure("--connections must be at least 2") }
        guard options.rate >= 0 else { throw BenchFailure("--rate must not be negative") }
        guard options.duration > 0 else { throw BenchFailure("--duration must be positive") }
        guard (0...1).contains(options.groupFraction) else { throw BenchFailure("group fraction must be in 0...1") }

        let fileLimit = raiseOpenFileLimit()
        let needed = options.connections + 64
        guard needed <= fileLimit else {
            throw BenchFailure(
                "\(options.connections) connections need about \(needed) open files, but RLIMIT_NOFILE is \(fileLimit) "
                    + "even after raising the soft limit to the hard limit; raise the hard limit (ulimit -Hn, limits.conf) or use fewer connections"
            )
        }

        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        let runner = Runner(options: options, group: group)
        do {
            let report = try await runner.run()
            await runner.cleanup()
            try? await group.shutdownGracefully()
            return report
        } catch {
            await runner.cleanup()
            try? await group.shutdownGracefully()
            throw error
        }
    }
}

private func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

private func f1(_ x: Double) -> String { String(format: "%.1f", x) }
private func ms(_ ns: UInt64) -> Double { Double(ns) / 1e6 }

private struct Target: Sendable {
    var host: String
    var port: Int
    var pathAndQuery: String
    var address: SocketAddress
    /// Source addresses to bind to (round-robin), only for IPv4 loopback targets beyond ~25k connections.
    var sources: [SocketAddress]

    var isLoopback: Bool {
        switch self.address {
        case .v4: return self.address.ipAddress?.hasPrefix("127.") ?? false
        case .v6: return self.address.ipAddress == "::1"
        default: return false
        }
    }

    init(url: String, connections: Int) throws {
        guard let u = URL(string: url), let scheme = u.scheme?.lowercased(), let host = u.host, !host.isEmpty else {
            throw BenchFailure("bad URL \(url); expected ws://host:port/ws")
        }
        guard scheme == "ws" || scheme == "http" else {
            throw BenchFailure("only ws:// URLs are supported (got \(scheme)://)")
        }
        self.host = host
        self.port = u.port ?? 80
        var path = u.path.isEmpty ? "/ws" : u.path
        if let q = u.query, !q.isEmpty { path += "?" + q }
        self.pathAndQuery = path
        self.address = try SocketAddress.makeAddressResolvingHost(host, port: self.port)
        self.sources = []
        let perSource = 25_000
        if connections > perSource, case .v4 = self.address, self.address.ipAddress?.hasPrefix("127.") == true {
            let count = min(250, (connections + perSource - 1) / perSource)
            self.sources = try (0..<count).map { try SocketAddress(ipAddress: "127.0.0.\(2 + $0)", port: 0) }
        }
    }
}

private final class Runner: @unchecked Sendable {
    let options: SignalingBenchOptions
    let group: MultiThreadedEventLoopGroup
    let shards: [Shard]
    let runID: String
    let password: String
    var server: LocalServer?
    var interruptCleanup: InterruptCleanup?
    var conns: [BenchConn] = []
    var closed = false

    init(options: SignalingBenchOptions, group: MultiThreadedEventLoopGroup) {
        self.options = options
        self.group = group
        var seed = UInt64.random(in: 1...UInt64.max)
        self.shards = group.makeIterator().map { loop in
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Shard(loop: loop, seed: seed)
        }
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789")
        self.runID = String((0..<6).map { _ in alphabet.randomElement()! })
        self.password = "bench-pass-\(self.runID)"
    }

    func progress(_ line: String) {
        if self.options.progress { say(line) }
    }

    func run() async throws -> SignalingBenchReport {
        let o = self.options
        var notes: [String] = []

        // 1. Server.
        let url: String
        if let given = o.url {
            url = given
        } else {
            let server = try await LocalServer.start(executable: o.serverExecutable, runID: self.runID, group: self.group)
            self.server = server
            self.interruptCleanup = InterruptCleanup(server: server)
            url = "ws://127.0.0.1:\(server.httpPort)/ws"
            let note = "note: started \(o.serverExecutable) serve on 127.0.0.1:\(server.httpPort) (pid \(server.pid)) with "
                + "PARLEY_PASSWORD_ITERATIONS=\(LocalServer.passwordIterations): password hashing work factor lowered so registering many users is fast"
            notes.append(note)
            say(note)
            try await server.waitHealthy(group: self.group)
        }
        let target = try Target(url: url, connections: o.connections)
        let pid: Int32? = self.server?.pid ?? (target.isLoopback ? findListeningPID(port: target.port) : nil)
        self.progress(
            "signaling bench run \(self.runID): \(o.connections) connections to \(url), \(o.rate) msg/s for \(f1(o.duration)) s, "
                + "group fraction \(o.groupFraction), group size \(o.groupSize)"
                + (target.sources.isEmpty ? "" : ", source addresses 127.0.0.2-127.0.0.\(1 + target.sources.count)")
                + (pid.map { ", server pid \($0)" } ?? ", server pid unknown (no rss/conn)")
        )
        let rssBefore = pid.flatMap(readRSSKiB)

        // 2. Connections.
        var setupFailures = 0
        var failureSamples: [String] = []
        let established = await self.connectAll(target: target, failures: &setupFailures, samples: &failureSamples)
        self.conns = established
        if setupFailures > 0 {
            say("warning: \(setupFailures) of \(o.connections) connections failed to set up; first errors: \(failureSamples.joined(separator: " | "))")
        }
        guard established.count >= 2 else {
            throw BenchFailure("only \(established.count) connections could be set up: \(failureSamples.joined(separator: " | "))")
        }
        try await Task.sleep(nanoseconds: 1_000_000_000)  // idle
        let rssAfter = pid.flatMap(readRSSKiB)
        var rssPerConn: Double?
        if let rssBefore, let rssAfter {
            rssPerConn = Double(rssAfter - rssBefore) / Double(established.count)
            self.progress("server rss \(rssBefore) KiB → \(rssAfter) KiB with \(established.count) idle connections: \(f1(rssPerConn!)) KiB/conn")
        }

        // 3. Groups.
        let (groupCount, groupFailures) = await self.setUpGroups(established)
        setupFailures += groupFailures

        // 4. Wire shards.
        for (i, conn) in established.enumerated() { conn.peerIndex = i }
        let peers = established.map(\.username)
        var perShard = [[BenchConn]](repeating: [], count: self.shards.count)
        for conn in established { perShard[conn.index % self.shards.count].append(conn) }
        for (s, shard) in self.shards.enumerated() {
            let mine = perShard[s]
            try await shard.loop.submit {
                shard.conns = mine
                shard.groupConns = mine.filter { $0.groupName != nil }
                shard.peers = peers
            }.get()
        }
        let perConnRate = Double(o.rate) / Double(established.count)
        if perConnRate > 40 {
            say("warning: \(f1(perConnRate)) msg/s per connection is near or above the server's per-connection rate limit (50 frames/s by default); expect rate_limited errors")
        }

        // 5. Load.
        self.progress("sending \(o.rate) msg/s for \(f1(o.duration)) s (\(groupCount) groups)")
        let start = monotonicNanos() + 20_000_000
        var done: [EventLoopFuture<Void>] = []
        for (s, shard) in self.shards.enumerated() {
            let share = Double(o.rate) * Double(perShard[s].count) / Double(established.count)
            let promise = shard.loop.makePromise(of: Void.self)
            done.append(promise.futureResult)
            let duration = o.duration, fraction = o.groupFraction
            shard.loop.execute {
                shard.startPacer(start: start, rate: share, duration: duration, groupFraction: fraction, done: promise)
            }
        }
        var previous = LatencyHistogram()
        let seconds = Int(o.duration.rounded(.up))
        if o.progress {
            for second in 1...max(1, seconds) {
                let at = start + UInt64(min(Double(second), o.duration) * 1e9)
                let now = monotonicNanos()
                if at > now { try await Task.sleep(nanoseconds: at - now) }
                let snap = try await self.snapshot()
                let interval = snap.histogram.subtracting(previous)
                previous = snap.histogram
                say("t=\(second)s sent \(snap.sent) delivered \(snap.delivered) p99 \(f1(ms(interval.percentile(0.99)))) ms errors \(snap.errors + setupFailures)")
            }
        }
        for future in done { try await future.get() }

        // 6. Grace period for in-flight deliveries.
        let graceEnd = monotonicNanos() + 2_000_000_000
        var snap = try await self.snapshot()
        while snap.delivered < snap.expected, monotonicNanos() < graceEnd {
            try await Task.sleep(nanoseconds: 20_000_000)
            snap = try await self.snapshot()
        }

        let targetSends = Int((Double(o.rate) * o.duration).rounded())
        if snap.sent < targetSends * 95 / 100 {
            say("warning: sent only \(snap.sent) of \(targetSends) messages: the load generator could not keep up (a release build of parley helps)")
        }

        // 7. Close.
        await self.closeAll()

        var errorCounts = snap.errorCodes
        if snap.drops > 0 { errorCounts["drop"] = snap.drops }
        if snap.sendFailures > 0 { errorCounts["send_failed"] = snap.sendFailures }
        if setupFailures > 0 { errorCounts["setup"] = setupFailures }
        let errors = errorCounts.values.reduce(0, +)
        let h = snap.histogram
        let perSecond = Double(snap.delivered) / o.duration
        let summary = "signaling N=\(established.count): delivered \(Int(perSecond.rounded())) msg/s, "
            + "latency p50 \(f1(ms(h.percentile(0.5)))) ms p99 \(f1(ms(h.percentile(0.99)))) ms p999 \(f1(ms(h.percentile(0.999)))) ms, "
            + "rss/conn \(rssPerConn.map { f1($0) + " KiB" } ?? "n/a"), errors \(errors)"
        if o.progress {
            say("sent \(snap.sent) (\(snap.groupSent) to groups), acked \(snap.acks), delivered \(snap.delivered) of \(snap.expected) expected, max latency \(f1(ms(h.maxValue))) ms"
                + (errorCounts.isEmpty ? "" : ", errors " + errorCounts.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")))
        }
        return SignalingBenchReport(
            connections: established.count,
            requestedConnections: o.connections,
            duration: o.duration,
            targetRate: o.rate,
            groups: groupCount,
            sent: snap.sent,
            groupSent: snap.groupSent,
            delivered: snap.delivered,
            expectedDeliveries: snap.expected,
            deliveredPerSecond: perSecond,
            p50Ms: ms(h.percentile(0.5)),
            p99Ms: ms(h.percentile(0.99)),
            p999Ms: ms(h.percentile(0.999)),
            maxMs: ms(h.maxValue),
            errors: errors,
            errorCounts: errorCounts,
            rssPerConnectionKiB: rssPerConn,
            serverRSSBeforeKiB: rssBefore,
            serverRSSAfterKiB: rssAfter,
            serverStartedLocally: self.server != nil,
            summaryLine: summary
        )
    }

    func snapshot() async throws -> Shard.Snapshot {
        var total = Shard.Snapshot()
        for shard in self.shards {
            total.merge(try await shard.loop.submit { shard.snapshot() }.get())
        }
        return total
    }

    // MARK: Setup

    private func connectAll(target: Target, failures: inout Int, samples: inout [String]) async -> [BenchConn] {
        let n = self.options.connections
        let concurrency = max(1, min(self.options.connectConcurrency, n))
        let key = Data((0..<16).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
        let hostHeader = target.host.contains(":") ? "[\(target.host)]:\(target.port)" : "\(target.host):\(target.port)"
        let upgrade = "GET \(target.pathAndQuery) HTTP/1.1\r\nHost: \(hostHeader)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\nUser-Agent: parley-bench\r\n\r\n"
        let started = monotonicNanos()
        var lastPrint = started
        var opened = 0
        var failed = 0
        var firstErrors: [String] = []
        let results = await boundedMap(count: n, concurrency: concurrency) { i -> Result<BenchConn, BenchFailure> in
            do {
                return .success(try await self.establish(index: i, target: target, upgrade: upgrade))
            } catch {
                return .failure(error as? BenchFailure ?? BenchFailure("\(error)"))
            }
        } onResult: { i, result in
            switch result {
            case .success:
                opened += 1
            case .failure(let error):
                failed += 1
                if firstErrors.count < 3 { firstErrors.append("#\(i): \(error.description)") }
            }
            let now = monotonicNanos()
            if now - lastPrint >= 1_000_000_000 || opened + failed == n {
                lastPrint = now
                let rate = Double(opened + failed) / (Double(now - started) / 1e9)
                self.progress("connecting: \(opened)/\(n) open, \(failed) failed (\(Int(rate)) conn/s)")
            }
        }
        let slots = results.map { try? $0.get() }
        failures = failed
        samples = firstErrors
        return slots.compactMap { $0 }
    }

    private func establish(index: Int, target: Target, upgrade: String) async throws -> BenchConn {
        let shard = self.shards[index % self.shards.count]
        let handler = WSClientHandler(shard: shard, upgradeRequest: upgrade)
        var bootstrap = ClientBootstrap(group: shard.loop)
            .connectTimeout(.seconds(30))
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(handler) }
            }
        if !target.sources.isEmpty {
            bootstrap = bootstrap.bind(to: target.sources[index % target.sources.count])
        }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(to: target.address).get()
        } catch {
            handler.upgraded.fail(error)
            throw BenchFailure("connect: \(error)")
        }
        let username = "b\(self.runID)_\(index)"
        let conn = BenchConn(index: index, username: username, channel: channel, handler: handler)
        do {
            try await handler.upgraded.futureResult.get()
            let reg = try await conn.request(#"{"type":"register","username":"\#(username)","password":"\#(self.password)","request_id":"r"}"#)
            guard reg.status == "register_success" || reg.reason == "username taken" else {
                throw BenchFailure("register: \(reg.short)")
            }
            let login = try await conn.request(#"{"type":"login","username":"\#(username)","password":"\#(self.password)","request_id":"l"}"#)
            guard login.status == "login_success" else { throw BenchFailure("login: \(login.short)") }
            try await channel.eventLoop.submit { handler.established = true }.get()
            return conn
        } catch {
            _ = try? await conn.close().get()
            throw error as? BenchFailure ?? BenchFailure("\(error)")
        }
    }

    /// Creates ceil(N × groupFraction / groupSize) groups of `groupSize` consecutive connections
    /// (first member creates, the rest join). Returns (groups usable, setup failures).
    private func setUpGroups(_ established: [BenchConn]) async -> (Int, Int) {
        let o = self.options
        let size = min(o.groupSize, established.count)
        guard o.groupFraction > 0, size >= 2 else { return (0, 0) }
        let wanted = Int((Double(established.count) * o.groupFraction / Double(size)).rounded(.up))
        let count = max(1, min(established.count / size, wanted))
        let concurrency = max(1, o.connectConcurrency)
        self.progress("creating \(count) groups of \(size) members")

        // Create.
        let created: [String?] = await boundedMap(count: count, concurrency: concurrency) { g in
            let creator = established[g * size]
            guard let r = try? await creator.request(#"{"type":"create_group","group_name":"bg\#(self.runID)_\#(g)","request_id":"g"}"#),
                  r.status == "create_group_success", let id = r.groupID
            else { return nil }
            return id
        }
        // Join.
        let joins = count * (size - 1)
        let joined: [Bool] = await boundedMap(count: joins, concurrency: concurrency) { j in
            let g = j / (size - 1)
            guard let id = created[g] else { return false }
            let member = established[g * size + 1 + j % (size - 1)]
            guard let r = try? await member.request(#"{"type":"join_group","group_id":"\#(id)","request_id":"j"}"#) else { return false }
            return r.status == "join_group_success"
        }
        var failures = 0
        var usable = 0
        for g in 0..<count {
            guard created[g] != nil else {
                failures += 1
                continue
            }
            var members = [established[g * size]]
            for m in 1..<size {
                if joined[g * (size - 1) + m - 1] { members.append(established[g * size + m]) } else { failures += 1 }
            }
            guard members.count >= 2 else { continue }
            usable += 1
            for member in members {
                member.groupName = "bg\(self.runID)_\(g)"
                member.groupMembers = members.count
            }
        }
        if failures > 0 { say("warning: \(failures) group create/join requests failed") }
        return (usable, failures)
    }

    // MARK: Teardown

    func closeAll() async {
        guard !self.closed else { return }
        self.closed = true
        let futures = self.conns.map { $0.close() }
        for future in futures { _ = try? await future.get() }
        self.conns = []
    }

    func cleanup() async {
        for shard in self.shards {
            try? await shard.loop.submit { shard.pacer?.cancel() }.get()
        }
        await self.closeAll()
        if let server = self.server {
            await server.stop()
            self.server = nil
        }
        self.interruptCleanup?.restore()
        self.interruptCleanup = nil
    }
}

/// Runs `body(0..<count)` with at most `concurrency` in flight; results in index order.
/// `onResult` sees each result as it completes (in completion order).
private func boundedMap<T: Sendable>(
    count: Int,
    concurrency: Int,
    _ body: @escaping @Sendable (Int) async -> T,
    onResult: (Int, T) -> Void = { _, _ in }
) async -> [T] {
    guard count > 0 else { return [] }
    var results = [T?](repeating: nil, count: count)
    var next = 0
    await withTaskGroup(of: (Int, T).self) { tasks in
        while next < min(concurrency, count) {
            let i = next
            tasks.addTask { (i, await body(i)) }
            next += 1
        }
        while let (i, value) = await tasks.next() {
            results[i] = value
            onResult(i, value)
            if next < count {
                let k = next
                tasks.addTask { (k, await body(k)) }
                next += 1
            }
        }
    }
    return results.map { $0! }
}
