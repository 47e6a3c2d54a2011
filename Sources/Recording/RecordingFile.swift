import Codecs

/// Why a recording could not be written.
public enum RecordingError: Error, Sendable, Equatable {
    /// The file could not be created, written or patched (POSIX errno inside).
    case io(FileIOError)
}

/// A file written front to back through a memory buffer, with one rewrite
/// of its start at the end (container headers whose counts are known only
/// then). `FileSink` does one `write(2)` per call; a video frame would cost
/// two syscalls and an audio packet one, so bytes are gathered here and
/// handed over in chunks of `capacity`.
final class RecordingFile {
    private let sink: FileSink
    private var buffer: [UInt8] = []
    private let capacity: Int
    /// Bytes handed to this file so far (buffered or written).
    private(set) var byteCount = 0
    /// The first write error; later writes are skipped, `finish` reports it.
    private(set) var failure: FileIOError?

    init(path: String, capacity: Int = 64 * 1024) throws(RecordingError) {
        do throws(FileIOError) { sink = try FileSink(path: path) } catch { throw .io(error) }
        self.capacity = capacity
        buffer.reserveCapacity(capacity)
    }

    func append(_ bytes: UnsafeRawBufferPointer) {
        byteCount += bytes.count
        guard failure == nil else { return }
        if buffer.count + bytes.count > capacity { flush() }
        if bytes.count >= capacity {
            // Larger than the buffer (a big keyframe): no point copying it.
            do throws(FileIOError) { try sink.write(bytes) } catch { failure = error }
        } else {
            buffer.append(contentsOf: bytes)
        }
    }

    func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { append($0) }
    }

    func flush() {
        guard failure == nil, !buffer.isEmpty else { return }
        do throws(FileIOError) { try sink.write(buffer) } catch { failure = error }
        buffer.removeAll(keepingCapacity: true)
    }

    /// Flushes, overwrites the first bytes with `header` (if given) and
    /// closes the file.
    func finish(rewritingStartWith header: [UInt8]?) throws(RecordingError) {
        flush()
        if failure == nil, let header {
            do throws(FileIOError) { try sink.write(header, at: 0) } catch { failure = error }
        }
        sink.close()
        if let failure { throw .io(failure) }
    }
}

// MARK: little-endian fields (IVF frame headers)

extension Array where Element == UInt8 {
    mutating func appendLittleEndian(_ value: UInt32) {
        for shift in stride(from: 0, to: 32, by: 8) { append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }

    mutating func appendLittleEndian(_ value: UInt64) {
        for shift in stride(from: 0, to: 64, by: 8) { append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }
}
