import RTCBase
extension SplitMix64 {
    /// Uniform in [0, 1).
    mutating func unit() -> Double { Double(next() >> 11) * 0x1p-53 }
}

/// A one-way network path that drops and reorders packets, deterministically
/// for a given seed. Each packet independently is lost with `lossRate`;
/// a surviving packet is held back with `reorderRate` and delivered after
/// the next surviving packet (a swap of neighbours, the common reordering
/// on real paths). Sans-IO: `send` returns what arrives, in arrival order.
public struct SimulatedLink<Packet>: Sendable where Packet: Sendable {
    public let lossRate: Double
    public let reorderRate: Double
    private var generator: SplitMix64
    private var held: Packet?
    public private(set) var sent = 0
    public private(set) var dropped = 0
    public private(set) var reordered = 0

    public init(lossRate: Double, reorderRate: Double = 0, seed: UInt64) {
        self.lossRate = min(max(lossRate, 0), 1)
        self.reorderRate = min(max(reorderRate, 0), 1)
        generator = SplitMix64(seed: seed)
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
