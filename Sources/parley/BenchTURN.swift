import ArgumentParser
import TURNBench

struct BenchTURN: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "turn",
        abstract: "Client pairs relaying ChannelData through two allocations each; highest lossless msg/s and RSS per allocation, Parley vs coturn.")

    @OptionGroup var targetOptions: TURNTargetOptions
    @Option(help: "Client pairs (two allocations each).")
    var pairs: Int = 32
    @Option(help: "Application bytes per ChannelData message.")
    var size: Int = 1200
    @Option(help: "Seconds per rate step.")
    var step: Double = 2
    @Option(help: "First rate tried, messages per second in total.")
    var startRate: Int = 20_000
    @Option(help: "Highest rate tried.")
    var maxRate: Int = 400_000
    @Option(help: "Most steps of the search.")
    var maxSteps: Int = 10
    @Option(help: "Loss (percent) a step may have and still count as lossless.")
    var maxLoss: Double = 0
    @Option(help: "Allocations made to weigh server RSS per allocation (0 = skip).")
    var allocations: Int = 1000

    func validate() throws {
        try targetOptions.validateTarget()
        guard pairs > 0, pairs <= 2000 else { throw ValidationError("--pairs must be in 1…2000") }
        guard (16...1400).contains(size) else { throw ValidationError("--size must be in 16…1400") }
        guard step > 0, step <= 60 else { throw ValidationError("--step must be in (0, 60]") }
        guard startRate >= 100, maxRate >= startRate else { throw ValidationError("need 100 ≤ --start-rate ≤ --max-rate") }
        guard maxSteps > 0, maxSteps <= 50 else { throw ValidationError("--max-steps must be in 1…50") }
        guard (0...100).contains(maxLoss) else { throw ValidationError("--max-loss must be in 0…100") }
        guard (0...20_000).contains(allocations) else { throw ValidationError("--allocations must be in 0…20000") }
    }

    func run() async throws {
        var o = targetOptions.options()
        o.pairs = pairs
        o.payloadSize = size
        o.stepSeconds = step
        o.startRate = startRate
        o.maxRate = maxRate
        o.maxSteps = maxSteps
        o.maxLossPercent = maxLoss
        o.allocations = allocations
        for line in try await TURNBench.runTURN(o) { print(line) }
    }
}
