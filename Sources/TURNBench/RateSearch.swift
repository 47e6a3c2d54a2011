/// Finds the highest rate a server relays without loss, one short step at a
/// time: double from `start` until a step loses messages (or the generator
/// cannot reach the rate), then bisect between the best lossless rate and the
/// lowest lossy one until they are within `precision` of each other.
///
/// Pure bookkeeping so the stepping can be tested without sockets.
public struct LosslessRateSearch: Sendable, Equatable {
    public let start: Int
    public let minimum: Int
    public let maximum: Int
    /// Stop when (lowest lossy − highest lossless) ≤ highest lossless × precision.
    public let precision: Double
    public let maxSteps: Int
    public private(set) var highestLossless: Int?
    public private(set) var lowestLossy: Int?
    public private(set) var steps = 0

    public init(start: Int, minimum: Int = 100, maximum: Int, precision: Double = 0.05, maxSteps: Int = 12) {
        self.start = max(minimum, min(start, maximum))
        self.minimum = minimum
        self.maximum = maximum
        self.precision = precision
        self.maxSteps = maxSteps
    }

    /// The rate to try next, or nil when the search is over.
    public var next: Int? {
        guard steps < maxSteps else { return nil }
        guard let lossy = lowestLossy else {
            guard let good = highestLossless else { return start }
            return good >= maximum ? nil : min(maximum, good * 2)
        }
        let good = highestLossless ?? 0
        if good == 0 {
            // Nothing lossless yet: halve until something is, but not below the floor.
            let half = lossy / 2
            return half >= minimum ? half : nil
        }
        guard lossy - good > max(1, Int(Double(good) * precision)) else { return nil }
        return (good + lossy) / 2
    }

    /// Records the outcome of a step at `rate`.
    public mutating func record(rate: Int, lossless: Bool) {
        steps += 1
        if lossless {
            highestLossless = max(highestLossless ?? rate, rate)
        } else {
            lowestLossy = min(lowestLossy ?? rate, rate)
        }
    }
}
