import RTCBase

/// Writes a STUN message into a caller's buffer, keeping the header length
/// current after every attribute, and appends MESSAGE-INTEGRITY(-SHA256) and
/// FINGERPRINT computed in place. Nothing is allocated unless an appended
/// attribute itself carries heap values.
public struct STUNMessageWriter {
    public private(set) var writer: ByteWriter
    /// Where the message header starts in `writer.buffer`.
    public let start: Int
    public let transactionID: STUNTransactionID
    /// Byte used to pad attribute values to 4 (RFC 8489 §14 allows any;
    /// RFC 5769 uses spaces, so tests can reproduce its vectors exactly).
    public var padding: UInt8 = 0

    /// Starts a message at the writer's current offset.
    public init(writer: ByteWriter, type: STUNMessageType, transactionID: STUNTransactionID) throws(STUNError) {
        self.writer = writer
        self.start = writer.offset
        self.transactionID = transactionID
        do {
            try self.writer.write(type.rawValue & 0x3FFF)
            try self.writer.write(UInt16(0))
            try self.writer.write(stunMagicCookie)
            try self.writer.write(transactionID.high)
            try self.writer.write(UInt32(truncatingIfNeeded: transactionID.low >> 32))
            try self.writer.write(UInt32(truncatingIfNeeded: transactionID.low))
        } catch {
            throw .bufferTooSmall
        }
    }

    public init(into buffer: UnsafeMutableRawBufferPointer, type: STUNMessageType, transactionID: STUNTransactionID) throws(STUNError) {
        try self.init(writer: ByteWriter(buffer), type: type, transactionID: transactionID)
    }

    /// Bytes written so far (header included).
    public var count: Int { writer.offset - start }

    /// The message written so far.
    public var bytes: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(writer.buffer)[start..<writer.offset])
    }

    @inline(__always)
    private mutating func setLength(_ length: Int) {
        writer.buffer[start + 2] = UInt8(truncatingIfNeeded: length >> 8)
        writer.buffer[start + 3] = UInt8(truncatingIfNeeded: length)
    }

    public mutating func append(_ attribute: STUNAttribute) throws(STUNError) {
        try attribute.write(to: &writer, transactionID: transactionID, padding: padding)
        setLength(count - stunHeaderSize)
    }

    /// An address attribute (XOR-encoded for the XOR-* types).
    public mutating func appendAddress(_ type: STUNAttributeType, _ address: TransportAddress) throws(STUNError) {
        let xor = type == .xorMappedAddress || type == .xorPeerAddress || type == .xorRelayedAddress
        do {
            try writer.write(type.rawValue)
            try writer.write(UInt16(address.ip.isIPv4 ? 8 : 20))
            try writeAddress(address, xor: xor ? transactionID : nil, to: &writer)
        } catch {
            throw .bufferTooSmall
        }
        setLength(count - stunHeaderSize)
    }

    /// An attribute whose value is `value` (padded).
    public mutating func appendBytes(_ type: STUNAttributeType, _ value: UnsafeRawBufferPointer) throws(STUNError) {
        guard value.count <= 0xFFFF else { throw .valueTooLarge }
        do {
            try writer.write(type.rawValue)
            try writer.write(UInt16(value.count))
            try writer.write(value)
            for _ in 0..<((4 - value.count % 4) % 4) { try writer.write(padding) }
        } catch {
            throw .bufferTooSmall
        }
        setLength(count - stunHeaderSize)
    }

    /// MESSAGE-INTEGRITY over everything written so far (RFC 8489 §14.5):
    /// the header length is first set to include this attribute.
    public mutating func appendMessageIntegrity(key: borrowing STUNIntegrityKey) throws(STUNError) {
        guard writer.remaining >= 24 else { throw .bufferTooSmall }
        let macStart = writer.offset + 4
        setLength(count + 24 - stunHeaderSize)
        let covered = bytes
        key.hmacSHA1(covered, UnsafeRawBufferPointer(start: nil, count: 0), UnsafeRawBufferPointer(start: nil, count: 0),
                     into: (writer.buffer.baseAddress! + macStart).assumingMemoryBound(to: UInt8.self))
        do {
            try writer.write(STUNAttributeType.messageIntegrity.rawValue)
            try writer.write(UInt16(20))
            // The MAC is already in place; step over it without overwriting.
            try writer.skipWritten(20)
        } catch {
            throw .bufferTooSmall
        }
    }

    /// MESSAGE-INTEGRITY-SHA256 (RFC 8489 §14.6), truncated to `length`
    /// bytes (16–32, a multiple of 4).
    public mutating func appendMessageIntegritySHA256(key: borrowing STUNIntegrityKey, length: Int = 32) throws(STUNError) {
        guard length >= 16, length <= 32, length % 4 == 0 else { throw .valueTooLarge }
        guard writer.remaining >= 4 + length else { throw .bufferTooSmall }
        setLength(count + 4 + length - stunHeaderSize)
        let covered = bytes
        let macStart = writer.offset + 4
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { mac in
            key.hmacSHA256(covered, UnsafeRawBufferPointer(start: nil, count: 0), UnsafeRawBufferPointer(start: nil, count: 0),
                           into: mac.baseAddress!)
            for i in 0..<length { writer.buffer[macStart + i] = mac[i] }
        }
        do {
            try writer.write(STUNAttributeType.messageIntegritySHA256.rawValue)
            try writer.write(UInt16(length))
            try writer.skipWritten(length)
        } catch {
            throw .bufferTooSmall
        }
    }

    /// FINGERPRINT (RFC 8489 §14.7); must be the last attribute.
    public mutating func appendFingerprint() throws(STUNError) {
        guard writer.remaining >= 8 else { throw .bufferTooSmall }
        setLength(count + 8 - stunHeaderSize)
        let crc = CRC32.checksum(bytes) ^ fingerprintXOR
        do {
            try writer.write(STUNAttributeType.fingerprint.rawValue)
            try writer.write(UInt16(4))
            try writer.write(crc)
        } catch {
            throw .bufferTooSmall
        }
    }
}

extension ByteWriter {
    /// Moves past `count` bytes the caller already filled through `buffer`.
    /// ByteWriter has no public seek, so rewrite the same bytes in place.
    mutating func skipWritten(_ count: Int) throws(ByteReaderError) {
        let base = offset
        for i in 0..<count { try write(buffer[base + i]) }
    }
}
