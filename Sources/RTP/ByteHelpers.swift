import RTCBase

// Small helpers shared by the writers and parsers of this module.

/// Runs a block of `ByteWriter` writes, turning its "out of room" error into
/// the caller's own typed error.
@inlinable @inline(__always)
func writing<E: Error>(_ failure: E, _ body: () throws(ByteReaderError) -> Void) throws(E) {
    do { try body() } catch { throw failure }
}

/// `Array.withUnsafeBytes` with a typed error (the stdlib one only rethrows).
@inlinable
func withBytes<R, E: Error>(_ array: [UInt8], _ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
    try array.withUnsafeBytes { b in Result { () throws(E) in try body(b) } }.get()
}

/// `Array.withUnsafeMutableBytes` with a typed error.
@inlinable
func withMutableBytes<R, E: Error>(_ array: inout [UInt8], _ body: (UnsafeMutableRawBufferPointer) throws(E) -> R) throws(E) -> R {
    try array.withUnsafeMutableBytes { b in Result { () throws(E) in try body(b) } }.get()
}

extension ByteWriter {
    /// Writes an array's bytes.
    @inlinable
    mutating func write(contentsOf bytes: [UInt8]) throws(ByteReaderError) {
        try withBytes(bytes) { (b) throws(ByteReaderError) in try write(b) }
    }

    @inlinable
    mutating func write24(_ v: UInt32) throws(ByteReaderError) {
        try write(UInt8(truncatingIfNeeded: v >> 16))
        try write(UInt16(truncatingIfNeeded: v))
    }

    @inlinable
    mutating func write64(_ v: UInt64) throws(ByteReaderError) {
        try write(UInt32(truncatingIfNeeded: v >> 32))
        try write(UInt32(truncatingIfNeeded: v))
    }
}

