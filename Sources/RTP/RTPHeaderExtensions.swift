import RTCBase

/// How the extension block's elements are laid out, from its 16-bit profile.
public enum RTPHeaderExtensionForm: Sendable, Equatable {
    /// RFC 8285 §4.2, profile 0xBEDE: 4-bit id, 4-bit length-minus-one.
    case oneByte
    /// RFC 8285 §4.3, profile 0x100x: 8-bit id, 8-bit length; the low 4 bits
    /// of the profile are "appbits" for the application.
    case twoByte(appBits: UInt8)
    /// Any other profile: an RFC 3550 §5.3.1 extension, kept as opaque words.
    case generic(profile: UInt16)

    @inlinable
    public init(profile: UInt16) {
        if profile == 0xBEDE {
            self = .oneByte
        } else if profile & 0xFFF0 == 0x1000 {
            self = .twoByte(appBits: UInt8(profile & 0x0F))
        } else {
            self = .generic(profile: profile)
        }
    }

    @inlinable
    public var profile: UInt16 {
        switch self {
        case .oneByte: return 0xBEDE
        case .twoByte(let appBits): return 0x1000 | UInt16(appBits & 0x0F)
        case .generic(let profile): return profile
        }
    }
}

/// One RFC 8285 element: its id and a view of its value inside the packet.
@frozen
public struct RTPHeaderExtensionElement {
    public let id: UInt8
    public let value: UnsafeRawBufferPointer
    /// Offset of `value` from the start of the packet (for in-place rewrites).
    public let valueOffset: Int

    @inlinable
    init(id: UInt8, value: UnsafeRawBufferPointer, valueOffset: Int) {
        self.id = id
        self.value = value
        self.valueOffset = valueOffset
    }
}

/// The extension block of one packet. Iterating yields RFC 8285 elements
/// without allocating; a generic (RFC 3550) block yields nothing, use `data`.
@frozen
public struct RTPHeaderExtensions: Sequence {
    public let profile: UInt16
    @usableFromInline let packet: UnsafeRawBufferPointer
    @usableFromInline let dataOffset: Int
    @usableFromInline let dataEnd: Int

    @inlinable
    init(profile: UInt16, packet: UnsafeRawBufferPointer, dataOffset: Int, dataEnd: Int) {
        self.profile = profile
        self.packet = packet
        self.dataOffset = dataOffset
        self.dataEnd = dataEnd
    }

    @inlinable public var form: RTPHeaderExtensionForm { RTPHeaderExtensionForm(profile: profile) }

    /// The extension data after the 4-byte extension header.
    @inlinable public var data: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: packet[dataOffset..<dataEnd])
    }

    @inlinable
    public func makeIterator() -> Iterator {
        let kind: UInt8
        switch form {
        case .oneByte: kind = 1
        case .twoByte: kind = 2
        case .generic: kind = 0
        }
        return Iterator(packet: packet, position: dataOffset, end: kind == 0 ? dataOffset : dataEnd, kind: kind)
    }

    /// The first element with `id`, or nil.
    @inlinable
    public func element(id: UInt8) -> RTPHeaderExtensionElement? {
        var it = makeIterator()
        while let e = it.next() {
            if e.id == id { return e }
        }
        return nil
    }

    /// Throws when an element runs past the block (iteration silently stops
    /// there instead).
    @inlinable
    public func validate() throws(RTPError) {
        var it = makeIterator()
        while it.next() != nil {}
        if it.malformed { throw .malformedExtension }
    }

    @frozen
    public struct Iterator: IteratorProtocol {
        @usableFromInline let packet: UnsafeRawBufferPointer
        @usableFromInline var position: Int
        @usableFromInline let end: Int
        @usableFromInline let kind: UInt8
        /// Set when iteration stopped at an element that overran the block.
        @usableFromInline var _malformed = false
        public var malformed: Bool { _malformed }

        @inlinable
        init(packet: UnsafeRawBufferPointer, position: Int, end: Int, kind: UInt8) {
            self.packet = packet
            self.position = position
            self.end = end
            self.kind = kind
        }

        @inlinable
        public mutating func next() -> RTPHeaderExtensionElement? {
            while position < end {
                let first = packet[position]
                // A zero byte is padding between or after elements in both
                // forms (RFC 8285 §4.2, §4.3).
                if first == 0 {
                    position &+= 1
                    continue
                }
                let id: UInt8
                let length: Int
                let valueStart: Int
                if kind == 1 {
                    id = first >> 4
                    // RFC 8285 §4.2: id 15 is reserved; stop processing the block.
                    if id == 15 {
                        position = end
                        return nil
                    }
                    length = Int(first & 0x0F) &+ 1
                    valueStart = position &+ 1
                } else {
                    guard position &+ 1 < end else {
                        _malformed = true
                        position = end
                        return nil
                    }
                    id = first
                    length = Int(packet[position &+ 1])
                    valueStart = position &+ 2
                }
                let valueEnd = valueStart &+ length
                guard valueEnd <= end else {
                    _malformed = true
                    position = end
                    return nil
                }
                position = valueEnd
                return RTPHeaderExtensionElement(
                    id: id,
                    value: UnsafeRawBufferPointer(rebasing: packet[valueStart..<valueEnd]),
                    valueOffset: valueStart)
            }
            return nil
        }
    }
}

/// The abs-send-time header extension value
/// (http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time): seconds in
/// 6.18 fixed point, 24 bits, wrapping every 64 s.
public struct AbsSendTime: Sendable, Hashable {
    /// The 24-bit value.
    public var rawValue: UInt32

    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue & 0xFF_FFFF }

    /// From a time in nanoseconds on any clock (only its low 64 s matter).
    @inlinable
    public init(nanoseconds: Int64) {
        // ns * 2^18 / 1e9, done in 128-bit-safe steps: split whole seconds off
        // first so the multiply cannot overflow.
        let ns = UInt64(bitPattern: nanoseconds)
        let seconds = ns / 1_000_000_000
        let fraction = ns % 1_000_000_000
        let value = (seconds << 18) &+ ((fraction << 18) &+ 500_000_000) / 1_000_000_000
        rawValue = UInt32(truncatingIfNeeded: value) & 0xFF_FFFF
    }

    @inlinable
    public init(_ instant: Instant) { self.init(nanoseconds: instant.nanoseconds) }

    /// Nanoseconds within the 64 s window this value can express.
    @inlinable public var nanoseconds: Int64 { (Int64(rawValue) * 1_000_000_000) >> 18 }

    /// Reads a 3-byte value; nil if `bytes` is not exactly 3 bytes.
    @inlinable
    public static func read(_ bytes: UnsafeRawBufferPointer) -> AbsSendTime? {
        guard bytes.count == 3 else { return nil }
        return AbsSendTime(rawValue: UInt32(bytes[0]) << 16 | UInt32(bytes[1]) << 8 | UInt32(bytes[2]))
    }

    /// Writes the 3-byte value into the first 3 bytes of `bytes` (which must hold them).
    @inlinable
    public func write(to bytes: UnsafeMutableRawBufferPointer) {
        guard bytes.count >= 3 else { return }
        bytes[0] = UInt8(truncatingIfNeeded: rawValue >> 16)
        bytes[1] = UInt8(truncatingIfNeeded: rawValue >> 8)
        bytes[2] = UInt8(truncatingIfNeeded: rawValue)
    }

    /// The 3 value bytes, for building a header.
    public var bytes: [UInt8] {
        [UInt8(truncatingIfNeeded: rawValue >> 16), UInt8(truncatingIfNeeded: rawValue >> 8), UInt8(truncatingIfNeeded: rawValue)]
    }
}

/// The transport-wide sequence number extension
/// (draft-holmer-rmcat-transport-wide-cc-extensions-01 §2): 16 bits, big-endian.
public enum TransportSequenceNumber {
    @inlinable
    public static func read(_ bytes: UnsafeRawBufferPointer) -> UInt16? {
        guard bytes.count == 2 else { return nil }
        return UInt16(bytes[0]) << 8 | UInt16(bytes[1])
    }

    @inlinable
    public static func write(_ value: UInt16, to bytes: UnsafeMutableRawBufferPointer) {
        guard bytes.count >= 2 else { return }
        bytes[0] = UInt8(truncatingIfNeeded: value >> 8)
        bytes[1] = UInt8(truncatingIfNeeded: value)
    }

    public static func bytes(_ value: UInt16) -> [UInt8] {
        [UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value)]
    }
}
