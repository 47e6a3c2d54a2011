/// RTP synchronization source (RFC 3550 §3).
public struct SSRC: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public init(_ value: UInt32) { rawValue = value }
    public var description: String { String(rawValue) }
}

/// RTP payload type, 7 bits (RFC 3550 §5.1).
public struct PayloadType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    /// Nil for values that do not fit in 7 bits.
    public init?(rawValue: UInt8) {
        guard rawValue < 128 else { return nil }
        self.rawValue = rawValue
    }
    public var description: String { String(rawValue) }
}

/// A media section id from SDP (`a=mid`, RFC 8843).
public struct Mid: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }
}

/// A simulcast restriction id (`a=rid`, RFC 8851).
public struct RID: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }
}

/// A 16-bit RTP sequence number. Comparisons follow RFC 1982 serial number
/// arithmetic, so 0 comes after 65535.
public struct SequenceNumber: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public init(_ value: UInt16) { rawValue = value }
    public var description: String { String(rawValue) }

    /// True when `self` is newer than `other` (less than half the space ahead).
    public func isNewer(than other: SequenceNumber) -> Bool {
        let delta = rawValue &- other.rawValue
        return delta != 0 && delta < 0x8000
    }

    public static func &+ (lhs: SequenceNumber, rhs: UInt16) -> SequenceNumber {
        SequenceNumber(lhs.rawValue &+ rhs)
    }
}

/// Extends 16-bit sequence numbers to a 64-bit index that never wraps
/// (the SRTP packet index of RFC 3711 §3.3.1 is built the same way). Reordered
/// packets from before the highest seen map below it; a jump of more than
/// half the space is taken as a wrap in whichever direction is closer.
public struct SequenceUnwrapper: Sendable {
    private var highest: Int64?

    public init() {}

    public mutating func unwrap(_ sequence: SequenceNumber) -> Int64 {
        guard let highest else {
            self.highest = Int64(sequence.rawValue)
            return Int64(sequence.rawValue)
        }
        let last = UInt16(truncatingIfNeeded: highest)
        let delta = Int64(Int16(bitPattern: sequence.rawValue &- last))
        let index = highest + delta
        if index > highest { self.highest = index }
        return index
    }
}
