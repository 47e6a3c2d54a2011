import Foundation
import NIOCore
import NIOPosix

/// What `parley bench stun` and `parley bench turn` ask for.
public struct TURNBenchOptions: Sendable {
    /// Servers to measure, one after another under the same load.
    public var targets: [ServerKind] = [.parley, .coturn]
    /// `host:port` of a running server (loopback only) instead of starting one; measured as `targets[0]`.
    public var server: String?
    public var username = "bench"
    public var password = "benchpass"
    /// The pid of the external server, for RSS and CPU figures (else looked up from its UDP port).
    public var serverPID: Int32?
    /// The `parley` binary to start for the parley target.
    public var parleyExecutable: String
    public var coturnExecutable = "turnserver"
    /// Extra `parley serve` arguments (e.g. `--no-turn-gso`).
    public var parleyArguments: [String] = []
    /// Pin the server to the last CPU and the bench's event loops to the others.
    public var pin = true
    public var progress = true

    // STUN
    public var sockets = 64
    /// Binding requests in flight per socket.
    public var window = 16
    public var duration = 10.0
    public var warmup = 1.0

    // TURN
    public var pairs = 32
    public var payloadSize = 1200
    public var stepSeconds = 2.0
    public var startRate = 20_000
    public var maxRate = 400_000
    public var maxSteps = 10
    /// A step counts as lossless when at most this share of messages is lost.
    public var maxLossPercent = 0.0
    /// Allocations made to weigh server RSS per allocation (0 = skip).
    public var allocations = 1000

    public init(parleyExecutable: String) {
        self.parleyExecutable = parleyExecutable
    }

    /// Absolute path of the running executable (`/proc/self/exe`), falling back to `argv[0]`.
    public static var currentExecutable: String {
        if let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return path }
        return CommandLine.arguments.first ?? "parley"
    }
}

public enum TURNBench {
    /// Runs the STUN Binding load against each target; returns the summary line.
    public static func runSTUN(_ o: TURNBenchOptions) async throws -> String {
        var rates: [ServerKind: Double] = [:]
        try await withServers(o) { server, env in
            let r = try await runBindingLoad(server: server, loops: env.loops, sockets: o.sockets, window: o.window,
                                             duration: o.duration, warmup: o.warmup, say: env.say)
            let t = r.totals
            say("\(server.kind.rawValue) stun: \(SummaryLine.whole(r.responsesPerSecond)) resp/s over \(String(format: "%.1f", r.seconds)) s, "
                + "sent \(t.sent) answered \(t.received) lost \(t.lost) (\(String(format: "%.3f", r.lostPercent))%) invalid \(t.invalid) stale \(t.stale)"
                + (r.serverCores.map { String(format: ", server cpu %.2f cores (%.0f resp per cpu-second)", $0, $0 > 0 ? r.responsesPerSecond / $0 : 0) } ?? "")
                + (t.firstInvalid.map { ", first invalid: \($0)" } ?? ""))
            if t.invalid > 0 {
                throw TURNBenchError("\(server.kind.rawValue) sent \(t.invalid) invalid Binding responses (first: \(t.firstInvalid ?? "?"))")
            }
            rates[server.kind] = r.responsesPerSecond
        }
        return SummaryLine.stun(parley: rates[.parley], coturn: rates[.coturn])
    }

    /// Weighs an allocation, then searches the highest lossless relay rate for each target; returns the summary lines.
    public static func runTURN(_ o: TURNBenchOptions) async throws -> [String] {
        var best: [ServerKind: RelayResult] = [:]
        var rssPerAllocation: [ServerKind: Double] = [:]
        try await withServers(o) { server, env in
            let name = server.kind.rawValue
            if o.allocations > 0 {
                try await Task.sleep(nanoseconds: 300_000_000)
                let before = server.rssKiB()
                let start = monotonicNanos()
                let clients = try await openAllocations(count: o.allocations, server: server, loops: env.loops)
                let took = Double(monotonicNanos() - start) / 1e9
                try await Task.sleep(nanoseconds: 500_000_000)
                let after = server.rssKiB()
                if let before, let after {
                    let per = Double(after - before) / Double(clients.count)
                    rssPerAllocation[server.kind] = per
                    say("\(name) rss \(before) KiB → \(after) KiB with \(clients.count) allocations: \(String(format: "%.2f", per)) KiB/allocation "
                        + "(made in \(String(format: "%.2f", took)) s, \(SummaryLine.whole(Double(clients.count) / took)) allocations/s)")
                } else {
                    say("\(name): made \(clients.count) allocations in \(String(format: "%.2f", took)) s; server RSS unknown")
                }
                await closeAll(clients)
            }

            let pairs = try await setUpPairs(count: o.pairs, server: server)
            defer { closePairs(pairs) }
            env.say("\(name): \(pairs.count) client pairs, each A → relay(A) → relay(B) → B over channel 0x4000")
            var search = LosslessRateSearch(start: o.startRate, maximum: o.maxRate, maxSteps: o.maxSteps)
            var results: [Int: RelayResult] = [:]
            var step: UInt32 = 1
            while let rate = search.next {
                let cpuStart = server.cpuSeconds()
                let (r, limited) = try await runRelayStep(step: step, rate: rate, seconds: o.stepSeconds, pairs: pairs,
                                                          loop: env.loops[0], payloadSize: o.payloadSize)
                var cpu: Double?
                if let a = cpuStart, let b = server.cpuSeconds() { cpu = (b - a) / o.stepSeconds }
                let lossless = !limited && r.lossPercent <= o.maxLossPercent
                search.record(rate: rate, lossless: lossless)
                results[rate] = r
                env.say("step \(step) \(name) turn: offered \(rate) msg/s, sent \(r.sent) delivered \(r.delivered) "
                        + "(\(SummaryLine.whole(r.deliveredPerSecond)) msg/s) loss \(String(format: "%.2f", r.lossPercent))%"
                        + (cpu.map { String(format: ", server cpu %.2f cores", $0) } ?? "")
                        + (limited ? ", generator could not keep up (step not counted)" : "")
                        + (lossless ? " ✓" : " ✗"))
                if !server.isRunning { throw TURNBenchError("\(name) exited during the load:\n\(server.logTail())") }
                step += 1
            }
            if let good = search.highestLossless, let r = results[good] {
                best[server.kind] = r
            } else if let lowest = results.keys.min(), let r = results[lowest] {
                say("\(name): no step was lossless; reporting the lowest rate tried")
                best[server.kind] = r
            }
        }
        var lines = [SummaryLine.turn(payloadSize: o.payloadSize, parley: best[.parley], coturn: best[.coturn])]
        if !rssPerAllocation.isEmpty {
            lines.append("turn rss/allocation: " + ServerKind.allCases.compactMap { k in
                rssPerAllocation[k].map { "\(k.rawValue) \(String(format: "%.2f", $0)) KiB" }
            }.joined(separator: ", ") + " (\(o.allocations) allocations)")
        }
        return lines
    }

    struct Environment: Sendable {
        var loops: [any EventLoop]
        var say: @Sendable (String) -> Void
    }

    /// Starts (or reaches) each target in turn, runs `body`, stops it.
    private static func withServers(_ o: TURNBenchOptions,
                                    _ body: (ServerUnderTest, Environment) async throws -> Void) async throws {
        let cores = System.coreCount
        let pinning = o.pin && cores >= 2 && findExecutable("taskset") != nil && o.server == nil
        let serverCPUs = pinning ? [cores - 1] : nil
        let benchCPUs = pinning ? Array(0..<(cores - 1)) : Array(0..<cores)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: benchCPUs.count)
        do {
            try await runTargets(o, group: group, pinning: pinning, serverCPUs: serverCPUs, benchCPUs: benchCPUs, body)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        try? await group.shutdownGracefully()
    }

    private static func runTargets(_ o: TURNBenchOptions, group: MultiThreadedEventLoopGroup, pinning: Bool,
                                   serverCPUs: [Int]?, benchCPUs: [Int],
                                   _ body: (ServerUnderTest, Environment) async throws -> Void) async throws {
        let cores = System.coreCount
        let loops = Array(group.makeIterator())
        if pinning {
            for loop in loops { try await loop.submit { pinCurrentThread(to: benchCPUs) }.get() }
        }
        let progress = o.progress
        let env = Environment(loops: loops, say: { line in if progress { say(line) } })
        say("note: \(cores) CPUs shared by bench and server (and anything else running); "
            + (pinning ? "server pinned to CPU \(cpuList(serverCPUs ?? [])) (taskset), bench's \(loops.count) event loop(s) to CPU \(cpuList(benchCPUs))"
                       : "no pinning, bench uses \(loops.count) event loops"))

        for kind in o.server == nil ? o.targets : Array(o.targets.prefix(1)) {
            let server: ServerUnderTest
            if let external = o.server {
                guard let colon = external.lastIndex(of: ":"), let port = Int(external[external.index(after: colon)...]) else {
                    throw TURNBenchError("--server wants host:port, got \(external)")
                }
                let host = String(external[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
                server = try ServerUnderTest.external(kind: kind, host: host, port: port, username: o.username,
                                                      password: o.password, pid: o.serverPID)
            } else {
                do {
                    switch kind {
                    case .coturn:
                        server = try await ServerUnderTest.startCoturn(executable: o.coturnExecutable,
                                                                       relayPorts: o.allocations + 2 * o.pairs + 500,
                                                                       cpus: serverCPUs, group: group)
                    case .parley:
                        server = try await ServerUnderTest.startParley(executable: o.parleyExecutable,
                                                                       relayPorts: o.allocations + 2 * o.pairs + 500,
                                                                       cpus: serverCPUs, extraArguments: o.parleyArguments,
                                                                       group: group)
                    }
                } catch let error as TURNBenchError where o.targets.count > 1 {
                    say("note: skipping \(kind.rawValue): \(error.description)")
                    continue
                }
            }
            say("note: " + server.note)
            do {
                try await server.waitReady(group: group)
                try await body(server, env)
            } catch {
                await server.stop()
                throw error
            }
            await server.stop()
        }
    }
}

func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
