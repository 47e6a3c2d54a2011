import ArgumentParser

@main
struct Parley: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parley",
        abstract: "Parley: a media and messaging server (signaling, chat, SFU, STUN/TURN).",
        subcommands: [Serve.self, Bench.self]
    )
}

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Load and speed benchmarks.",
        subcommands: [BenchSignaling.self, BenchSTUN.self, BenchTURN.self, BenchCodec.self]
    )
}
