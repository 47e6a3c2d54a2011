import Benchmark
import RTCBase

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .mallocCountTotal], maxDuration: .seconds(2))

    Benchmark("Sequence unwrap") { benchmark in
        var u = SequenceUnwrapper()
        var sum: Int64 = 0
        for i in benchmark.scaledIterations {
            sum &+= u.unwrap(SequenceNumber(UInt16(truncatingIfNeeded: i)))
        }
        blackHole(sum)
    }
}
