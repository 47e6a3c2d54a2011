/// Log-linear latency histogram (HdrHistogram-like): exact below 128, then 64 sub-buckets per
/// power of two (relative error < 1.6 %). Fixed 3776 counters, no allocation per record.
struct LatencyHistogram: Sendable {
    static let bucketCount = 128 + 57 * 64

    var counts: [UInt64]
    var total: UInt64 = 0
    var maxValue: UInt64 = 0

    init() {
        self.counts = Array(repeating: 0, count: Self.bucketCount)
    }

    @inline(__always)
    static func index(_ v: UInt64) -> Int {
        if v < 128 { return Int(v) }
        let msb = 63 - v.leadingZeroBitCount
        let shift = msb - 6
        return 128 + (shift - 1) * 64 + Int(truncatingIfNeeded: v >> UInt64(shift)) - 64
    }

    /// Midpoint of a bucket.
    static func value(at index: Int) -> UInt64 {
        if index < 128 { return UInt64(index) }
        let shift = (index - 128) / 64 + 1
        let sub = UInt64((index - 128) % 64 + 64)
        return (sub << UInt64(shift)) + ((UInt64(1) << UInt64(shift)) >> 1)
    }

    @inline(__always)
    mutating func record(_ v: UInt64) {
        self.counts[Self.index(v)] &+= 1
        self.total &+= 1
        if v > self.maxValue { self.maxValue = v }
    }

    mutating func merge(_ other: LatencyHistogram) {
        for i in 0..<Self.bucketCount { self.counts[i] &+= other.counts[i] }
        self.total &+= other.total
        self.maxValue = max(self.maxValue, other.maxValue)
    }

    /// Counts recorded since `earlier` (a snapshot of the same histogram). `maxValue` is not interval-exact.
    func subtracting(_ earlier: LatencyHistogram) -> LatencyHistogram {
        var out = self
        for i in 0..<Self.bucketCount { out.counts[i] &-= earlier.counts[i] }
        out.total &-= earlier.total
        return out
    }

    /// Value at quantile `q` (0...1); 0 when empty.
    func percentile(_ q: Double) -> UInt64 {
        guard self.total > 0 else { return 0 }
        let rank = max(1, UInt64((q * Double(self.total)).rounded(.up)))
        var seen: UInt64 = 0
        for i in 0..<Self.bucketCount {
            seen &+= self.counts[i]
            if seen >= rank { return min(Self.value(at: i), self.maxValue) }
        }
        return self.maxValue
    }
}

/// xorshift64* — cheap per-event-loop randomness for the send path.
struct FastRandom {
    var state: UInt64

    init(seed: UInt64) { self.state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }

    @inline(__always)
    mutating func next() -> UInt64 {
        self.state ^= self.state >> 12
        self.state ^= self.state << 25
        self.state ^= self.state >> 27
        return self.state &* 0x2545_F491_4F6C_DD1D
    }

    /// Uniform in 0..<n (n > 0).
    @inline(__always)
    mutating func next(below n: Int) -> Int {
        Int(truncatingIfNeeded: (self.next() >> 1) % UInt64(n))
    }

    @inline(__always)
    mutating func nextUnit() -> Double {
        Double(self.next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
    }
}
