// parley-call: a headless call participant on the command line.
//
// Logs in to a Parley server, starts, answers or joins a call, publishes
// synthetic Opus speech and a VP8 camera (and optionally a screen share),
// decodes what the others send, and prints one live progress line on
// stderr (updated in place). At the end, with --json, one JSON object of
// per-track and total stats goes to stdout. Exit status 0 when media was
// received, 1 when none was, 2 when the run failed before or outside the call.

import ArgumentParser
import CallClient
import Dispatch
import Foundation
import Logging

struct ParleyCall: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parley-call",
        abstract: "A headless call client: synthetic Opus + VP8 out, decoding and stats in.")

    @Option(help: "Signaling WebSocket URL.")
    var url = "ws://127.0.0.1:8080/ws"
    @Option(help: "Username to log in as.")
    var user: String
    @Option(help: "Password.")
    var password: String
    @Flag(help: "Register the user first (an existing user is fine).")
    var register = false

    @Option(help: "Call this user (1:1).")
    var call: String?
    @Option(help: "Start a group call in this group.")
    var group: String?
    @Flag(help: "Wait for an incoming call and accept it.")
    var answer = false
    @Option(help: "Join (accept) this call id.")
    var join: String?

    @Option(help: "Seconds to stay in the call once joined; 0 stays until the call ends.")
    var duration: Double = 10
    @Option(help: "With --answer: seconds to wait for a call.")
    var ringTimeout: Double = 60
    @Flag(help: "Also publish a screen share (source \"screen\").")
    var screen = false
    @Flag(help: "Publish no camera.")
    var noVideo = false
    @Flag(help: "Publish no audio.")
    var noAudio = false
    @Option(help: "Camera width.")
    var width = 640
    @Option(help: "Camera height.")
    var height = 360
    @Option(help: "Camera frames per second.")
    var fps = 30
    @Option(help: "Camera bitrate, kbit/s.")
    var bitrate = 800
    @Option(help: "Local IP for the media sockets (default: the route to the server).")
    var bind: String?
    @Option(help: "Send media to HOST:PORT instead of the SFU's candidates (an impairment proxy in front of it).")
    var mediaVia: String?
    @Flag(help: "Print the final stats as one JSON object on stdout.")
    var json = false
    @Option(help: "Log level on stderr: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    func validate() throws {
        let actions = [call != nil, group != nil, answer, join != nil].filter { $0 }.count
        guard actions == 1 else { throw ValidationError("give exactly one of --call, --group, --answer, --join") }
        guard duration >= 0, ringTimeout > 0 else { throw ValidationError("--duration and --ring-timeout must be positive") }
        guard width > 0, height > 0, width % 2 == 0, height % 2 == 0, fps > 0, bitrate > 0 else {
            throw ValidationError("camera size must be even and positive, fps and bitrate positive")
        }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level \(logLevel)") }
    }

    func run() async throws {
        let console = Console.shared
        console.isTerminal = isatty(2) != 0
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = ConsoleLogHandler(label: label)
            handler.logLevel = level
            return handler
        }
        var logger = Logger(label: "parley-call")
        logger.logLevel = level

        let action: CallAction
        if let call { action = .call(user: call) }
        else if let group { action = .callGroup(name: group) }
        else if let join { action = .join(callID: join) }
        else { action = .answer }
        let media = MediaOptions(
            audio: !noAudio,
            camera: noVideo ? nil : VideoSourceOptions(width: width, height: height, framesPerSecond: fps, bitrateKbps: bitrate),
            screen: screen ? .screen : nil)
        let config = CallClientConfiguration(
            url: url, username: user, password: password, register: register, action: action,
            duration: duration > 0 ? .milliseconds(Int64(duration * 1000)) : nil,
            ringTimeout: .milliseconds(Int64(ringTimeout * 1000)), media: media, localAddress: bind,
            mediaVia: mediaVia)
        let client = CallClient(configuration: config, logger: logger)

        // SIGINT/SIGTERM: hang up properly (call_end) and still print the stats.
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        let sources = [SIGINT, SIGTERM].map { sig in
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { client.hangUp() }
            source.resume()
            return source
        }
        defer { sources.forEach { $0.cancel() } }

        let report: CallReport
        do {
            report = try await client.run { progress in console.progress(Self.progressLine(progress)) }
        } catch {
            console.endProgress()
            logger.error("\(error)")
            if json { Self.printJSON(["error": "\(error)", "user": user]) }
            throw ExitCode(2)
        }
        console.progress(Self.progressLine(CallProgress(state: "done", report: report)))
        console.endProgress()
        if json {
            let encoder = JSONEncoder()
            encoder.keyEncodingStrategy = .convertToSnakeCase
            encoder.outputFormatting = [.sortedKeys]
            if let data = try? encoder.encode(report) {
                FileHandle.standardOutput.write(data + Data("\n".utf8))
            }
        }
        if !report.receivedMedia {
            logger.error("no media received")
            throw ExitCode(1)
        }
    }

    static func printJSON(_ object: [String: String]) {
        if let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) {
            FileHandle.standardOutput.write(data + Data("\n".utf8))
        }
    }

    /// `[  4.5s] in call | video 2 tracks 268 fr 29.8 fps 790 kbps | audio 450 fr | loss 0.0% | rtt 0.4 ms | jitter 1.1 ms | first frame 610 ms | tx 1330 kbps`
    static func progressLine(_ p: CallProgress) -> String {
        let r = p.report
        let video = r.received.filter { $0.kind == "video" }
        let t = r.receivedTotals
        func ms(_ v: Double?) -> String { v.map { String(format: "%.0f ms", $0) } ?? "-" }
        var parts = [String(format: "[%5.1fs] %@", r.durationS, p.state)]
        parts.append(String(format: "video %d tr %d fr %.1f fps %.0f kbps", video.count, t.videoFramesDecoded,
                            t.currentVideoFPS, video.reduce(0) { $0 + $1.currentBitrateKbps }))
        parts.append(String(format: "audio %d fr", t.audioFramesDecoded))
        parts.append(String(format: "loss %.1f%%", t.lossPercent))
        parts.append("rtt " + (r.rttMs.map { String(format: "%.1f ms", $0) } ?? "-"))
        parts.append(String(format: "jitter %.1f ms", t.jitterMs))
        parts.append("first frame " + ms(r.timeToFirstFrameMs))
        parts.append(String(format: "tx %.0f kbps", r.sentTotals.bitrateKbps))
        return parts.joined(separator: " | ")
    }
}

/// Stderr, shared by the progress line and the logs: a log line first
/// clears the progress line so the two never interleave mid-line.
final class Console: @unchecked Sendable {
    static let shared = Console()
    private let lock = NSLock()
    var isTerminal = false
    private var showing = false

    func progress(_ line: String) {
        lock.lock()
        defer { lock.unlock() }
        // \r rewrites the line in place; on a terminal, ESC[K clears what a
        // longer previous line left.
        write("\r" + line + (isTerminal ? "\u{1B}[K" : ""))
        showing = true
    }

    func endProgress() {
        lock.lock()
        defer { lock.unlock() }
        if showing { write("\n") }
        showing = false
    }

    func log(_ line: String) {
        lock.lock()
        defer { lock.unlock() }
        if showing { write(isTerminal ? "\r\u{1B}[K" : "\n") }
        showing = false
        write(line + "\n")
    }

    private func write(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }
}

struct ConsoleLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { $1 } }
        let fields = all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let time = Date().formatted(.iso8601.time(includingFractionalSeconds: true))
        Console.shared.log("\(time) \(event.level) \(label): \(event.message)" + (fields.isEmpty ? "" : " " + fields))
    }
}

/// Runs an async command: at top level the synchronous `main()` of
/// `ParsableCommand` would win overload resolution and never await `run()`.
func runAsyncCommand<Command: AsyncParsableCommand>(_: Command.Type) async {
    await Command.main(CommandLine.arguments.dropFirst().map { $0 })
}

await runAsyncCommand(ParleyCall.self)
