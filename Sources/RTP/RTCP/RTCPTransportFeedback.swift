import RTCBase

/// Transport-wide congestion control feedback, RTPFB FMT=15
/// (draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1).
///
/// Layout after the two SSRCs: base sequence number (16), packet status
/// count (16), reference time (24, multiples of 64 ms), feedback packet count
/// (8), then packet chunks (16 bits each) describing `packetStatusCount`
/// statuses, then one receive delta per received packet (1 byte for "small",
/// 2 signed bytes for "large"), in 250 µs ticks, then zero padding to a word.
public struct RTCPTransportFeedback: Sendable, Equatable {
    public static let format: UInt8 = 15
    /// One receive-delta tick: 250 µs.
    public static let deltaTickMicroseconds: Int64 = 250
    /// One reference-time unit: 64 ms.
    public static let referenceTimeMicroseconds: Int64 = 64_000

    /// The two-bit packet status symbols (§3.1.1).
    public enum Status: UInt8, Sendable {
        case notReceived = 0
        /// Delta 0…255 ticks, written in one byte.
        case receivedSmallDelta = 1
        /// Any other delta, including negative ones, written in two bytes.
        case receivedLargeDelta = 2
    }

    /// The fate of one transport-wide sequence number.
    public struct PacketResult: Sendable, Equatable {
        public var sequenceNumber: UInt16
        /// Receive delta in 250 µs ticks from the previous received packet (the
        /// first from the reference time); nil when the packet was not received.
        public var delta: Int16?

        public init(sequenceNumber: UInt16, delta: Int16?) {
            self.sequenceNumber = sequenceNumber
            self.delta = delta
        }

        public var received: Bool { delta != nil }

        public var status: Status {
            guard let delta else { return .notReceived }
            return (0...255).contains(delta) ? .receivedSmallDelta : .receivedLargeDelta
        }
    }

    public var senderSSRC: SSRC
    public var mediaSSRC: SSRC
    public var baseSequenceNumber: UInt16
    /// 24-bit reference time in 64 ms units (wraps; only differences matter).
    public var referenceTime: UInt32
    /// Counts feedback packets so the sender can detect lost feedback.
    public var feedbackPacketCount: UInt8
    /// One entry per sequence number from the base, consecutive (mod 2^16).
    public var packets: [PacketResult]

    public init(
        senderSSRC: SSRC, mediaSSRC: SSRC, baseSequenceNumber: UInt16, referenceTime: UInt32,
        feedbackPacketCount: UInt8, packets: [PacketResult]
    ) {
        self.senderSSRC = senderSSRC
        self.mediaSSRC = mediaSSRC
        self.baseSequenceNumber = baseSequenceNumber
        self.referenceTime = referenceTime & 0xFF_FFFF
        self.feedbackPacketCount = feedbackPacketCount
        self.packets = packets
    }

    /// Builds feedback from arrival times: `arrivals[i]` is when packet
    /// `baseSequenceNumber + i` arrived, nil if it did not. The reference time
    /// is the first arrival rounded down to 64 ms; each arrival is rounded to
    /// the nearest 250 µs tick from there, so rounding never accumulates.
    /// Throws `invalidValue` if a gap between arrivals does not fit 16 bits of
    /// ticks (about ±8 s) or there are more than 65535 packets: split the
    /// feedback in that case.
    public init(
        senderSSRC: SSRC, mediaSSRC: SSRC, baseSequenceNumber: UInt16, feedbackPacketCount: UInt8, arrivals: [Instant?]
    ) throws(RTCPError) {
        guard arrivals.count <= 0xFFFF else { throw .invalidValue }
        let unitNs: Int64 = 64_000_000
        let tickNs: Int64 = 250_000
        var reference: Int64 = 0
        if let first = arrivals.lazy.compactMap({ $0 }).first {
            let ns = first.nanoseconds
            reference = ns >= 0 ? ns / unitNs : -((-ns + unitNs - 1) / unitNs)
        }
        let originNs = reference &* unitNs
        var previousTicks: Int64 = 0
        var results: [PacketResult] = []
        results.reserveCapacity(arrivals.count)
        for (i, arrival) in arrivals.enumerated() {
            let seq = baseSequenceNumber &+ UInt16(truncatingIfNeeded: i)
            guard let arrival else {
                results.append(PacketResult(sequenceNumber: seq, delta: nil))
                continue
            }
            let offset = arrival.nanoseconds &- originNs
            let ticks = offset >= 0 ? (offset + tickNs / 2) / tickNs : -((-offset + tickNs / 2) / tickNs)
            let delta = ticks - previousTicks
            guard let small = Int16(exactly: delta) else { throw .invalidValue }
            previousTicks = ticks
            results.append(PacketResult(sequenceNumber: seq, delta: small))
        }
        self.init(
            senderSSRC: senderSSRC, mediaSSRC: mediaSSRC, baseSequenceNumber: baseSequenceNumber,
            referenceTime: UInt32(truncatingIfNeeded: reference), feedbackPacketCount: feedbackPacketCount,
            packets: results)
    }

    /// Receive times in microseconds on the feedback sender's clock (reference
    /// time plus the running sum of deltas); nil for packets not received.
    public var receiveTimesMicroseconds: [Int64?] {
        var t = Int64(referenceTime) * Self.referenceTimeMicroseconds
        return packets.map { p in
            guard let d = p.delta else { return nil }
            t += Int64(d) * Self.deltaTickMicroseconds
            return t
        }
    }

    public init(parsing p: RTCPPacketView) throws(RTCPError) {
        var r: RTCPBodyReader
        (senderSSRC, mediaSSRC, r) = try readFeedbackSSRCs(p, type: RTCPPacketType.transportFeedback, format: Self.format)
        baseSequenceNumber = try r.u16()
        let count = Int(try r.u16())
        referenceTime = try r.u24()
        feedbackPacketCount = try r.u8()
        // Each chunk covers at least one status, and a chunk is 2 bytes: a
        // count beyond what the body could describe is malformed, not a
        // reason to allocate.
        var statuses: [UInt8] = []
        statuses.reserveCapacity(min(count, r.remaining * 8191 / 2))
        while statuses.count < count {
            let chunk = try r.u16()
            let left = count - statuses.count
            if chunk & 0x8000 == 0 {
                // Run length chunk (§3.1.3): 2-bit symbol, 13-bit run.
                let symbol = UInt8(chunk >> 13 & 0x3)
                let run = Int(chunk & 0x1FFF)
                guard symbol != 3 || run == 0 else { throw .malformed }
                for _ in 0..<min(run, left) { statuses.append(symbol) }
            } else if chunk & 0x4000 == 0 {
                // Status vector, 14 one-bit symbols (§3.1.4): 1 = small delta.
                for i in 0..<min(14, left) { statuses.append(UInt8(chunk >> (13 - i) & 1)) }
            } else {
                // Status vector, 7 two-bit symbols.
                for i in 0..<min(7, left) {
                    let symbol = UInt8(chunk >> (12 - 2 * i) & 0x3)
                    guard symbol != 3 else { throw .malformed }
                    statuses.append(symbol)
                }
            }
        }
        var results: [PacketResult] = []
        results.reserveCapacity(count)
        for (i, s) in statuses.enumerated() {
            let seq = baseSequenceNumber &+ UInt16(truncatingIfNeeded: i)
            switch s {
            case 1: results.append(PacketResult(sequenceNumber: seq, delta: Int16(try r.u8())))
            case 2: results.append(PacketResult(sequenceNumber: seq, delta: Int16(bitPattern: try r.u16())))
            default: results.append(PacketResult(sequenceNumber: seq, delta: nil))
            }
        }
        packets = results
        // Whatever remains is zero padding (§3.1); it is not checked.
    }

    /// Chooses packet chunks: a run-length chunk for long runs (and for a
    /// final run), otherwise a 14-symbol 1-bit vector when no large delta is
    /// in reach, otherwise a 7-symbol 2-bit vector.
    func encodeChunks() -> [UInt16] {
        let symbols = packets.map { $0.status.rawValue }
        var chunks: [UInt16] = []
        var i = 0
        let n = symbols.count
        while i < n {
            var run = 1
            while i + run < n, symbols[i + run] == symbols[i], run < 0x1FFF { run += 1 }
            let window = min(14, n - i)
            if run >= 14 || (run == n - i && run > 1) || (run >= 7 && symbols[i..<(i + window)].contains(2)) {
                chunks.append(UInt16(symbols[i]) << 13 | UInt16(run))
                i += run
            } else if !symbols[i..<(i + window)].contains(2) {
                var chunk: UInt16 = 0x8000
                for k in 0..<window { chunk |= UInt16(symbols[i + k]) << (13 - k) }
                chunks.append(chunk)
                i += window
            } else {
                let count = min(7, n - i)
                var chunk: UInt16 = 0xC000
                for k in 0..<count { chunk |= UInt16(symbols[i + k]) << (12 - 2 * k) }
                chunks.append(chunk)
                i += count
            }
        }
        return chunks
    }

    private var deltaBytes: Int {
        packets.reduce(0) { total, p in
            switch p.status {
            case .notReceived: return total
            case .receivedSmallDelta: return total + 1
            case .receivedLargeDelta: return total + 2
            }
        }
    }

    private func size(chunkCount: Int) -> Int { (20 + 2 * chunkCount + deltaBytes + 3) & ~3 }

    public var marshalSize: Int { size(chunkCount: encodeChunks().count) }

    public func write(to writer: inout ByteWriter) throws(RTCPError) {
        guard packets.count <= 0xFFFF else { throw .invalidValue }
        let chunks = encodeChunks()
        let size = size(chunkCount: chunks.count)
        try writeFeedbackHeader(
            to: &writer, type: RTCPPacketType.transportFeedback, format: Self.format, size: size,
            sender: senderSSRC, media: mediaSSRC)
        let start = writer.offset
        try writing(RTCPError.bufferTooSmall) { () throws(ByteReaderError) in
            try writer.write(baseSequenceNumber)
            try writer.write(UInt16(packets.count))
            try writer.write24(referenceTime & 0xFF_FFFF)
            try writer.write(feedbackPacketCount)
            for c in chunks { try writer.write(c) }
            for p in packets {
                guard let d = p.delta else { continue }
                if p.status == .receivedSmallDelta {
                    try writer.write(UInt8(d))
                } else {
                    try writer.write(UInt16(bitPattern: d))
                }
            }
            while writer.offset - start < size - 12 { try writer.write(UInt8(0)) }
        }
    }
}
