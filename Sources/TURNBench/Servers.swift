import Foundation
import NIOCore
import NIOPosix
import RTCBase
import STUN

#if canImport(Glibc)
import Glibc
#endif

/// Everything the bench reports as a failure: setup, a server that will not
/// start or answer, a target this build cannot run.
public struct TURNBenchError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Which server a run measures.
public enum ServerKind: String, Sendable, CaseIterable {
    case parley, coturn
}

/// How to reach (and, when the bench started it, stop) one server under test.
final class ServerUnderTest: @unchecked Sendable {
    let kind: ServerKind
    let address: SocketAddress
    let username: String
    let password: String
    /// nil when the server is not local or its pid could not be found (no RSS/CPU figures).
    let pid: Int32?
    let process: Process?
    let directory: URL?
    let note: String

    init(kind: ServerKind, address: SocketAddress, username: String, password: String, pid: Int32?,
         process: Process?, directory: URL?, note: String) {
        self.kind = kind
        self.address = address
        self.username = username
        self.password = password
        self.pid = pid
        self.process = process
        self.directory = directory
        self.note = note
    }

    static let benchUser = "bench"
    static let benchPassword = "benchpass"
    static let benchRealm = "bench"

    /// Starts `turnserver` on loopback with long-term credentials, optionally
    /// pinned with taskset to `cpus` and with one relay thread per pinned CPU.
    static func startCoturn(executable: String, relayPorts: Int, cpus: [Int]?, group: any EventLoopGroup) async throws -> ServerUnderTest {
        guard let path = findExecutable(executable) else {
            throw TURNBenchError("\(executable) not found: install coturn (apt-get install -y coturn) or pass --coturn PATH")
        }
        let port = try await freeUDPPort(group: group)
        let base = Int.random(in: 20_000...(60_000 - relayPorts))
        let directory = try makeTemporaryDirectory("coturn")
        let threads = cpus?.count ?? System.coreCount
        var arguments = [
            "-n", "--no-cli", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", "--listening-port=\(port)",
            "--min-port=\(base)", "--max-port=\(base + relayPorts - 1)", "--lt-cred-mech",
            "--user=\(benchUser):\(benchPassword)", "--realm=\(benchRealm)", "--allow-loopback-peers",
            "--no-tls", "--no-dtls", "--relay-threads=\(threads)",
            "--log-file=\(directory.appendingPathComponent("turnserver.log").path)", "--simple-log", "--no-stdout-log",
            "--pidfile=\(directory.appendingPathComponent("turnserver.pid").path)",
        ]
        arguments = pinned(path, arguments, cpus: cpus)
        let process = try launch(arguments, directory: directory)
        let note = "coturn: \(path) on 127.0.0.1:\(port) (pid \(process.processIdentifier)), relay ports \(base)-\(base + relayPorts - 1), "
            + "--relay-threads=\(threads)" + (cpus.map { ", pinned to CPU \(cpuList($0))" } ?? "")
        return ServerUnderTest(kind: .coturn, address: try SocketAddress(ipAddress: "127.0.0.1", port: port),
                               username: benchUser, password: benchPassword, pid: process.processIdentifier,
                               process: process, directory: directory, note: note)
    }

    /// Starts `parley serve` from `executable` with its STUN/TURN listener on
    /// a free port and the bench's user; other listeners on free ports or off.
    static func startParley(executable: String, relayPorts: Int, cpus: [Int]?, extraArguments: [String] = [],
                            group: any EventLoopGroup) async throws -> ServerUnderTest {
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw TURNBenchError("parley executable not found: \(executable)")
        }
        let help = (try? runCapturing(executable, ["serve", "--help"])) ?? ""
        for flag in ["--turn-port", "--turn-user", "--realm", "--allow-loopback-peers"] where !help.contains(flag) {
            throw TURNBenchError("this parley build has no TURN server yet (`parley serve` lacks \(flag)); "
                                 + "start a TURN server yourself and pass --server 127.0.0.1:PORT --user U --password P --realm R")
        }
        let turnPort = try await freeUDPPort(group: group)
        let mediaPort = try await freeUDPPort(group: group)
        let httpPort = try await freeTCPPort(group: group)
        let directory = try makeTemporaryDirectory("parley")
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("data"), withIntermediateDirectories: true)
        var arguments = [
            "serve", "--host", "127.0.0.1", "--http-port", "\(httpPort)", "--line-port", "0",
            "--media-port", "\(mediaPort)", "--turn-port", "\(turnPort)",
            "--data-dir", directory.appendingPathComponent("data").path,
            "--allow-loopback-peers", "--turn-user", "\(benchUser):\(benchPassword)", "--realm", benchRealm,
            "--log-level", "warning",
        ]
        // The same relay port range size as coturn gets, and quotas that do not
        // stop one user from holding every allocation of the bench.
        let base = Int.random(in: 20_000...(60_000 - relayPorts))
        if help.contains("--relay-ports") { arguments += ["--relay-ports", "\(base)-\(base + relayPorts - 1)"] }
        if help.contains("--turn-quota-per-user") { arguments += ["--turn-quota-per-user", "\(relayPorts)"] }
        if help.contains("--turn-total-quota") { arguments += ["--turn-total-quota", "\(relayPorts)"] }
        // coturn answers unauthenticated requests without a per-source limit;
        // every bench socket shares 127.0.0.1, so lift Parley's as well.
        if help.contains("--turn-unauthenticated-rate") { arguments += ["--turn-unauthenticated-rate", "0"] }
        arguments += extraArguments
        arguments = pinned(executable, arguments, cpus: cpus)
        let process = try launch(arguments, directory: directory)
        let note = "parley: \(executable) serve, TURN on 127.0.0.1:\(turnPort) (pid \(process.processIdentifier))"
            + (extraArguments.isEmpty ? "" : " with \(extraArguments.joined(separator: " "))")
            + (cpus.map { ", pinned to CPU \(cpuList($0))" } ?? "")
        return ServerUnderTest(kind: .parley, address: try SocketAddress(ipAddress: "127.0.0.1", port: turnPort),
                               username: benchUser, password: benchPassword, pid: process.processIdentifier,
                               process: process, directory: directory, note: note)
    }

    /// A server someone else started.
    static func external(kind: ServerKind, host: String, port: Int, username: String, password: String, pid: Int32?) throws -> ServerUnderTest {
        let address = try SocketAddress(ipAddress: host, port: port)
        guard address.ipAddress?.hasPrefix("127.") == true || address.ipAddress == "::1" else {
            throw TURNBenchError("the bench only sends to loopback addresses; \(host) is not one")
        }
        let found = pid ?? findUDPListenerPID(port: port)
        let note = "\(kind.rawValue): external server \(host):\(port)" + (found.map { " (pid \($0))" } ?? " (pid unknown: no RSS/CPU figures)")
        return ServerUnderTest(kind: kind, address: address, username: username, password: password, pid: found,
                               process: nil, directory: nil, note: note)
    }

    var isRunning: Bool { process?.isRunning ?? true }

    /// Sends Binding requests until one is answered.
    func waitReady(group: any EventLoopGroup, timeout: Double = 60) async throws {
        let deadline = monotonicNanos() + UInt64(timeout * 1e9)
        while true {
            if let process, !process.isRunning {
                throw TURNBenchError("\(kind.rawValue) exited with status \(process.terminationStatus) before answering STUN:\n\(logTail())")
            }
            if (try? await pingBinding(address, group: group)) == true { return }
            guard monotonicNanos() < deadline else {
                throw TURNBenchError("\(kind.rawValue) did not answer a STUN Binding request within \(Int(timeout)) s:\n\(logTail())")
            }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
    }

    func rssKiB() -> Int? { pid.flatMap(readRSSKiB) }
    func cpuSeconds() -> Double? { pid.flatMap(readCPUSeconds) }

    func stop() async {
        if let process, process.isRunning {
            kill(process.processIdentifier, SIGTERM)
            let deadline = monotonicNanos() + 10_000_000_000
            while process.isRunning, monotonicNanos() < deadline { try? await Task.sleep(nanoseconds: 20_000_000) }
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                while process.isRunning { try? await Task.sleep(nanoseconds: 20_000_000) }
            }
        }
        if let directory { try? FileManager.default.removeItem(at: directory) }
    }

    func logTail(lines: Int = 15) -> String {
        guard let directory else { return "(no log)" }
        var text = ""
        for name in ["server.log", "turnserver.log"] {
            if let t = try? String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8) { text += t }
        }
        return text.split(separator: "\n").suffix(lines).joined(separator: "\n")
    }

    private static func pinned(_ executable: String, _ arguments: [String], cpus: [Int]?) -> [String] {
        guard let cpus, let taskset = findExecutable("taskset") else { return [executable] + arguments }
        return [taskset, "-c", cpuList(cpus), executable] + arguments
    }

    private static func launch(_ command: [String], directory: URL) throws -> Process {
        let logURL = directory.appendingPathComponent("server.log")
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        let log = try FileHandle(forWritingTo: logURL)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            try? FileManager.default.removeItem(at: directory)
            throw TURNBenchError("could not start \(command[0]): \(error)")
        }
        try? log.close()
        return process
    }
}

func cpuList(_ cpus: [Int]) -> String { cpus.map(String.init).joined(separator: ",") }

func makeTemporaryDirectory(_ name: String) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("parley-bench-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

func findExecutable(_ name: String) -> String? {
    if name.contains("/") { return FileManager.default.isExecutableFile(atPath: name) ? name : nil }
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
    let dirs: [String] = path.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin"]
    for dir in dirs {
        let candidate = "\(dir)/\(name)"
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
}

func runCapturing(_ executable: String, _ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self)
}

func monotonicNanos() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

func freeUDPPort(group: any EventLoopGroup) async throws -> Int {
    let channel = try await DatagramBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
    let port = channel.localAddress?.port ?? 0
    try await channel.close()
    guard port > 0 else { throw TURNBenchError("could not find a free UDP port") }
    return port
}

func freeTCPPort(group: any EventLoopGroup) async throws -> Int {
    let channel = try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
    let port = channel.localAddress?.port ?? 0
    try await channel.close()
    guard port > 0 else { throw TURNBenchError("could not find a free TCP port") }
    return port
}

/// VmRSS in KiB from /proc/PID/status.
func readRSSKiB(pid: Int32) -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return Int(line.dropFirst(6).filter(\.isNumber))
    }
    return nil
}

/// User + system CPU time of all the process's threads, from /proc/PID/stat
/// (fields 14 and 15, in clock ticks; the command name in field 2 may hold
/// spaces, so count from the last ')').
func readCPUSeconds(pid: Int32) -> Double? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = text.lastIndex(of: ")") else { return nil }
    let fields = text[text.index(after: close)...].split(separator: " ")
    guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
    let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
    return (user + system) / (ticks > 0 ? ticks : 100)
}

/// The pid of the local process with a UDP socket bound to `port` (Linux: /proc/net/udp inode → /proc/*/fd).
func findUDPListenerPID(port: Int) -> Int32? {
    var inodes = Set<String>()
    let hexPort = String(format: ":%04X", port)
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        guard let text = try? String(contentsOfFile: table, encoding: .utf8) else { continue }
        for line in text.split(separator: "\n").dropFirst() {
            let f = line.split(separator: " ")
            guard f.count > 9, f[1].hasSuffix(hexPort) else { continue }
            inodes.insert("socket:[\(f[9])]")
        }
    }
    guard !inodes.isEmpty, let pids = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return nil }
    for pid in pids where pid.allSatisfy(\.isNumber) && Int32(pid) != getpid() {
        guard let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd") else { continue }
        for fd in fds {
            if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)"), inodes.contains(target) {
                return Int32(pid)
            }
        }
    }
    return nil
}

/// Restricts the calling thread to `cpus` (threads it creates inherit this).
/// Glibc's module does not export `sched_setaffinity` (it is behind
/// _GNU_SOURCE), so it is looked up at run time; the mask is a plain
/// 1024-bit `cpu_set_t`-sized bit array.
@discardableResult
func pinCurrentThread(to cpus: [Int]) -> Bool {
    #if os(Linux)
    typealias SetAffinity = @convention(c) (Int32, Int, UnsafeRawPointer) -> Int32
    guard let symbol = dlsym(nil, "sched_setaffinity") else { return false }
    let setAffinity = unsafeBitCast(symbol, to: SetAffinity.self)
    var mask = [UInt8](repeating: 0, count: 128)
    for cpu in cpus where cpu >= 0 && cpu / 8 < mask.count { mask[cpu / 8] |= UInt8(1 << (cpu % 8)) }
    return mask.withUnsafeBytes { setAffinity(0, $0.count, $0.baseAddress!) == 0 }
    #else
    return false
    #endif
}

/// The NIO address as the STUN layer's `TransportAddress`.
func transportAddress(_ address: SocketAddress?) -> TransportAddress? {
    guard let address, let ip = address.ipAddress, let port = address.port, let parsed = IPAddress(ip) else { return nil }
    return TransportAddress(ip: parsed, port: UInt16(truncatingIfNeeded: port))
}

func socketAddress(_ address: TransportAddress) throws -> SocketAddress {
    try SocketAddress(ipAddress: "\(address.ip)", port: Int(address.port))
}

/// One Binding request to `address`; true when a valid response came back within 500 ms.
func pingBinding(_ address: SocketAddress, group: any EventLoopGroup) async throws -> Bool {
    let loop = group.next()
    var rng = SystemRandomNumberGenerator()
    let tid = STUNTransactionID.random(using: &rng)
    let handler = PingHandler(promise: loop.makePromise(of: Bool.self), transactionID: tid)
    let channel = try await DatagramBootstrap(group: loop)
        .channelInitializer { channel in channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(handler) } }
        .bind(host: "127.0.0.1", port: 0).get()
    defer { channel.close(promise: nil) }
    var buffer = channel.allocator.buffer(capacity: BindingProbe.requestSize)
    _ = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: BindingProbe.requestSize) { raw in
        try BindingProbe.writeRequest(transactionID: tid, into: raw)
    }
    let timeout = loop.scheduleTask(in: .milliseconds(500)) { handler.finish(false) }
    try await channel.writeAndFlush(AddressedEnvelope(remoteAddress: address, data: buffer))
    let ok = try await handler.promise.futureResult.get()
    timeout.cancel()
    return ok
}

/// Waits for the one valid answer to a readiness probe (state touched on the channel's loop only).
private final class PingHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    let promise: EventLoopPromise<Bool>
    let transactionID: STUNTransactionID
    private var done = false

    init(promise: EventLoopPromise<Bool>, transactionID: STUNTransactionID) {
        self.promise = promise
        self.transactionID = transactionID
    }

    func finish(_ ok: Bool) {
        guard !done else { return }
        done = true
        promise.succeed(ok)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        guard let mapped = transportAddress(context.channel.localAddress) else { return }
        let ok = envelope.data.withUnsafeReadableBytes { bytes in
            (try? BindingProbe.validateResponse(bytes, mapped: mapped)) == transactionID
        }
        if ok { finish(true) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {}

    func channelInactive(context: ChannelHandlerContext) { finish(false) }
}
