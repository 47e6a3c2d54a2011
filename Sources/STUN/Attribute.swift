import RTCBase

/// A 16-bit attribute type (RFC 8489 §18.3 registry, RFC 8445 §16.1,
/// RFC 8656 §18). Values below 0x8000 are comprehension-required.
public struct STUNAttributeType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public init(_ rawValue: UInt16) { self.rawValue = rawValue }

    /// RFC 8489 §15: an agent must understand attributes in 0x0000–0x7FFF.
    public var isComprehensionRequired: Bool { rawValue < 0x8000 }

    public static let mappedAddress = Self(0x0001)
    public static let username = Self(0x0006)
    public static let messageIntegrity = Self(0x0008)
    public static let errorCode = Self(0x0009)
    public static let unknownAttributes = Self(0x000A)
    public static let channelNumber = Self(0x000C)
    public static let lifetime = Self(0x000D)
    public static let xorPeerAddress = Self(0x0012)
    public static let data = Self(0x0013)
    public static let realm = Self(0x0014)
    public static let nonce = Self(0x0015)
    public static let xorRelayedAddress = Self(0x0016)
    public static let requestedAddressFamily = Self(0x0017)
    public static let evenPort = Self(0x0018)
    public static let requestedTransport = Self(0x0019)
    public static let dontFragment = Self(0x001A)
    public static let messageIntegritySHA256 = Self(0x001C)
    public static let passwordAlgorithm = Self(0x001D)
    public static let userhash = Self(0x001E)
    public static let xorMappedAddress = Self(0x0020)
    public static let reservationToken = Self(0x0022)
    public static let priority = Self(0x0024)
    public static let useCandidate = Self(0x0025)
    public static let additionalAddressFamily = Self(0x8000)
    public static let addressErrorCode = Self(0x8001)
    public static let passwordAlgorithms = Self(0x8002)
    public static let icmp = Self(0x8004)
    public static let software = Self(0x8022)
    public static let alternateServer = Self(0x8023)
    public static let fingerprint = Self(0x8028)
    public static let iceControlled = Self(0x8029)
    public static let iceControlling = Self(0x802A)

    public var description: String { "0x" + String(rawValue, radix: 16) }
}

/// Address family byte of address attributes and the address-family
/// attributes of TURN (RFC 8489 §14.1, RFC 8656 §18.8).
public enum STUNAddressFamily: UInt8, Sendable, Hashable {
    case ipv4 = 0x01
    case ipv6 = 0x02
}

/// ERROR-CODE's value (RFC 8489 §14.8): a code 300–699 and a reason phrase.
public struct STUNErrorCode: Hashable, Sendable, CustomStringConvertible {
    public var code: UInt16
    public var reason: String

    public init(code: UInt16, reason: String = "") {
        self.code = code
        self.reason = reason
    }

    public static let tryAlternate = STUNErrorCode(code: 300, reason: "Try Alternate")
    public static let badRequest = STUNErrorCode(code: 400, reason: "Bad Request")
    public static let unauthorized = STUNErrorCode(code: 401, reason: "Unauthorized")
    public static let forbidden = STUNErrorCode(code: 403, reason: "Forbidden")
    public static let unknownAttribute = STUNErrorCode(code: 420, reason: "Unknown Attribute")
    public static let allocationMismatch = STUNErrorCode(code: 437, reason: "Allocation Mismatch")
    public static let staleNonce = STUNErrorCode(code: 438, reason: "Stale Nonce")
    public static let addressFamilyNotSupported = STUNErrorCode(code: 440, reason: "Address Family not Supported")
    public static let wrongCredentials = STUNErrorCode(code: 441, reason: "Wrong Credentials")
    public static let unsupportedTransportProtocol = STUNErrorCode(code: 442, reason: "Unsupported Transport Protocol")
    public static let peerAddressFamilyMismatch = STUNErrorCode(code: 443, reason: "Peer Address Family Mismatch")
    public static let allocationQuotaReached = STUNErrorCode(code: 486, reason: "Allocation Quota Reached")
    public static let roleConflict = STUNErrorCode(code: 487, reason: "Role Conflict")
    public static let serverError = STUNErrorCode(code: 500, reason: "Server Error")
    public static let insufficientCapacity = STUNErrorCode(code: 508, reason: "Insufficient Capacity")

    public var description: String { "\(code) \(reason)" }
}

/// An entry of PASSWORD-ALGORITHMS / the PASSWORD-ALGORITHM value
/// (RFC 8489 §14.11, §14.12).
public struct STUNPasswordAlgorithm: Hashable, Sendable {
    public var algorithm: UInt16
    public var parameters: [UInt8]
    public init(algorithm: UInt16, parameters: [UInt8] = []) {
        self.algorithm = algorithm
        self.parameters = parameters
    }
    public init(_ kind: STUNPasswordAlgorithmKind) { self.init(algorithm: kind.rawValue) }
    public var kind: STUNPasswordAlgorithmKind? { STUNPasswordAlgorithmKind(rawValue: algorithm) }
}

/// A decoded attribute. Types this module does not know come back as
/// `.unknown` so they survive a parse/serialize round trip.
public enum STUNAttribute: Hashable, Sendable {
    case mappedAddress(TransportAddress)
    case xorMappedAddress(TransportAddress)
    case xorPeerAddress(TransportAddress)
    case xorRelayedAddress(TransportAddress)
    case username(String)
    /// 32 bytes (RFC 8489 §14.4).
    case userhash([UInt8])
    /// The 20-byte HMAC-SHA1 as found on the wire.
    case messageIntegrity([UInt8])
    /// 16 to 32 bytes (RFC 8489 §14.6).
    case messageIntegritySHA256([UInt8])
    /// The CRC value as found on the wire (already XORed).
    case fingerprint(UInt32)
    case errorCode(STUNErrorCode)
    case realm(String)
    case nonce(String)
    case passwordAlgorithms([STUNPasswordAlgorithm])
    case passwordAlgorithm(STUNPasswordAlgorithm)
    case unknownAttributes([UInt16])
    case software(String)
    case alternateServer(TransportAddress)
    /// ICE (RFC 8445 §16.1).
    case priority(UInt32)
    case useCandidate
    case iceControlled(tieBreaker: UInt64)
    case iceControlling(tieBreaker: UInt64)
    /// TURN (RFC 8656 §18).
    case channelNumber(UInt16)
    case lifetime(seconds: UInt32)
    case data([UInt8])
    case evenPort(reserveNext: Bool)
    /// An IP protocol number; 17 is UDP.
    case requestedTransport(protocolNumber: UInt8)
    case dontFragment
    case reservationToken(UInt64)
    case requestedAddressFamily(STUNAddressFamily)
    case additionalAddressFamily(STUNAddressFamily)
    case addressErrorCode(family: STUNAddressFamily, error: STUNErrorCode)
    case icmp(type: UInt8, code: UInt8, errorData: UInt32)
    case unknown(type: UInt16, value: [UInt8])

    public var type: STUNAttributeType {
        switch self {
        case .mappedAddress: return .mappedAddress
        case .xorMappedAddress: return .xorMappedAddress
        case .xorPeerAddress: return .xorPeerAddress
        case .xorRelayedAddress: return .xorRelayedAddress
        case .username: return .username
        case .userhash: return .userhash
        case .messageIntegrity: return .messageIntegrity
        case .messageIntegritySHA256: return .messageIntegritySHA256
        case .fingerprint: return .fingerprint
        case .errorCode: return .errorCode
        case .realm: return .realm
        case .nonce: return .nonce
        case .passwordAlgorithms: return .passwordAlgorithms
        case .passwordAlgorithm: return .passwordAlgorithm
        case .unknownAttributes: return .unknownAttributes
        case .software: return .software
        case .alternateServer: return .alternateServer
        case .priority: return .priority
        case .useCandidate: return .useCandidate
        case .iceControlled: return .iceControlled
        case .iceControlling: return .iceControlling
        case .channelNumber: return .channelNumber
        case .lifetime: return .lifetime
        case .data: return .data
        case .evenPort: return .evenPort
        case .requestedTransport: return .requestedTransport
        case .dontFragment: return .dontFragment
        case .reservationToken: return .reservationToken
        case .requestedAddressFamily: return .requestedAddressFamily
        case .additionalAddressFamily: return .additionalAddressFamily
        case .addressErrorCode: return .addressErrorCode
        case .icmp: return .icmp
        case .unknown(let t, _): return STUNAttributeType(t)
        }
    }
}

// MARK: - Decoding

/// One attribute as it sits in a message: type and a view of its value
/// (without padding). Decoding is lazy, so skipping attributes costs nothing.
public struct STUNRawAttribute {
    public let type: STUNAttributeType
    public let value: UnsafeRawBufferPointer
    /// Offset of the attribute header from the start of the message.
    public let offset: Int

    @inline(__always)
    func malformed() -> STUNError { .malformedAttribute(type: type.rawValue) }

    /// A 32-bit value (PRIORITY, LIFETIME, FINGERPRINT).
    public func uint32() throws(STUNError) -> UInt32 {
        guard value.count == 4 else { throw malformed() }
        return UInt32(value[0]) << 24 | UInt32(value[1]) << 16 | UInt32(value[2]) << 8 | UInt32(value[3])
    }

    /// A 64-bit value (ICE-CONTROLLED/-CONTROLLING, RESERVATION-TOKEN).
    public func uint64() throws(STUNError) -> UInt64 {
        guard value.count == 8 else { throw malformed() }
        var v: UInt64 = 0
        for i in 0..<8 { v = v << 8 | UInt64(value[i]) }
        return v
    }

    /// MAPPED-ADDRESS / ALTERNATE-SERVER layout (RFC 8489 §14.1).
    public func address() throws(STUNError) -> TransportAddress {
        try decodeAddress(xorWith: nil)
    }

    /// XOR-*-ADDRESS layout (RFC 8489 §14.2): the port is XORed with the top
    /// 16 bits of the cookie, an IPv4 address with the cookie, an IPv6
    /// address with cookie + transaction id.
    public func xorAddress(transactionID: STUNTransactionID) throws(STUNError) -> TransportAddress {
        try decodeAddress(xorWith: transactionID)
    }

    private func decodeAddress(xorWith tid: STUNTransactionID?) throws(STUNError) -> TransportAddress {
        guard value.count >= 4 else { throw malformed() }
        var port = UInt16(value[2]) << 8 | UInt16(value[3])
        if tid != nil { port ^= UInt16(stunMagicCookie >> 16) }
        switch value[1] {
        case STUNAddressFamily.ipv4.rawValue:
            guard value.count == 8 else { throw malformed() }
            var a = UInt32(value[4]) << 24 | UInt32(value[5]) << 16 | UInt32(value[6]) << 8 | UInt32(value[7])
            if tid != nil { a ^= stunMagicCookie }
            return TransportAddress(ip: .v4(a), port: port)
        case STUNAddressFamily.ipv6.rawValue:
            guard value.count == 20 else { throw malformed() }
            var high: UInt64 = 0, low: UInt64 = 0
            for i in 0..<8 { high = high << 8 | UInt64(value[4 + i]) }
            for i in 8..<16 { low = low << 8 | UInt64(value[4 + i]) }
            if let tid {
                high ^= UInt64(stunMagicCookie) << 32 | UInt64(tid.high)
                low ^= tid.low
            }
            return TransportAddress(ip: .v6(high: high, low: low), port: port)
        default:
            throw .badAddressFamily
        }
    }

    /// UTF-8 text values (USERNAME, REALM, NONCE, SOFTWARE, reasons).
    func text(_ bytes: UnsafeRawBufferPointer, maxBytes: Int) throws(STUNError) -> String {
        guard bytes.count <= maxBytes, let s = String(validating: bytes, as: UTF8.self) else { throw malformed() }
        return s
    }

    /// Compares the value with ASCII/UTF-8 bytes without allocating.
    public func valueEquals(_ other: UnsafeRawBufferPointer) -> Bool {
        guard value.count == other.count else { return false }
        for i in 0..<value.count where value[i] != other[i] { return false }
        return true
    }

    private func errorCode(_ bytes: UnsafeRawBufferPointer) throws(STUNError) -> STUNErrorCode {
        guard bytes.count >= 4 else { throw malformed() }
        let cls = UInt16(bytes[2] & 0x07), number = UInt16(bytes[3])
        // RFC 8489 §14.8: class 3–6, number 0–99.
        guard (3...6).contains(cls), number < 100 else { throw malformed() }
        let reason = try text(UnsafeRawBufferPointer(rebasing: bytes[4...]), maxBytes: 763)
        return STUNErrorCode(code: cls * 100 + number, reason: reason)
    }

    private func family(_ b: UInt8) throws(STUNError) -> STUNAddressFamily {
        guard let f = STUNAddressFamily(rawValue: b) else { throw .badAddressFamily }
        return f
    }

    /// Decodes into the typed enum (allocates for text and byte values).
    public func decode(transactionID: STUNTransactionID) throws(STUNError) -> STUNAttribute {
        switch type {
        case .mappedAddress: return .mappedAddress(try address())
        case .alternateServer: return .alternateServer(try address())
        case .xorMappedAddress: return .xorMappedAddress(try xorAddress(transactionID: transactionID))
        case .xorPeerAddress: return .xorPeerAddress(try xorAddress(transactionID: transactionID))
        case .xorRelayedAddress: return .xorRelayedAddress(try xorAddress(transactionID: transactionID))
        // Length limits from RFC 8489 §14.3, §14.9, §14.10, §14.14.
        case .username: return .username(try text(value, maxBytes: 513))
        case .realm: return .realm(try text(value, maxBytes: 763))
        case .nonce: return .nonce(try text(value, maxBytes: 763))
        case .software: return .software(try text(value, maxBytes: 763))
        case .userhash:
            guard value.count == 32 else { throw malformed() }
            return .userhash(Array(value))
        case .messageIntegrity:
            guard value.count == 20 else { throw malformed() }
            return .messageIntegrity(Array(value))
        case .messageIntegritySHA256:
            guard value.count >= 16, value.count <= 32, value.count % 4 == 0 else { throw malformed() }
            return .messageIntegritySHA256(Array(value))
        case .fingerprint: return .fingerprint(try uint32())
        case .errorCode: return .errorCode(try errorCode(value))
        case .passwordAlgorithm:
            var list = try passwordAlgorithmList()
            guard list.count == 1 else { throw malformed() }
            return .passwordAlgorithm(list.removeLast())
        case .passwordAlgorithms: return .passwordAlgorithms(try passwordAlgorithmList())
        case .unknownAttributes:
            guard value.count % 2 == 0 else { throw malformed() }
            var types = [UInt16]()
            types.reserveCapacity(value.count / 2)
            for i in stride(from: 0, to: value.count, by: 2) { types.append(UInt16(value[i]) << 8 | UInt16(value[i + 1])) }
            return .unknownAttributes(types)
        case .priority: return .priority(try uint32())
        case .useCandidate:
            guard value.isEmpty else { throw malformed() }
            return .useCandidate
        case .iceControlled: return .iceControlled(tieBreaker: try uint64())
        case .iceControlling: return .iceControlling(tieBreaker: try uint64())
        case .channelNumber:
            guard value.count == 4 else { throw malformed() }
            return .channelNumber(UInt16(value[0]) << 8 | UInt16(value[1]))
        case .lifetime: return .lifetime(seconds: try uint32())
        case .data: return .data(Array(value))
        case .evenPort:
            guard value.count == 1 else { throw malformed() }
            return .evenPort(reserveNext: value[0] & 0x80 != 0)
        case .requestedTransport:
            guard value.count == 4 else { throw malformed() }
            return .requestedTransport(protocolNumber: value[0])
        case .dontFragment:
            guard value.isEmpty else { throw malformed() }
            return .dontFragment
        case .reservationToken: return .reservationToken(try uint64())
        case .requestedAddressFamily:
            guard value.count == 4 else { throw malformed() }
            return .requestedAddressFamily(try family(value[0]))
        case .additionalAddressFamily:
            guard value.count == 4 else { throw malformed() }
            return .additionalAddressFamily(try family(value[0]))
        case .addressErrorCode:
            guard value.count >= 4 else { throw malformed() }
            return .addressErrorCode(family: try family(value[0]), error: try errorCode(value))
        case .icmp:
            guard value.count == 8 else { throw malformed() }
            let data = UInt32(value[4]) << 24 | UInt32(value[5]) << 16 | UInt32(value[6]) << 8 | UInt32(value[7])
            return .icmp(type: value[2], code: value[3], errorData: data)
        default:
            return .unknown(type: type.rawValue, value: Array(value))
        }
    }

    private func passwordAlgorithmList() throws(STUNError) -> [STUNPasswordAlgorithm] {
        var reader = ByteReader(value)
        var out = [STUNPasswordAlgorithm]()
        do {
            while reader.remaining > 0 {
                let alg = try reader.readUInt16()
                let len = Int(try reader.readUInt16())
                let params = Array(try reader.readBytes(len))
                // Parameters are padded to 4 bytes inside the value (§14.11).
                try reader.skip((4 - len % 4) % 4)
                out.append(STUNPasswordAlgorithm(algorithm: alg, parameters: params))
            }
        } catch {
            throw malformed()
        }
        return out
    }
}

// MARK: - Encoding

extension STUNAttribute {
    /// Writes type, length, value and padding. `transactionID` is needed for
    /// the XOR address types.
    public func write(to w: inout ByteWriter, transactionID: STUNTransactionID, padding: UInt8 = 0) throws(STUNError) {
        let start = w.offset
        do {
            try w.write(type.rawValue)
            try w.write(UInt16(0))  // patched below
            try writeValue(to: &w, transactionID: transactionID)
        } catch {
            throw .bufferTooSmall
        }
        let length = w.offset - start - 4
        guard length <= 0xFFFF else { throw .valueTooLarge }
        w.buffer[start + 2] = UInt8(length >> 8)
        w.buffer[start + 3] = UInt8(truncatingIfNeeded: length)
        do {
            for _ in 0..<((4 - length % 4) % 4) { try w.write(padding) }
        } catch {
            throw .bufferTooSmall
        }
    }

    /// Bytes the attribute takes on the wire, header and padding included.
    public var encodedSize: Int {
        let v: Int
        switch self {
        case .mappedAddress(let a), .xorMappedAddress(let a), .xorPeerAddress(let a),
             .xorRelayedAddress(let a), .alternateServer(let a):
            v = a.ip.isIPv4 ? 8 : 20
        case .username(let s), .realm(let s), .nonce(let s), .software(let s): v = s.utf8.count
        case .userhash(let b), .messageIntegrity(let b), .messageIntegritySHA256(let b), .data(let b): v = b.count
        case .fingerprint, .priority, .lifetime, .channelNumber, .requestedTransport,
             .requestedAddressFamily, .additionalAddressFamily: v = 4
        case .errorCode(let e): v = 4 + e.reason.utf8.count
        case .addressErrorCode(_, let e): v = 4 + e.reason.utf8.count
        case .passwordAlgorithms(let list): v = list.reduce(0) { $0 + 4 + ($1.parameters.count + 3) / 4 * 4 }
        case .passwordAlgorithm(let a): v = 4 + (a.parameters.count + 3) / 4 * 4
        case .unknownAttributes(let t): v = 2 * t.count
        case .useCandidate, .dontFragment: v = 0
        case .iceControlled, .iceControlling, .reservationToken, .icmp: v = 8
        case .evenPort: v = 1
        case .unknown(_, let b): v = b.count
        }
        return 4 + (v + 3) / 4 * 4
    }

    private func writeValue(to w: inout ByteWriter, transactionID tid: STUNTransactionID) throws(ByteReaderError) {
        switch self {
        case .mappedAddress(let a), .alternateServer(let a):
            try writeAddress(a, xor: nil, to: &w)
        case .xorMappedAddress(let a), .xorPeerAddress(let a), .xorRelayedAddress(let a):
            try writeAddress(a, xor: tid, to: &w)
        case .username(let s), .realm(let s), .nonce(let s), .software(let s):
            try writeText(s, to: &w)
        case .userhash(let b), .messageIntegrity(let b), .messageIntegritySHA256(let b), .data(let b):
            for x in b { try w.write(x) }
        case .unknown(_, let b):
            for x in b { try w.write(x) }
        case .fingerprint(let v), .priority(let v), .lifetime(let v):
            try w.write(v)
        case .errorCode(let e):
            try writeErrorCode(e, firstByte: 0, to: &w)
        case .addressErrorCode(let family, let e):
            try writeErrorCode(e, firstByte: family.rawValue, to: &w)
        case .passwordAlgorithms(let list):
            for a in list { try writePasswordAlgorithm(a, to: &w) }
        case .passwordAlgorithm(let a):
            try writePasswordAlgorithm(a, to: &w)
        case .unknownAttributes(let types):
            for t in types { try w.write(t) }
        case .useCandidate, .dontFragment:
            break
        case .iceControlled(let v), .iceControlling(let v), .reservationToken(let v):
            try w.write(UInt32(truncatingIfNeeded: v >> 32))
            try w.write(UInt32(truncatingIfNeeded: v))
        case .channelNumber(let n):
            try w.write(n)
            try w.write(UInt16(0))
        case .evenPort(let reserve):
            try w.write(UInt8(reserve ? 0x80 : 0))
        case .requestedTransport(let p):
            try w.write(UInt32(p) << 24)
        case .requestedAddressFamily(let f), .additionalAddressFamily(let f):
            try w.write(UInt32(f.rawValue) << 24)
        case .icmp(let type, let code, let data):
            try w.write(UInt16(0))
            try w.write(type)
            try w.write(code)
            try w.write(data)
        }
    }

    private func writeText(_ s: String, to w: inout ByteWriter) throws(ByteReaderError) {
        for x in s.utf8 { try w.write(x) }
    }

    private func writeErrorCode(_ e: STUNErrorCode, firstByte: UInt8, to w: inout ByteWriter) throws(ByteReaderError) {
        try w.write(firstByte)
        try w.write(UInt8(0))
        try w.write(UInt8((e.code / 100) & 0x07))
        try w.write(UInt8(e.code % 100))
        try writeText(e.reason, to: &w)
    }

    private func writePasswordAlgorithm(_ a: STUNPasswordAlgorithm, to w: inout ByteWriter) throws(ByteReaderError) {
        try w.write(a.algorithm)
        try w.write(UInt16(truncatingIfNeeded: a.parameters.count))
        for x in a.parameters { try w.write(x) }
        for _ in 0..<((4 - a.parameters.count % 4) % 4) { try w.write(UInt8(0)) }
    }
}

/// Writes the family/port/address layout of RFC 8489 §14.1/§14.2.
@inline(__always)
func writeAddress(_ a: TransportAddress, xor tid: STUNTransactionID?, to w: inout ByteWriter) throws(ByteReaderError) {
    try w.write(UInt8(0))
    let cookie = tid == nil ? 0 : stunMagicCookie
    switch a.ip {
    case .v4(let ip):
        try w.write(STUNAddressFamily.ipv4.rawValue)
        try w.write(a.port ^ UInt16(cookie >> 16))
        try w.write(ip ^ cookie)
    case .v6(var high, var low):
        try w.write(STUNAddressFamily.ipv6.rawValue)
        try w.write(a.port ^ UInt16(cookie >> 16))
        if let tid {
            high ^= UInt64(stunMagicCookie) << 32 | UInt64(tid.high)
            low ^= tid.low
        }
        try w.write(UInt32(truncatingIfNeeded: high >> 32))
        try w.write(UInt32(truncatingIfNeeded: high))
        try w.write(UInt32(truncatingIfNeeded: low >> 32))
        try w.write(UInt32(truncatingIfNeeded: low))
    }
}
