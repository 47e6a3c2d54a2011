import Foundation
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A `parley serve` child process with its own temporary data directory.
final class LocalServer: @unchecked Sendable {
    static let passwordIterations = "1000"

    let process: Process
    let directory: URL
    let logURL: URL
    let httpPort: Int
    var pid: Int32 { self.process.processIdentifier }

    private init(process: Process, directory: URL, logURL: URL, httpPort: Int) {
        self.process = process
        self.directory = directory
        self.logURL = logURL
        self.httpPort = httpPort
    }

    static func start(executable: String, runID: String, group: any EventLoopGroup) async throws -> LocalServer {
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw BenchFailure("server executable not found: \(executable)")
        }
        let httpPort = try await freePort(udp: false, group: group)
        let mediaPort = try await freePort(udp: true, group: group)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("parley-bench-\(runID)-\(getpid())")
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("data"), withIntermediateDirectories: true)
        let logURL = directory.appendingPathComponent("server.log")
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        let log = try FileHandle(forWritingTo: logURL)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = [
            "serve", "--host", "127.0.0.1", "--http-port", "\(httpPort)", "--line-port", "0",
            "--media-port", "\(mediaPort)", "--turn-port", "0",
            "--data-dir", directory.appendingPathComponent("data").path,
        ]
        var environment = ProcessInfo.processInfo.environment
        environment["PARLEY_PASSWORD_ITERATIONS"] = passwordIterations
        process.environment = environment
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            try? FileManager.default.removeItem(at: directory)
            throw BenchFailure("could not start \(executable): \(error)")
        }
        try? log.close()
        return LocalServer(process: process, directory: directory, logURL: logURL, httpPort: httpPort)
    }

    /// Polls `GET /health` until it answers 200.
    func waitHealthy(group: any EventLoopGroup, timeout: Double = 120) async throws {
        let deadline = monotonicNanos() + UInt64(timeout * 1e9)
        while true {
            guard self.process.isRunning else {
                throw BenchFailure("server exited with status \(self.process.terminationStatus) before it was healthy:\n\(self.logTail())")
            }
            if let status = try? await httpGetStatus(host: "127.0.0.1", port: self.httpPort, path: "/health", group: group),
               status == 200 {
                return
            }
            guard monotonicNanos() < deadline else {
                throw BenchFailure("server did not answer GET /health with 200 within \(Int(timeout)) s:\n\(self.logTail())")
            }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
    }

    /// SIGTERM, wait up to 15 s (then SIGKILL), remove the temporary directory.
    func stop() async {
        if self.process.isRunning {
            kill(self.pid, SIGTERM)
            let deadline = monotonicNanos() + 15_000_000_000
            while self.process.isRunning, monotonicNanos() < deadline {
                try? await Task.sleep(nanoseconds: 50_000_000)
            }
            if self.process.isRunning {
                kill(self.pid, SIGKILL)
                while self.process.isRunning { try? await Task.sleep(nanoseconds: 20_000_000) }
            }
        }
        try? FileManager.default.removeItem(at: self.directory)
    }

    func logTail(lines: Int = 20) -> String {
        guard let text = try? String(contentsOf: self.logURL, encoding: .utf8) else { return "(no server log)" }
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }
}

/// A free loopback port (TCP or UDP), found by binding port 0 and closing again.
func freePort(udp: Bool, group: any EventLoopGroup) async throws -> Int {
    let channel: any Channel
    if udp {
        channel = try await DatagramBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
    } else {
        channel = try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
    }
    let port = channel.localAddress?.port ?? 0
    try await channel.close()
    guard port > 0 else { throw BenchFailure("could not find a free port") }
    return port
}

/// `GET path` over a fresh connection; returns the HTTP status code.
func httpGetStatus(host: String, port: Int, path: String, group: any EventLoopGroup) async throws -> Int {
    let loop = group.next()
    let promise = loop.makePromise(of: String.self)
    let request = "GET \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nConnection: close\r\n\r\n"
    let handler = StatusLineHandler(request: request, promise: promise)
    let connect = ClientBootstrap(group: loop)
        .connectTimeout(.seconds(2))
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(handler) }
        }
        .connect(host: host, port: port)
    connect.whenFailure { promise.fail($0) }
    let timeout = loop.scheduleTask(in: .seconds(5)) { promise.fail(BenchFailure("timeout")) }
    defer { timeout.cancel() }
    let statusLine = try await promise.futureResult.get()
    if let channel = try? await connect.get() { channel.close(promise: nil) }
    let parts = statusLine.split(separator: " ")
    guard parts.count >= 2, let code = Int(parts[1]) else { throw BenchFailure("bad HTTP response: \(statusLine)") }
    return code
}

private final class StatusLineHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let request: String
    let promise: EventLoopPromise<String>
    var received = ""

    init(request: String, promise: EventLoopPromise<String>) {
        self.request = request
        self.promise = promise
    }

    func channelActive(context: ChannelHandlerContext) {
        context.writeAndFlush(self.wrapOutboundOut(context.channel.allocator.buffer(string: self.request)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.received += String(buffer: self.unwrapInboundIn(data))
        if let end = self.received.range(of: "\r\n") {
            self.promise.succeed(String(self.received[..<end.lowerBound]))
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.promise.fail(BenchFailure("connection closed before a status line"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.promise.fail(error)
        context.close(promise: nil)
    }
}

/// VmRSS of a process in KiB, from `/proc/<pid>/status`.
func readRSSKiB(pid: Int32) -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        let digits = line.dropFirst(6).filter { $0.isNumber }
        return Int(digits)
    }
    return nil
}

/// The pid of the local process listening on TCP `port` (Linux: /proc/net/tcp{,6} inode → /proc/*/fd).
/// nil when not found or not readable (another user's process).
func findListeningPID(port: Int) -> Int32? {
    #if os(Linux)
    var inodes = Set<String>()
    let hexPort = String(format: "%04X", port)
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        guard let text = try? String(contentsOfFile: table, encoding: .utf8) else { continue }
        for line in text.split(separator: "\n").dropFirst() {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard f.count > 9, f[3] == "0A", f[1].hasSuffix(":" + hexPort) else { continue }
            inodes.insert("socket:[\(f[9])]")
        }
    }
    guard !inodes.isEmpty, let pids = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return nil }
    for pid in pids where pid.allSatisfy(\.isNumber) {
        guard let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd") else { continue }
        for fd in fds {
            if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)"),
               inodes.contains(target) {
                return Int32(pid)
            }
        }
    }
    #endif
    return nil
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the resulting soft limit.
func raiseOpenFileLimit() -> Int {
    var limit = rlimit()
    #if canImport(Glibc)
    let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    #else
    let resource = RLIMIT_NOFILE
    #endif
    guard getrlimit(resource, &limit) == 0 else { return 1024 }
    if limit.rlim_cur < limit.rlim_max {
        var raised = limit
        raised.rlim_cur = limit.rlim_max
        if setrlimit(resource, &raised) == 0 { limit = raised }
    }
    return limit.rlim_cur > rlim_t(Int.max) ? Int.max : Int(limit.rlim_cur)
}

/// While a local server runs, SIGINT/SIGTERM stop it and remove its directory before exiting,
/// so an interrupted bench leaves no server behind. `restore()` puts the previous handlers back.
final class InterruptCleanup: @unchecked Sendable {
    private var sources: [any DispatchSourceSignal] = []
    private var previous: [(Int32, sighandler_t?)] = []

    init(server: LocalServer) {
        for sig in [SIGINT, SIGTERM] {
            let old = signal(sig, SIG_IGN)
            self.previous.append((sig, old))
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                kill(server.pid, SIGTERM)
                let deadline = monotonicNanos() + 5_000_000_000
                while server.process.isRunning, monotonicNanos() < deadline { usleep(50_000) }
                if server.process.isRunning { kill(server.pid, SIGKILL) }
                try? FileManager.default.removeItem(at: server.directory)
                exit(128 + sig)
            }
            source.resume()
            self.sources.append(source)
        }
    }

    func restore() {
        for source in self.sources { source.cancel() }
        self.sources = []
        for (sig, old) in self.previous { signal(sig, old) }
        self.previous = []
    }
}
