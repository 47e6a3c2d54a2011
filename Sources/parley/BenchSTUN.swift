import ArgumentParser
import TURNBench

/// Options shared by `parley bench stun` and `parley bench turn`.
struct TURNTargetOptions: ParsableArguments {
    @Option(help: "parley, coturn or both (one after another under the same load).")
    var target: String = "both"
    @Option(help: "host:port of a running STUN/TURN server on loopback instead of starting one (measured as --target, default parley).")
    var server: String?
    @Option(help: "TURN username (with --server).")
    var user: String = "bench"
    @Option(help: "TURN password (with --server).")
    var password: String = "benchpass"
    @Option(help: "Realm of the --server (informative: the client learns it from the 401 challenge).")
    var realm: String = "bench"
    @Option(help: "pid of the --server, for RSS and CPU figures (default: looked up from its UDP port).")
    var serverPid: Int32?
    @Option(help: "coturn's turnserver binary.")
    var coturn: String = "turnserver"
    @Flag(help: "Do not pin the server to the last CPU and the bench to the others.")
    var noPin = false
    @Flag(help: "No progress lines.")
    var quiet = false
    @Flag(help: "Start Parley with --no-turn-gso (one datagram per send), to see what UDP GSO contributes.")
    var parleyNoGso = false

    func validateTarget() throws {
        guard ["parley", "coturn", "both"].contains(target) else { throw ValidationError("--target must be parley, coturn or both") }
    }

    func options() -> TURNBenchOptions {
        var o = TURNBenchOptions(parleyExecutable: TURNBenchOptions.currentExecutable)
        switch target {
        case "parley": o.targets = [.parley]
        case "coturn": o.targets = [.coturn]
        default: o.targets = server == nil ? [.parley, .coturn] : [.parley]
        }
        o.server = server
        o.username = user
        o.password = password
        o.serverPID = serverPid
        o.coturnExecutable = coturn
        o.pin = !noPin
        o.progress = !quiet
        if parleyNoGso { o.parleyArguments = ["--no-turn-gso"] }
        return o
    }
}

struct BenchSTUN: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stun",
        abstract: "Binding requests from many UDP sockets with a window in flight each; responses/s and loss, Parley vs coturn.")

    @OptionGroup var targetOptions: TURNTargetOptions
    @Option(help: "UDP sockets.")
    var sockets: Int = 64
    @Option(help: "Requests in flight per socket.")
    var window: Int = 16
    @Option(help: "Measured seconds (after a 1 s warm-up).")
    var duration: Double = 10

    func validate() throws {
        try targetOptions.validateTarget()
        guard sockets > 0, sockets <= 4096 else { throw ValidationError("--sockets must be in 1…4096") }
        guard window > 0, window <= 1024 else { throw ValidationError("--window must be in 1…1024") }
        guard duration > 0, duration <= 3600 else { throw ValidationError("--duration must be in (0, 3600]") }
    }

    func run() async throws {
        var o = targetOptions.options()
        o.sockets = sockets
        o.window = window
        o.duration = duration
        print(try await TURNBench.runSTUN(o))
    }
}
