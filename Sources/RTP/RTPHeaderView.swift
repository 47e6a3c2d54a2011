import RTCBase

/// Where the parts of one RTP packet sit, found once by `init(parsing:)` and then
/// reused by readers and in-place rewriters (RFC 3550 §5.1, §5.3.1).
///
/// Parsing touches only the first byte, the CSRC count and the extension
/// length, so it costs a handful of loads and no allocation.
@frozen
public struct RTPHeaderLayout: Sendable, Equatable {
    /// Offset of the 4-byte extension header (profile + length); 0 when X=0.
    public let extensionOffset: Int
    /// Offset of the first payload byte (the header length).
    public let payloadOffset: Int
    /// Offset one past the last payload byte (the packet length minus padding).
    public let payloadEnd: Int

    @inlinable
    public init(parsing b: UnsafeRawBufferPointer) throws(RTPError) {
        let count = b.count
        guard count >= 12 else { throw .truncated }
        let first = b[0]
        guard first >> 6 == 2 else { throw .badVersion(first >> 6) }
        var offset = 12 &+ Int(first & 0x0F) &* 4
        guard offset <= count else { throw .truncated }
        var ext = 0
        if first & 0x10 != 0 {
            // RFC 3550 §5.3.1: a 16-bit profile, then the length in 32-bit words
            // not counting this 4-byte header.
            guard offset &+ 4 <= count else { throw .truncated }
            ext = offset
            let words = Int(b[offset &+ 2]) << 8 | Int(b[offset &+ 3])
            offset = offset &+ 4 &+ words &* 4
            guard offset <= count else { throw .truncated }
        }
        var end = count
        if first & 0x20 != 0 {
            // The last octet counts the padding, itself included (RFC 3550 §5.1);
            // zero is impossible and padding may not eat into the header.
            let pad = Int(b[count &- 1])
            guard pad > 0, pad <= count &- offset else { throw .badPadding }
            end = count &- pad
        }
        extensionOffset = ext
        payloadOffset = offset
        payloadEnd = end
    }
}

/// Read access shared by the read-only and the mutable header views. Methods
/// here are generic over the view, so they specialize and inline: no
/// existential, no allocation.
public protocol RTPHeaderFields {
    /// The whole packet the view was parsed from.
    var packet: UnsafeRawBufferPointer { get }
    var layout: RTPHeaderLayout { get }
}

extension RTPHeaderFields {
    @inlinable public var version: UInt8 { packet[0] >> 6 }
    @inlinable public var hasPadding: Bool { packet[0] & 0x20 != 0 }
    @inlinable public var hasExtension: Bool { packet[0] & 0x10 != 0 }
    @inlinable public var csrcCount: Int { Int(packet[0] & 0x0F) }
    @inlinable public var marker: Bool { packet[1] & 0x80 != 0 }
    /// The 7-bit payload type as a plain byte (no wrapper, for the hot path).
    @inlinable public var payloadTypeValue: UInt8 { packet[1] & 0x7F }
    @inlinable public var payloadType: PayloadType { PayloadType(masked: packet[1]) }
    @inlinable public var sequenceNumber: SequenceNumber {
        SequenceNumber(rawValue: UInt16(bigEndian: packet.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
    }
    @inlinable public var timestamp: UInt32 {
        UInt32(bigEndian: packet.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
    }
    @inlinable public var ssrc: SSRC {
        SSRC(rawValue: UInt32(bigEndian: packet.loadUnaligned(fromByteOffset: 8, as: UInt32.self)))
    }
    /// The CSRC at `index`, or nil when `index` is not below `csrcCount`.
    @inlinable public func csrc(at index: Int) -> SSRC? {
        guard index >= 0, index < csrcCount else { return nil }
        return SSRC(rawValue: UInt32(bigEndian: packet.loadUnaligned(fromByteOffset: 12 &+ index &* 4, as: UInt32.self)))
    }
    @inlinable public var headerLength: Int { layout.payloadOffset }
    @inlinable public var paddingLength: Int { packet.count &- layout.payloadEnd }
    /// The payload, padding excluded (a view into the packet, no copy).
    @inlinable public var payload: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: packet[layout.payloadOffset..<layout.payloadEnd])
    }
    /// The extension block, or nil when X=0.
    @inlinable public var extensions: RTPHeaderExtensions? {
        let offset = layout.extensionOffset
        guard offset != 0 else { return nil }
        let profile = UInt16(bigEndian: packet.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
        return RTPHeaderExtensions(profile: profile, packet: packet, dataOffset: offset &+ 4, dataEnd: layout.payloadOffset)
    }
    /// The RFC 8285 element with `id`, or nil.
    @inlinable public func extensionElement(id: UInt8) -> RTPHeaderExtensionElement? {
        extensions?.element(id: id)
    }
    /// The transport-wide sequence number carried in element `id`
    /// (draft-holmer-rmcat-transport-wide-cc-extensions-01 §2).
    @inlinable public func transportSequenceNumber(id: UInt8) -> UInt16? {
        guard let e = extensionElement(id: id) else { return nil }
        return TransportSequenceNumber.read(e.value)
    }
    /// The abs-send-time carried in element `id` (24-bit 6.18 fixed-point seconds).
    @inlinable public func absSendTime(id: UInt8) -> AbsSendTime? {
        guard let e = extensionElement(id: id) else { return nil }
        return AbsSendTime.read(e.value)
    }
}

extension PayloadType {
    /// From the second RTP header byte: the marker bit is masked off, so the
    /// value always fits in 7 bits.
    @usableFromInline
    init(masked byte: UInt8) {
        var pt = PayloadType(rawValue: 0)!
        pt.rawValue = byte & 0x7F
        self = pt
    }
}

/// A read-only, non-allocating view of an RTP packet in the caller's buffer.
/// The buffer must outlive the view.
@frozen
public struct RTPHeaderView: RTPHeaderFields {
    public let packet: UnsafeRawBufferPointer
    public let layout: RTPHeaderLayout

    @inlinable
    public init(_ bytes: UnsafeRawBufferPointer) throws(RTPError) {
        layout = try RTPHeaderLayout(parsing: bytes)
        packet = bytes
    }
}

/// A view of an RTP packet that rewrites header fields in place: the SFU's
/// forwarding path (new SSRC, sequence number, timestamp, payload type,
/// marker, transport-cc sequence). Writes go through the pointer, so the
/// methods are non-mutating and the view is cheap to pass around.
@frozen
public struct MutableRTPHeaderView: RTPHeaderFields {
    public let mutablePacket: UnsafeMutableRawBufferPointer
    public let layout: RTPHeaderLayout

    @inlinable
    public init(_ bytes: UnsafeMutableRawBufferPointer) throws(RTPError) {
        layout = try RTPHeaderLayout(parsing: UnsafeRawBufferPointer(bytes))
        mutablePacket = bytes
    }

    @inlinable public var packet: UnsafeRawBufferPointer { UnsafeRawBufferPointer(mutablePacket) }

    @inlinable public func setMarker(_ marker: Bool) {
        mutablePacket[1] = (mutablePacket[1] & 0x7F) | (marker ? 0x80 : 0)
    }
    @inlinable public func setPayloadType(_ payloadType: PayloadType) {
        setPayloadTypeValue(payloadType.rawValue)
    }
    /// Sets the 7-bit payload type; the top bit of `value` is ignored.
    @inlinable public func setPayloadTypeValue(_ value: UInt8) {
        mutablePacket[1] = (mutablePacket[1] & 0x80) | (value & 0x7F)
    }
    @inlinable public func setSequenceNumber(_ sequenceNumber: SequenceNumber) {
        mutablePacket.storeBytes(of: sequenceNumber.rawValue.bigEndian, toByteOffset: 2, as: UInt16.self)
    }
    @inlinable public func setTimestamp(_ timestamp: UInt32) {
        mutablePacket.storeBytes(of: timestamp.bigEndian, toByteOffset: 4, as: UInt32.self)
    }
    @inlinable public func setSSRC(_ ssrc: SSRC) {
        mutablePacket.storeBytes(of: ssrc.rawValue.bigEndian, toByteOffset: 8, as: UInt32.self)
    }

    /// The value bytes of element `id`, writable in place; nil if absent.
    @inlinable public func mutableExtensionValue(id: UInt8) -> UnsafeMutableRawBufferPointer? {
        guard let e = extensionElement(id: id) else { return nil }
        return UnsafeMutableRawBufferPointer(rebasing: mutablePacket[e.valueOffset..<(e.valueOffset &+ e.value.count)])
    }

    /// Overwrites the value of element `id` with `value`, which must have the
    /// element's current length: the packet never changes size in place.
    @inlinable public func setExtensionValue(id: UInt8, to value: UnsafeRawBufferPointer) throws(RTPError) {
        guard let target = mutableExtensionValue(id: id) else { throw .extensionNotFound }
        guard target.count == value.count else { throw .extensionLengthMismatch }
        if let dst = target.baseAddress, let src = value.baseAddress {
            dst.copyMemory(from: src, byteCount: value.count)
        }
    }

    /// Rewrites the transport-wide sequence number in element `id` (2 bytes).
    @inlinable public func setTransportSequenceNumber(id: UInt8, _ value: UInt16) throws(RTPError) {
        guard let target = mutableExtensionValue(id: id) else { throw .extensionNotFound }
        guard target.count == 2 else { throw .extensionLengthMismatch }
        TransportSequenceNumber.write(value, to: target)
    }

    /// Rewrites the abs-send-time in element `id` (3 bytes).
    @inlinable public func setAbsSendTime(id: UInt8, _ value: AbsSendTime) throws(RTPError) {
        guard let target = mutableExtensionValue(id: id) else { throw .extensionNotFound }
        guard target.count == 3 else { throw .extensionLengthMismatch }
        value.write(to: target)
    }
}
