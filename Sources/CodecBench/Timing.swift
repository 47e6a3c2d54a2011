#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Wall-clock and CPU time of one measured region, in seconds.
///
/// Both are kept because the benchmark machine is shared: wall clock is what
/// a user sees, CPU time (user + system of the whole process) is what the
/// work costs and does not grow when another process takes the core.
public struct Elapsed: Sendable, Equatable {
    public var wall: Double
    public var cpu: Double

    public init(wall: Double, cpu: Double) {
        self.wall = wall
        self.cpu = cpu
    }
}

/// Reads the monotonic and the process CPU clocks. A benchmark tool, not a
/// sans-IO engine, so it reads clocks itself.
enum Clock {
    static func seconds(_ clock: clockid_t) -> Double {
        var ts = timespec()
        clock_gettime(clock, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    static var wall: Double { seconds(CLOCK_MONOTONIC) }
    /// All threads of this process (libvpx worker threads included).
    static var cpu: Double { seconds(CLOCK_PROCESS_CPUTIME_ID) }

    /// Times `body`; returns its result and the elapsed times.
    static func measure<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> (R, Elapsed) {
        let w0 = wall, c0 = cpu
        let result = try body()
        let c1 = cpu, w1 = wall
        return (result, Elapsed(wall: w1 - w0, cpu: c1 - c0))
    }
}

/// Errors of running an external tool.
public enum ToolError: Error, Sendable, Equatable {
    /// posix_spawn failed (usually: the tool is not installed).
    case spawnFailed(tool: String, errno: Int32)
    /// The tool exited with a non-zero status; `stderr` is its tail.
    case failed(tool: String, status: Int32, stderr: String)
    /// The tool ran but its output lacked the figure we parse.
    case unparsableOutput(tool: String, output: String)
}

/// What one subprocess run cost and printed.
struct ToolRun {
    var elapsed: Elapsed
    var stdout: String
    var stderr: String
}

/// Runs external tools (vpxenc, vpxdec, opusenc, opusdec, gnuplot) with
/// posix_spawn and waits with wait4, so the child's own CPU time (rusage)
/// is known: the fair counterpart of our process CPU clock.
enum Tool {
    static func isInstalled(_ name: String) -> Bool {
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin"
        return path.split(separator: ":").contains { access("\($0)/\(name)", X_OK) == 0 }
    }

    static func run(_ name: String, _ arguments: [String], workDirectory: String) throws(ToolError) -> ToolRun {
        let outPath = "\(workDirectory)/.\(name).stdout"
        let errPath = "\(workDirectory)/.\(name).stderr"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)

        let argv: [UnsafeMutablePointer<CChar>?] = ([name] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let w0 = Clock.wall
        let status = posix_spawnp(&pid, name, &actions, nil, argv, environ)
        guard status == 0 else { throw .spawnFailed(tool: name, errno: status) }
        var exitStatus: Int32 = 0
        var usage = rusage()
        while wait4(pid, &exitStatus, 0, &usage) < 0 && errno == EINTR {}
        let wall = Clock.wall - w0
        let cpu = Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) * 1e-6
            + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) * 1e-6
        let stdout = readText(outPath), stderr = readText(errPath)
        unlink(outPath); unlink(errPath)
        // WIFEXITED / WEXITSTATUS are macros: decode the status word by hand.
        let exited = exitStatus & 0x7f == 0
        let code = (exitStatus >> 8) & 0xff
        guard exited, code == 0 else {
            throw .failed(tool: name, status: exited ? code : -(exitStatus & 0x7f), stderr: String(stderr.suffix(400)))
        }
        return ToolRun(elapsed: Elapsed(wall: wall, cpu: cpu), stdout: stdout, stderr: stderr)
    }

    private static func readText(_ path: String) -> String {
        guard let f = fopen(path, "rb") else { return "" }
        defer { fclose(f) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = fread(&chunk, 1, chunk.count, f)
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
