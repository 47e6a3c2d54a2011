#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// POSIX file errors, with the `errno` value.
public enum FileIOError: Error, Sendable, Equatable {
    case open(path: String, errno: Int32)
    case read(errno: Int32)
    case write(errno: Int32)
    case seek(errno: Int32)
}

/// Whole-file reads and an append-only file sink over POSIX descriptors.
/// The container parsers work on bytes in memory; this is the only IO.
public enum MediaFile {
    /// Reads a whole file.
    public static func readAll(path: String) throws(FileIOError) -> [UInt8] {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw .open(path: path, errno: errno) }
        defer { close(fd) }
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .read(errno: errno)
            }
            if n == 0 { break }
            result.append(contentsOf: chunk[0..<n])
        }
        return result
    }
}

/// A file opened for writing (created or truncated), closed in `deinit`.
public final class FileSink {
    private var fd: Int32

    public init(path: String) throws(FileIOError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw .open(path: path, errno: errno) }
        self.fd = fd
    }

    /// Takes ownership of an open descriptor.
    public init(fileDescriptor: Int32) { fd = fileDescriptor }

    deinit { if fd >= 0 { _ = posixClose(fd) } }

    public func write(_ bytes: UnsafeRawBufferPointer) throws(FileIOError) {
        var offset = 0
        while offset < bytes.count {
            let n = posixWrite(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw .write(errno: errno)
            }
            offset += n
        }
    }

    public func write(_ bytes: [UInt8]) throws(FileIOError) {
        let result: Result<Void, FileIOError> = bytes.withUnsafeBytes { raw in
            do throws(FileIOError) { try write(raw); return .success(()) } catch { return .failure(error) }
        }
        try result.get()
    }

    /// Overwrites bytes at an absolute offset (header fields patched at the
    /// end, like IVF's frame count or WAV's sizes) without moving the
    /// append position.
    public func write(_ bytes: [UInt8], at offset: Int) throws(FileIOError) {
        let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) }
        guard n == bytes.count else { throw .write(errno: errno) }
    }

    public func close() {
        if fd >= 0 { _ = posixClose(fd) }
        fd = -1
    }
}

private func posixWrite(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int { write(fd, p, n) }
private func posixClose(_ fd: Int32) -> Int32 { close(fd) }

// MARK: little-endian helpers shared by the container formats

extension Array where Element == UInt8 {
    mutating func appendLE16(_ v: UInt16) { append(UInt8(v & 0xff)); append(UInt8(v >> 8)) }
    mutating func appendLE32(_ v: UInt32) {
        append(UInt8(v & 0xff)); append(UInt8((v >> 8) & 0xff)); append(UInt8((v >> 16) & 0xff)); append(UInt8(v >> 24))
    }
    mutating func appendLE64(_ v: UInt64) { appendLE32(UInt32(v & 0xffff_ffff)); appendLE32(UInt32(v >> 32)) }
    mutating func appendASCII(_ s: StaticString) {
        s.withUTF8Buffer { append(contentsOf: $0) }
    }
    mutating func setLE32(_ v: UInt32, at i: Int) {
        self[i] = UInt8(v & 0xff); self[i + 1] = UInt8((v >> 8) & 0xff)
        self[i + 2] = UInt8((v >> 16) & 0xff); self[i + 3] = UInt8(v >> 24)
    }
}

/// Bounds-checked little-endian reads over bytes in memory; every read
/// returns nil past the end instead of trapping.
struct LEReader {
    let bytes: [UInt8]
    var offset: Int

    init(_ bytes: [UInt8], offset: Int = 0) { self.bytes = bytes; self.offset = offset }

    var remaining: Int { bytes.count - offset }

    mutating func u8() -> UInt8? {
        guard offset < bytes.count else { return nil }
        defer { offset += 1 }
        return bytes[offset]
    }
    mutating func u16() -> UInt16? {
        guard remaining >= 2 else { return nil }
        defer { offset += 2 }
        return UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8
    }
    mutating func u32() -> UInt32? {
        guard remaining >= 4 else { return nil }
        defer { offset += 4 }
        return UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8
            | UInt32(bytes[offset + 2]) << 16 | UInt32(bytes[offset + 3]) << 24
    }
    mutating func u64() -> UInt64? {
        guard remaining >= 8, let lo = u32(), let hi = u32() else { return nil }
        return UInt64(lo) | UInt64(hi) << 32
    }
    mutating func take(_ n: Int) -> ArraySlice<UInt8>? {
        guard n >= 0, remaining >= n else { return nil }
        defer { offset += n }
        return bytes[offset..<(offset + n)]
    }
    func matches(_ s: StaticString, at position: Int) -> Bool {
        s.withUTF8Buffer { tag in
            guard position >= 0, bytes.count - position >= tag.count else { return false }
            for i in 0..<tag.count where bytes[position + i] != tag[i] { return false }
            return true
        }
    }
}
