import RTCBase

/// A validated STUN message read in place from a caller's buffer. Building one
/// checks the header and walks attribute headers once; values are decoded
/// only when asked for, and nothing is allocated. The buffer must outlive the
/// view.
public struct STUNMessageView {
    /// Exactly the message bytes (header + attributes).
    public let bytes: UnsafeRawBufferPointer
    public let type: STUNMessageType
    public let transactionID: STUNTransactionID
    /// Offset of the first MESSAGE-INTEGRITY attribute header, if present.
    public let messageIntegrityOffset: Int?
    /// Offset of the MESSAGE-INTEGRITY-SHA256 attribute header, if present.
    public let messageIntegritySHA256Offset: Int?
    /// Offset of the FINGERPRINT attribute header, if present (always last).
    public let fingerprintOffset: Int?

    /// Validates the header (RFC 8489 §5, §6.3): top two bits zero, magic
    /// cookie, length a multiple of 4 and equal to the datagram's size minus
    /// the header; then every attribute's bounds, and that FINGERPRINT is last.
    public init(_ packet: UnsafeRawBufferPointer) throws(STUNError) {
        guard packet.count >= stunHeaderSize else { throw .truncatedHeader }
        guard packet[0] & 0xC0 == 0 else { throw .notSTUN }
        guard packet[4] == 0x21, packet[5] == 0x12, packet[6] == 0xA4, packet[7] == 0x42 else { throw .badMagicCookie }
        let length = Int(packet[2]) << 8 | Int(packet[3])
        guard length % 4 == 0 else { throw .lengthNotMultipleOfFour }
        guard length + stunHeaderSize == packet.count else { throw .lengthMismatch }

        var mi: Int?, mi256: Int?, fp: Int?
        var offset = stunHeaderSize
        while offset < packet.count {
            guard packet.count - offset >= 4 else { throw .attributeOverrun }
            let t = UInt16(packet[offset]) << 8 | UInt16(packet[offset + 1])
            let l = Int(packet[offset + 2]) << 8 | Int(packet[offset + 3])
            let padded = (l + 3) & ~3
            guard packet.count - offset - 4 >= padded else { throw .attributeOverrun }
            if fp != nil { throw .fingerprintNotLast }
            switch t {
            case STUNAttributeType.messageIntegrity.rawValue where mi == nil && mi256 == nil: mi = offset
            case STUNAttributeType.messageIntegritySHA256.rawValue where mi256 == nil: mi256 = offset
            case STUNAttributeType.fingerprint.rawValue: fp = offset
            default: break
            }
            offset += 4 + padded
        }
        bytes = packet
        type = STUNMessageType(rawValue: UInt16(packet[0]) << 8 | UInt16(packet[1]))
        transactionID = readTransactionID(packet, at: 0)
        messageIntegrityOffset = mi
        messageIntegritySHA256Offset = mi256
        fingerprintOffset = fp
    }

    /// The attributes that count, in order. Following RFC 8489 §14.5/§14.6,
    /// anything after MESSAGE-INTEGRITY other than MESSAGE-INTEGRITY-SHA256
    /// and FINGERPRINT (and anything after MESSAGE-INTEGRITY-SHA256 other
    /// than FINGERPRINT) is skipped.
    public var attributes: Attributes { Attributes(bytes: bytes) }

    public struct Attributes: Sequence {
        let bytes: UnsafeRawBufferPointer

        public struct Iterator: IteratorProtocol {
            let bytes: UnsafeRawBufferPointer
            var offset = stunHeaderSize
            var seenMI = false
            var seenMI256 = false

            public mutating func next() -> STUNRawAttribute? {
                // Bounds were checked when the view was built.
                while offset + 4 <= bytes.count {
                    let t = UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
                    let l = Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])
                    let here = offset
                    offset += 4 + ((l + 3) & ~3)
                    let isFP = t == STUNAttributeType.fingerprint.rawValue
                    let isMI256 = t == STUNAttributeType.messageIntegritySHA256.rawValue
                    if seenMI256 && !isFP { continue }
                    if seenMI && !isFP && !isMI256 { continue }
                    if t == STUNAttributeType.messageIntegrity.rawValue { seenMI = true }
                    if isMI256 { seenMI256 = true }
                    guard here + 4 + l <= bytes.count else { return nil }
                    return STUNRawAttribute(type: STUNAttributeType(t),
                                            value: UnsafeRawBufferPointer(rebasing: bytes[(here + 4)..<(here + 4 + l)]),
                                            offset: here)
                }
                return nil
            }
        }

        public func makeIterator() -> Iterator { Iterator(bytes: bytes) }
    }

    /// The first counted attribute of `type`.
    public func first(_ type: STUNAttributeType) -> STUNRawAttribute? {
        for a in attributes where a.type == type { return a }
        return nil
    }

    public func contains(_ type: STUNAttributeType) -> Bool { first(type) != nil }

    /// Comprehension-required attribute types (< 0x8000) that `isKnown`
    /// rejects, for a 420 answer with UNKNOWN-ATTRIBUTES (RFC 8489 §6.3.1.1).
    /// Allocates only when something unknown is found.
    public func unknownComprehensionRequired(isKnown: (STUNAttributeType) -> Bool = STUNAttributeType.isKnown) -> [UInt16] {
        var out = [UInt16]()
        for a in attributes where a.type.isComprehensionRequired && !isKnown(a.type) {
            if !out.contains(a.type.rawValue) { out.append(a.type.rawValue) }
        }
        return out
    }

    /// Checks FINGERPRINT (RFC 8489 §14.7): CRC-32 of everything before it,
    /// XOR 0x5354554e.
    public func verifyFingerprint() throws(STUNError) {
        guard let fp = fingerprintOffset else { throw .fingerprintMissing }
        let attr = STUNRawAttribute(type: .fingerprint,
                                    value: UnsafeRawBufferPointer(rebasing: bytes[(fp + 4)..<min(bytes.count, fp + 8)]),
                                    offset: fp)
        guard bytes[fp + 2] == 0, bytes[fp + 3] == 4 else { throw .malformedAttribute(type: STUNAttributeType.fingerprint.rawValue) }
        let expected = try attr.uint32()
        let crc = CRC32.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<fp])) ^ fingerprintXOR
        guard crc == expected else { throw .fingerprintMismatch }
    }

    /// Checks MESSAGE-INTEGRITY (HMAC-SHA1, RFC 8489 §14.5). The MAC covers
    /// the message up to the attribute, with the header length adjusted to end
    /// just after it, so FINGERPRINT added later does not break it. The
    /// adjusted length is fed to the hash separately: the buffer is not touched.
    public func verifyMessageIntegrity(key: borrowing STUNIntegrityKey) throws(STUNError) {
        guard let mi = messageIntegrityOffset else { throw .integrityMissing }
        guard bytes[mi + 2] == 0, bytes[mi + 3] == 20 else { throw .malformedAttribute(type: STUNAttributeType.messageIntegrity.rawValue) }
        let ok = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { mac -> Bool in
            computeMAC(key: key, attributeOffset: mi, valueLength: 20, sha256: false, into: mac.baseAddress!)
            return constantTimeEqual(UnsafeRawBufferPointer(mac), UnsafeRawBufferPointer(rebasing: bytes[(mi + 4)..<(mi + 24)]))
        }
        guard ok else { throw .integrityMismatch }
    }

    /// Checks MESSAGE-INTEGRITY-SHA256 (RFC 8489 §14.6); the value may be a
    /// truncation of the HMAC to 16–32 bytes.
    public func verifyMessageIntegritySHA256(key: borrowing STUNIntegrityKey) throws(STUNError) {
        guard let mi = messageIntegritySHA256Offset else { throw .integrityMissing }
        let l = Int(bytes[mi + 2]) << 8 | Int(bytes[mi + 3])
        guard l >= 16, l <= 32, l % 4 == 0 else { throw .malformedAttribute(type: STUNAttributeType.messageIntegritySHA256.rawValue) }
        let ok = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { mac -> Bool in
            computeMAC(key: key, attributeOffset: mi, valueLength: l, sha256: true, into: mac.baseAddress!)
            return constantTimeEqual(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(mac)[0..<l]),
                                     UnsafeRawBufferPointer(rebasing: bytes[(mi + 4)..<(mi + 4 + l)]))
        }
        guard ok else { throw .integrityMismatch }
    }

    private func computeMAC(key: borrowing STUNIntegrityKey, attributeOffset: Int, valueLength: Int, sha256: Bool,
                            into out: UnsafeMutablePointer<UInt8>) {
        let adjusted = attributeOffset + 4 + valueLength - stunHeaderSize
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 2) { len in
            len[0] = UInt8(truncatingIfNeeded: adjusted >> 8)
            len[1] = UInt8(truncatingIfNeeded: adjusted)
            let typeBytes = UnsafeRawBufferPointer(rebasing: bytes[0..<2])
            let rest = UnsafeRawBufferPointer(rebasing: bytes[4..<attributeOffset])
            // Feed "type, adjusted length, rest" as three pieces.
            let lenBytes = UnsafeRawBufferPointer(len)
            if sha256 {
                key.hmacSHA256(typeBytes, lenBytes, rest, into: out)
            } else {
                key.hmacSHA1(typeBytes, lenBytes, rest, into: out)
            }
        }
    }

    // MARK: Allocation-free accessors for the hot path

    /// USERNAME's raw bytes.
    public var usernameBytes: UnsafeRawBufferPointer? { first(.username)?.value }
    public var priority: UInt32? { try? first(.priority)?.uint32() }
    public var useCandidate: Bool { contains(.useCandidate) }
    public var iceControlling: UInt64? { try? first(.iceControlling)?.uint64() }
    public var iceControlled: UInt64? { try? first(.iceControlled)?.uint64() }
    public var xorMappedAddress: TransportAddress? { try? first(.xorMappedAddress)?.xorAddress(transactionID: transactionID) }

    /// The ERROR-CODE number (e.g. 401, 487) without decoding the reason.
    public var errorCodeNumber: UInt16? {
        guard let v = first(.errorCode)?.value, v.count >= 4 else { return nil }
        return UInt16(v[2] & 0x07) * 100 + UInt16(v[3])
    }
}

extension STUNAttributeType {
    /// The types this module parses.
    public static func isKnown(_ type: STUNAttributeType) -> Bool {
        switch type {
        case .mappedAddress, .username, .messageIntegrity, .errorCode, .unknownAttributes, .channelNumber,
             .lifetime, .xorPeerAddress, .data, .realm, .nonce, .xorRelayedAddress, .requestedAddressFamily,
             .evenPort, .requestedTransport, .dontFragment, .messageIntegritySHA256, .passwordAlgorithm,
             .userhash, .xorMappedAddress, .reservationToken, .priority, .useCandidate,
             .additionalAddressFamily, .addressErrorCode, .passwordAlgorithms, .icmp, .software,
             .alternateServer, .fingerprint, .iceControlled, .iceControlling:
            return true
        default:
            return false
        }
    }
}
