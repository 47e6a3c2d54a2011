import RTCBase

/// The fixed value in every RFC 5389/8489 message header (RFC 8489 §5); it
/// tells STUN apart from RFC 3489 messages and other protocols on the port.
public let stunMagicCookie: UInt32 = 0x2112_A442

/// Size of the STUN header in bytes (RFC 8489 §5).
public let stunHeaderSize = 20

/// Why a datagram is not an acceptable STUN message. Small and payload-free so
/// the hot path never builds strings.
public enum STUNError: Error, Sendable, Equatable {
    /// Fewer than 20 bytes.
    case truncatedHeader
    /// The two most significant bits are not zero (RFC 8489 §5).
    case notSTUN
    case badMagicCookie
    /// The header's length is not a multiple of 4 (RFC 8489 §5).
    case lengthNotMultipleOfFour
    /// The header's length does not match the datagram.
    case lengthMismatch
    /// An attribute header or value runs past the end of the message.
    case attributeOverrun
    /// An attribute's value has the wrong size or content for its type.
    case malformedAttribute(type: UInt16)
    /// An address attribute with a family other than 0x01/0x02.
    case badAddressFamily
    /// FINGERPRINT present but not the last attribute (RFC 8489 §14.7).
    case fingerprintNotLast
    case fingerprintMismatch
    case fingerprintMissing
    case integrityMissing
    case integrityMismatch
    /// The output buffer cannot hold what is being written.
    case bufferTooSmall
    /// A value cannot be encoded (e.g. an attribute longer than 65535 bytes).
    case valueTooLarge
}

/// The class bits of the message type (RFC 8489 §5).
public enum STUNClass: UInt8, Sendable, Hashable, CaseIterable {
    case request = 0b00
    case indication = 0b01
    case successResponse = 0b10
    case errorResponse = 0b11
}

/// The 12-bit method (RFC 8489 §18.2, RFC 8656 §17).
public struct STUNMethod: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    /// Values are masked to 12 bits, the width of the method field.
    public init(rawValue: UInt16) { self.rawValue = rawValue & 0x0FFF }

    public static let binding = STUNMethod(rawValue: 0x001)
    public static let allocate = STUNMethod(rawValue: 0x003)
    public static let refresh = STUNMethod(rawValue: 0x004)
    public static let send = STUNMethod(rawValue: 0x006)
    public static let data = STUNMethod(rawValue: 0x007)
    public static let createPermission = STUNMethod(rawValue: 0x008)
    public static let channelBind = STUNMethod(rawValue: 0x009)

    public var description: String {
        switch self {
        case .binding: return "Binding"
        case .allocate: return "Allocate"
        case .refresh: return "Refresh"
        case .send: return "Send"
        case .data: return "Data"
        case .createPermission: return "CreatePermission"
        case .channelBind: return "ChannelBind"
        default: return "Method(0x\(String(rawValue, radix: 16)))"
        }
    }
}

/// Method and class, which the wire format interleaves:
/// `M11..M7 C1 M6..M4 C0 M3..M0` (RFC 8489 §5, figure 3).
public struct STUNMessageType: Hashable, Sendable, CustomStringConvertible {
    public var method: STUNMethod
    public var messageClass: STUNClass

    public init(method: STUNMethod, messageClass: STUNClass) {
        self.method = method
        self.messageClass = messageClass
    }

    /// Decodes the 14 type bits; the two top bits of `rawValue` are ignored.
    public init(rawValue: UInt16) {
        let m = (rawValue & 0x000F) | ((rawValue & 0x00E0) >> 1) | ((rawValue & 0x3E00) >> 2)
        let c = ((rawValue & 0x0010) >> 4) | ((rawValue & 0x0100) >> 7)
        method = STUNMethod(rawValue: m)
        // Two bits always map to one of the four cases.
        messageClass = STUNClass(rawValue: UInt8(c)) ?? .request
    }

    public var rawValue: UInt16 {
        let m = method.rawValue
        let c = UInt16(messageClass.rawValue)
        return (m & 0x000F) | ((m & 0x0070) << 1) | ((m & 0x0F80) << 2) | ((c & 1) << 4) | ((c & 2) << 7)
    }

    public static let bindingRequest = STUNMessageType(method: .binding, messageClass: .request)
    public static let bindingSuccess = STUNMessageType(method: .binding, messageClass: .successResponse)
    public static let bindingError = STUNMessageType(method: .binding, messageClass: .errorResponse)
    public static let bindingIndication = STUNMessageType(method: .binding, messageClass: .indication)

    public var description: String { "\(method) \(messageClass)" }
}

/// The 96-bit transaction id (RFC 8489 §5), held as two integers so it is
/// hashable and copyable without a heap buffer.
public struct STUNTransactionID: Hashable, Sendable, CustomStringConvertible {
    /// First 4 bytes, big-endian.
    public var high: UInt32
    /// Last 8 bytes, big-endian.
    public var low: UInt64

    public init(high: UInt32, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Nil unless exactly 12 bytes.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 12 else { return nil }
        var h: UInt32 = 0
        var l: UInt64 = 0
        for (i, b) in bytes.enumerated() {
            if i < 4 { h = h << 8 | UInt32(b) } else { l = l << 8 | UInt64(b) }
        }
        high = h
        low = l
    }

    /// A fresh id; RFC 8489 §5 asks for cryptographically random ids, so pass
    /// `SystemRandomNumberGenerator` outside tests.
    public static func random(using generator: inout some RandomNumberGenerator) -> STUNTransactionID {
        STUNTransactionID(high: generator.next(), low: generator.next())
    }

    public var bytes: [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(12)
        for s in stride(from: 24, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: high >> UInt32(s))) }
        for s in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: low >> UInt64(s))) }
        return out
    }

    /// Byte `index` (0..<12) of the id, used for XOR address encoding.
    @inline(__always)
    func byte(_ index: Int) -> UInt8 {
        if index < 4 { return UInt8(truncatingIfNeeded: high >> UInt32(24 - 8 * index)) }
        return UInt8(truncatingIfNeeded: low >> UInt64(56 - 8 * (index - 4)))
    }

    public var description: String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }
}

/// Reads the transaction id at bytes 8..<20 of a header without allocating.
@inline(__always)
func readTransactionID(_ bytes: UnsafeRawBufferPointer, at base: Int) -> STUNTransactionID {
    var h: UInt32 = 0
    var l: UInt64 = 0
    for i in 0..<4 { h = h << 8 | UInt32(bytes[base + 8 + i]) }
    for i in 4..<12 { l = l << 8 | UInt64(bytes[base + 8 + i]) }
    return STUNTransactionID(high: h, low: l)
}

extension STUNMessageType {
    /// A quick check that the first bytes of a datagram could be STUN:
    /// top two bits zero and the magic cookie in place (RFC 8489 §5, §6.3).
    public static func looksLikeSTUN(_ packet: UnsafeRawBufferPointer) -> Bool {
        guard packet.count >= stunHeaderSize, packet[0] & 0xC0 == 0 else { return false }
        return packet[4] == 0x21 && packet[5] == 0x12 && packet[6] == 0xA4 && packet[7] == 0x42
    }
}
