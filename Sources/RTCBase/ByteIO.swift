/// Errors of reading a packet that is shorter than its fields claim.
public enum ByteReaderError: Error, Sendable, Equatable {
    case truncated(needed: Int, available: Int)
}

/// A position in a fixed-size buffer: readers and writers share one bounds
/// check, and neither ever reads or writes past the end.
protocol ByteCursor {
    var remaining: Int { get }
}

extension ByteCursor {
    @inline(__always)
    func need(_ n: Int) throws(ByteReaderError) {
        guard n <= remaining else { throw .truncated(needed: n, available: remaining) }
    }
}

/// Reads big-endian fields from a caller's buffer without copying it.
public struct ByteReader: ByteCursor {
    public let bytes: UnsafeRawBufferPointer
    public private(set) var offset: Int

    public init(_ bytes: UnsafeRawBufferPointer, offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    public var remaining: Int { bytes.count - offset }

    public mutating func readUInt8() throws(ByteReaderError) -> UInt8 {
        try need(1)
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func readUInt16() throws(ByteReaderError) -> UInt16 {
        try need(2)
        defer { offset += 2 }
        return UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
    }

    public mutating func readUInt24() throws(ByteReaderError) -> UInt32 {
        try need(3)
        defer { offset += 3 }
        return UInt32(bytes[offset]) << 16 | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2])
    }

    public mutating func readUInt32() throws(ByteReaderError) -> UInt32 {
        try need(4)
        defer { offset += 4 }
        var v: UInt32 = 0
        for i in 0..<4 { v = v << 8 | UInt32(bytes[offset + i]) }
        return v
    }

    public mutating func readUInt64() throws(ByteReaderError) -> UInt64 {
        let high = try readUInt32()
        let low = try readUInt32()
        return UInt64(high) << 32 | UInt64(low)
    }

    /// A view of the next `count` bytes (no copy).
    public mutating func readBytes(_ count: Int) throws(ByteReaderError) -> UnsafeRawBufferPointer {
        try need(count)
        defer { offset += count }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)])
    }

    public mutating func skip(_ count: Int) throws(ByteReaderError) {
        try need(count)
        offset += count
    }
}

/// Writes big-endian fields into a caller's buffer; never grows it.
public struct ByteWriter: ByteCursor {
    public let buffer: UnsafeMutableRawBufferPointer
    public private(set) var offset: Int

    public init(_ buffer: UnsafeMutableRawBufferPointer, offset: Int = 0) {
        self.buffer = buffer
        self.offset = offset
    }

    public var remaining: Int { buffer.count - offset }

    public mutating func write(_ v: UInt8) throws(ByteReaderError) {
        try need(1)
        buffer[offset] = v
        offset += 1
    }

    public mutating func write(_ v: UInt16) throws(ByteReaderError) {
        try need(2)
        buffer[offset] = UInt8(v >> 8)
        buffer[offset + 1] = UInt8(truncatingIfNeeded: v)
        offset += 2
    }

    public mutating func write(_ v: UInt32) throws(ByteReaderError) {
        try need(4)
        for i in 0..<4 { buffer[offset + i] = UInt8(truncatingIfNeeded: v >> (24 - 8 * UInt32(i))) }
        offset += 4
    }

    public mutating func write(_ bytes: UnsafeRawBufferPointer) throws(ByteReaderError) {
        try need(bytes.count)
        if let base = bytes.baseAddress, bytes.count > 0 {
            (buffer.baseAddress! + offset).copyMemory(from: base, byteCount: bytes.count)
        }
        offset += bytes.count
    }

    /// Zero bytes up to the next multiple of `alignment`.
    public mutating func pad(to alignment: Int) throws(ByteReaderError) {
        while offset % alignment != 0 { try write(UInt8(0)) }
    }
}
