import Benchmark
import BenchSupport
import RTCBase

// Parley's media primitives, one benchmark per hot-path operation. Metrics:
// wall clock per operation and mallocCountTotal (the hot path must not
// allocate per packet in steady state). Most benchmarks run 1000 operations
// per sample (scalingFactor .kilo): run with `--scale` to read the table per
// operation. See ../../README.md.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .mallocCountTotal, .throughput],
        scalingFactor: .kilo,
        maxDuration: .seconds(2))

    Benchmark("Sequence unwrap") { benchmark in
        var u = SequenceUnwrapper()
        var sum: Int64 = 0
        for i in benchmark.scaledIterations {
            sum &+= u.unwrap(SequenceNumber(UInt16(truncatingIfNeeded: i)))
        }
        blackHole(sum)
    }

    registerSTUNBenchmarks()
    registerRTPBenchmarks()
    registerRTCPBenchmarks()
    registerVP8Benchmarks()
    registerSDPBenchmarks()
    registerSRTPBenchmarks()
    registerCodecBenchmarks()
}
