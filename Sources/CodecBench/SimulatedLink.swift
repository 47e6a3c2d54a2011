/// SplitMix64: a tiny, fast, seedable generator, so a loss pattern is a
/// pure function of its seed (the same seed gives the same drops on every
/// machine and every run).
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    public mutating func unit() -> Double { Double(next() >> 11) * 0x1p-53 }
}

/// A one-way network path that drops and reorders packets, deterministically
/// for a given seed. Each packet independently is lost with `lossRate`;
/// a surviving packet is held back with `reorderRate` and delivered after
/// the next surviving packet (a swap of neighbours, the common reordering
/// on real paths). Sans-IO: `send` returns what arrives, in arrival order.
public struct SimulatedLink<Packet>: Sendable where Packet: Sendable {
    public let lossRate: Double
    public let reorderRate: Double
    private var generator: SeededGenerator
    private var held: Packet?
    public private(set) var sent = 0
    public private(set) var dropped = 0
    public private(set) var reordered = 0

    public init(lossRate: Double, reorderRate: Double = 0, seed: UInt64) {
        self.lossRate = min(max(lossRate, 0), 1)
        self.reorderRate = min(max(reorderRate, 0), 1)
        generator = SeededGenerator(seed: seed)
    }

    /// Sends one packet; returns the packets delivered now (0, 1 or 2).
    public mutating func send(_ packet: Packet) -> [Packet] {
        sent += 1
        // Two draws per packet whatever happens, so the pattern of one
        // packet does not shift the draws of the next.
        let lossDraw = generator.unit(), reorderDraw = generator.unit()
        if lossDraw < lossRate {
            dropped += 1
            return []
        }
        if let previous = held {
            held = nil
            return [packet, previous]
        }
        if reorderDraw < reorderRate {
            held = packet
            reordered += 1
            return []
        }
        return [packet]
    }

    /// Delivers a packet still held back (end of the stream).
    public mutating func flush() -> [Packet] {
        defer { held = nil }
        return held.map { [$0] } ?? []
    }
}
