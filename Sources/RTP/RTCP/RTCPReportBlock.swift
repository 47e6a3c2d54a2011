import RTCBase

/// One reception report block (RFC 3550 §6.4.1), carried in SR and RR.
public struct RTCPReportBlock: Sendable, Equatable {
    public var ssrc: SSRC
    /// Fraction lost since the last report, as a fixed-point number /256.
    public var fractionLost: UInt8
    /// Cumulative packets lost: a signed 24-bit field (duplicates can make it
    /// negative). Values outside the 24-bit range are clamped when written.
    public var cumulativeLost: Int32
    public var extendedHighestSequenceNumber: UInt32
    public var jitter: UInt32
    /// Middle 32 bits of the last SR's NTP timestamp (LSR).
    public var lastSenderReport: UInt32
    /// Delay since that SR in 1/65536 s (DLSR).
    public var delaySinceLastSenderReport: UInt32

    public init(
        ssrc: SSRC, fractionLost: UInt8 = 0, cumulativeLost: Int32 = 0, extendedHighestSequenceNumber: UInt32 = 0,
        jitter: UInt32 = 0, lastSenderReport: UInt32 = 0, delaySinceLastSenderReport: UInt32 = 0
    ) {
        self.ssrc = ssrc
        self.fractionLost = fractionLost
        self.cumulativeLost = cumulativeLost
        self.extendedHighestSequenceNumber = extendedHighestSequenceNumber
        self.jitter = jitter
        self.lastSenderReport = lastSenderReport
        self.delaySinceLastSenderReport = delaySinceLastSenderReport
    }

    static let size = 24

    init(reading r: inout RTCPBodyReader) throws(RTCPError) {
        ssrc = try r.ssrc()
        fractionLost = try r.u8()
        let lost = try r.u24()
        // Sign-extend the 24-bit two's complement value.
        cumulativeLost = Int32(bitPattern: lost << 8) >> 8
        extendedHighestSequenceNumber = try r.u32()
        jitter = try r.u32()
        lastSenderReport = try r.u32()
        delaySinceLastSenderReport = try r.u32()
    }

    func write(to writer: inout ByteWriter) throws(ByteReaderError) {
        let lost = min(max(cumulativeLost, -0x80_0000), 0x7F_FFFF)
        try writer.write(ssrc.rawValue)
        try writer.write(fractionLost)
        try writer.write24(UInt32(bitPattern: lost) & 0xFF_FFFF)
        try writer.write(extendedHighestSequenceNumber)
        try writer.write(jitter)
        try writer.write(lastSenderReport)
        try writer.write(delaySinceLastSenderReport)
    }
}

/// Reads `count` report blocks and whatever profile-specific extension
/// follows them (RFC 3550 §6.4.1 allows one; it is kept as bytes).
func readReportBlocks(count: UInt8, from r: inout RTCPBodyReader) throws(RTCPError) -> ([RTCPReportBlock], [UInt8]) {
    var blocks: [RTCPReportBlock] = []
    blocks.reserveCapacity(Int(count))
    for _ in 0..<count { blocks.append(try RTCPReportBlock(reading: &r)) }
    return (blocks, r.rest())
}
