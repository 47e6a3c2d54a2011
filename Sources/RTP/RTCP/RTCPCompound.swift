import RTCBase

/// Why RTCP could not be parsed or built.
public enum RTCPError: Error, Sendable, Equatable {
    /// No bytes at all.
    case empty
    /// A packet's body is shorter than its type and counts require.
    case truncated
    /// The version field is not 2 (RFC 3550 §6.4.1, A.2).
    case badVersion(UInt8)
    /// The length field runs past the end of the datagram, or fewer than 4
    /// bytes remain for a header.
    case lengthOverrun
    /// The P bit is set on a packet that is not the last of the compound
    /// (RFC 3550 A.2: only the last packet may be padded).
    case paddingNotLast
    /// The pad count is zero or reaches into the header.
    case badPadding
    /// Strict mode: the first packet is not SR or RR (RFC 3550 §6.1). Off by
    /// default, since reduced-size RTCP (RFC 5506) drops that rule.
    case firstPacketNotReport
    /// The body does not fit the packet type's layout (e.g. an FCI that is not
    /// a whole number of entries, a reserved TWCC symbol).
    case malformed
    /// `init(parsing:)` of one type was called on a packet of another.
    case wrongType
    /// A value to be built does not fit its field (too many report blocks,
    /// an item longer than 255 bytes, a TWCC delta out of range).
    case invalidValue
    /// The caller's buffer is too small.
    case bufferTooSmall
}

/// RTCP packet types (RFC 3550 §12.1, RFC 4585 §6.1).
public enum RTCPPacketType {
    public static let senderReport: UInt8 = 200
    public static let receiverReport: UInt8 = 201
    public static let sourceDescription: UInt8 = 202
    public static let goodbye: UInt8 = 203
    public static let application: UInt8 = 204
    public static let transportFeedback: UInt8 = 205
    public static let payloadFeedback: UInt8 = 206
}

/// One packet of a compound, found by `RTCPCompoundIterator`: the common
/// header fields and a view of the body (after the 4-byte header, padding
/// removed). Views point into the caller's buffer.
@frozen
public struct RTCPPacketView {
    /// The 5-bit count field: RC, SC, FMT or APP subtype depending on type.
    public let count: UInt8
    public let packetType: UInt8
    public let hasPadding: Bool
    /// The whole packet, header and padding included.
    public let packet: UnsafeRawBufferPointer
    /// The packet after its 4-byte header, padding excluded.
    public let body: UnsafeRawBufferPointer

    @inlinable
    init(count: UInt8, packetType: UInt8, hasPadding: Bool, packet: UnsafeRawBufferPointer, body: UnsafeRawBufferPointer) {
        self.count = count
        self.packetType = packetType
        self.hasPadding = hasPadding
        self.packet = packet
        self.body = body
    }

    /// For feedback packets (RFC 4585 §6.1), the first body word.
    @inlinable public var senderSSRC: SSRC? {
        guard body.count >= 4 else { return nil }
        return SSRC(rawValue: UInt32(bigEndian: body.loadUnaligned(as: UInt32.self)))
    }
}

/// Walks the packets of a compound RTCP datagram without allocating, checking
/// each header as RFC 3550 A.2 does: version 2, length within the datagram,
/// padding only on the last packet.
@frozen
public struct RTCPCompoundIterator {
    public let bytes: UnsafeRawBufferPointer
    @usableFromInline var _offset: Int
    @inlinable public var offset: Int { _offset }

    @inlinable
    public init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
        _offset = 0
    }

    /// The next packet, nil at the end, or an error for a malformed header
    /// (after which the iterator is done).
    @inlinable
    public mutating func next() throws(RTCPError) -> RTCPPacketView? {
        let remaining = bytes.count &- offset
        guard remaining > 0 else { return nil }
        guard remaining >= 4 else {
            _offset = bytes.count
            throw .lengthOverrun
        }
        let first = bytes[offset]
        guard first >> 6 == 2 else {
            _offset = bytes.count
            throw .badVersion(first >> 6)
        }
        let type = bytes[offset &+ 1]
        let words = Int(bytes[offset &+ 2]) << 8 | Int(bytes[offset &+ 3])
        let length = (words &+ 1) &* 4
        guard length <= remaining else {
            _offset = bytes.count
            throw .lengthOverrun
        }
        let start = offset
        let end = offset &+ length
        var bodyEnd = end
        let padded = first & 0x20 != 0
        if padded {
            guard end == bytes.count else {
                _offset = bytes.count
                throw .paddingNotLast
            }
            let pad = Int(bytes[end &- 1])
            guard pad > 0, pad <= length &- 4 else {
                _offset = bytes.count
                throw .badPadding
            }
            bodyEnd = end &- pad
        }
        _offset = end
        return RTCPPacketView(
            count: first & 0x1F, packetType: type, hasPadding: padded,
            packet: UnsafeRawBufferPointer(rebasing: bytes[start..<end]),
            body: UnsafeRawBufferPointer(rebasing: bytes[(start &+ 4)..<bodyEnd]))
    }
}

/// Parse and build whole compound packets.
public enum RTCPCompound {
    /// Checks every header in the compound without decoding bodies.
    /// `requireReportFirst` applies RFC 3550 §6.1's "first packet is SR or RR";
    /// leave it off to accept reduced-size RTCP (RFC 5506).
    public static func validate(_ bytes: UnsafeRawBufferPointer, requireReportFirst: Bool = false) throws(RTCPError) {
        guard !bytes.isEmpty else { throw .empty }
        var it = RTCPCompoundIterator(bytes)
        var first = true
        while let p = try it.next() {
            if first, requireReportFirst,
               p.packetType != RTCPPacketType.senderReport, p.packetType != RTCPPacketType.receiverReport {
                throw .firstPacketNotReport
            }
            first = false
        }
    }

    /// Decodes every packet of the compound.
    public static func parse(_ bytes: UnsafeRawBufferPointer, requireReportFirst: Bool = false) throws(RTCPError) -> [RTCPPacket] {
        try validate(bytes, requireReportFirst: requireReportFirst)
        var it = RTCPCompoundIterator(bytes)
        var out: [RTCPPacket] = []
        while let p = try it.next() {
            out.append(try RTCPPacket(parsing: p))
        }
        return out
    }

    public static func parse(_ bytes: [UInt8], requireReportFirst: Bool = false) throws(RTCPError) -> [RTCPPacket] {
        try withBytes(bytes) { (b) throws(RTCPError) in try parse(b, requireReportFirst: requireReportFirst) }
    }

    public static func marshalSize(_ packets: [RTCPPacket]) -> Int {
        packets.reduce(0) { $0 + $1.marshalSize }
    }

    /// Writes the packets back to back (a compound is just concatenation,
    /// RFC 3550 §6.1). None is padded, so the result is always valid.
    public static func write(_ packets: [RTCPPacket], to writer: inout ByteWriter) throws(RTCPError) {
        guard writer.remaining >= marshalSize(packets) else { throw .bufferTooSmall }
        for p in packets { try p.write(to: &writer) }
    }

    public static func serialize(_ packets: [RTCPPacket]) throws(RTCPError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: marshalSize(packets))
        try withMutableBytes(&out) { (b) throws(RTCPError) in
            var w = ByteWriter(b)
            try write(packets, to: &w)
        }
        return out
    }
}

/// Any RTCP packet this module understands, or the raw bytes of one it does not.
public enum RTCPPacket: Sendable, Equatable {
    case senderReport(RTCPSenderReport)
    case receiverReport(RTCPReceiverReport)
    case sourceDescription(RTCPSourceDescription)
    case goodbye(RTCPGoodbye)
    case application(RTCPApplicationDefined)
    case genericNACK(RTCPGenericNACK)
    case transportFeedback(RTCPTransportFeedback)
    case pictureLossIndication(RTCPPictureLossIndication)
    case fullIntraRequest(RTCPFullIntraRequest)
    case receiverEstimatedMaxBitrate(RTCPReceiverEstimatedMaxBitrate)
    case unknown(RTCPUnknownPacket)

    public init(parsing p: RTCPPacketView) throws(RTCPError) {
        switch (p.packetType, p.count) {
        case (RTCPPacketType.senderReport, _): self = .senderReport(try RTCPSenderReport(parsing: p))
        case (RTCPPacketType.receiverReport, _): self = .receiverReport(try RTCPReceiverReport(parsing: p))
        case (RTCPPacketType.sourceDescription, _): self = .sourceDescription(try RTCPSourceDescription(parsing: p))
        case (RTCPPacketType.goodbye, _): self = .goodbye(try RTCPGoodbye(parsing: p))
        case (RTCPPacketType.application, _): self = .application(try RTCPApplicationDefined(parsing: p))
        case (RTCPPacketType.transportFeedback, RTCPGenericNACK.format): self = .genericNACK(try RTCPGenericNACK(parsing: p))
        case (RTCPPacketType.transportFeedback, RTCPTransportFeedback.format):
            self = .transportFeedback(try RTCPTransportFeedback(parsing: p))
        case (RTCPPacketType.payloadFeedback, RTCPPictureLossIndication.format):
            self = .pictureLossIndication(try RTCPPictureLossIndication(parsing: p))
        case (RTCPPacketType.payloadFeedback, RTCPFullIntraRequest.format):
            self = .fullIntraRequest(try RTCPFullIntraRequest(parsing: p))
        case (RTCPPacketType.payloadFeedback, RTCPReceiverEstimatedMaxBitrate.format)
            where RTCPReceiverEstimatedMaxBitrate.matches(p):
            self = .receiverEstimatedMaxBitrate(try RTCPReceiverEstimatedMaxBitrate(parsing: p))
        default:
            self = .unknown(RTCPUnknownPacket(parsing: p))
        }
    }

    public var marshalSize: Int {
        switch self {
        case .senderReport(let p): return p.marshalSize
        case .receiverReport(let p): return p.marshalSize
        case .sourceDescription(let p): return p.marshalSize
        case .goodbye(let p): return p.marshalSize
        case .application(let p): return p.marshalSize
        case .genericNACK(let p): return p.marshalSize
        case .transportFeedback(let p): return p.marshalSize
        case .pictureLossIndication(let p): return p.marshalSize
        case .fullIntraRequest(let p): return p.marshalSize
        case .receiverEstimatedMaxBitrate(let p): return p.marshalSize
        case .unknown(let p): return p.marshalSize
        }
    }

    public func write(to writer: inout ByteWriter) throws(RTCPError) {
        switch self {
        case .senderReport(let p): try p.write(to: &writer)
        case .receiverReport(let p): try p.write(to: &writer)
        case .sourceDescription(let p): try p.write(to: &writer)
        case .goodbye(let p): try p.write(to: &writer)
        case .application(let p): try p.write(to: &writer)
        case .genericNACK(let p): try p.write(to: &writer)
        case .transportFeedback(let p): try p.write(to: &writer)
        case .pictureLossIndication(let p): try p.write(to: &writer)
        case .fullIntraRequest(let p): try p.write(to: &writer)
        case .receiverEstimatedMaxBitrate(let p): try p.write(to: &writer)
        case .unknown(let p): try p.write(to: &writer)
        }
    }
}

/// A packet type or feedback format this module does not decode, kept whole
/// so it can be forwarded or rewritten unchanged.
public struct RTCPUnknownPacket: Sendable, Equatable {
    public var packetType: UInt8
    public var count: UInt8
    /// The body after the 4-byte header, padding removed; a whole number of words.
    public var body: [UInt8]

    public init(packetType: UInt8, count: UInt8, body: [UInt8]) {
        self.packetType = packetType
        self.count = count
        self.body = body
    }

    public init(parsing p: RTCPPacketView) {
        packetType = p.packetType
        count = p.count
        body = Array(p.body)
    }

    /// Padding stripped on parse leaves the body possibly unaligned; it is
    /// zero-filled back to a word boundary when written.
    public var marshalSize: Int { 4 + (body.count + 3) & ~3 }

    public func write(to writer: inout ByteWriter) throws(RTCPError) {
        guard count < 32 else { throw .invalidValue }
        try writeRTCPHeader(to: &writer, count: count, packetType: packetType, size: marshalSize)
        try writing(RTCPError.bufferTooSmall) { () throws(ByteReaderError) in
            try writer.write(contentsOf: body)
            try writer.pad(to: 4)
        }
    }
}

/// Writes the common header (RFC 3550 §6.4.1): V=2, P=0, the 5-bit count,
/// the type and the length in words minus one. Checks `size` bytes fit.
@usableFromInline
func writeRTCPHeader(to writer: inout ByteWriter, count: UInt8, packetType: UInt8, size: Int) throws(RTCPError) {
    guard count < 32, size % 4 == 0, size >= 4, size / 4 - 1 <= 0xFFFF else { throw .invalidValue }
    guard writer.remaining >= size else { throw .bufferTooSmall }
    try writing(RTCPError.bufferTooSmall) { () throws(ByteReaderError) in
        try writer.write(0x80 | count)
        try writer.write(packetType)
        try writer.write(UInt16(size / 4 - 1))
    }
}

/// Reads big-endian fields from an RTCP body, failing with `RTCPError.truncated`.
struct RTCPBodyReader {
    let bytes: UnsafeRawBufferPointer
    var offset = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    var remaining: Int { bytes.count - offset }

    mutating func u8() throws(RTCPError) -> UInt8 {
        guard remaining >= 1 else { throw .truncated }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func u16() throws(RTCPError) -> UInt16 {
        guard remaining >= 2 else { throw .truncated }
        defer { offset += 2 }
        return UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
    }

    mutating func u24() throws(RTCPError) -> UInt32 {
        guard remaining >= 3 else { throw .truncated }
        defer { offset += 3 }
        return UInt32(bytes[offset]) << 16 | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2])
    }

    mutating func u32() throws(RTCPError) -> UInt32 {
        guard remaining >= 4 else { throw .truncated }
        defer { offset += 4 }
        return UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    mutating func u64() throws(RTCPError) -> UInt64 {
        UInt64(try u32()) << 32 | UInt64(try u32())
    }

    mutating func ssrc() throws(RTCPError) -> SSRC { SSRC(rawValue: try u32()) }

    mutating func bytes(_ n: Int) throws(RTCPError) -> [UInt8] {
        guard n >= 0, remaining >= n else { throw .truncated }
        defer { offset += n }
        return Array(bytes[offset..<(offset + n)])
    }

    mutating func skip(_ n: Int) throws(RTCPError) {
        guard n >= 0, remaining >= n else { throw .truncated }
        offset += n
    }

    mutating func rest() -> [UInt8] {
        defer { offset = bytes.count }
        return Array(bytes[offset...])
    }
}
