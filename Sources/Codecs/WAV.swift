/// RIFF/WAVE with 16-bit PCM samples: "RIFF" size "WAVE", a "fmt " chunk
/// (format 1 = PCM, or 0xFFFE extensible with the PCM sub-format), and a
/// "data" chunk of interleaved little-endian int16 samples. Other chunks
/// (LIST, fact, ...) are skipped.
public struct WAVFormat: Sendable, Equatable {
    public var channels: Int
    public var sampleRate: Int
    public let bitsPerSample = 16

    public init(channels: Int, sampleRate: Int = 48_000) {
        self.channels = channels; self.sampleRate = sampleRate
    }

    public var blockAlign: Int { channels * 2 }

    /// The 44-byte canonical header for `dataByteCount` bytes of samples.
    public func header(dataByteCount: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.appendASCII("RIFF")
        out.appendLE32(UInt32(truncatingIfNeeded: 36 + dataByteCount))
        out.appendASCII("WAVE")
        out.appendASCII("fmt ")
        out.appendLE32(16)
        out.appendLE16(1)
        out.appendLE16(UInt16(truncatingIfNeeded: channels))
        out.appendLE32(UInt32(truncatingIfNeeded: sampleRate))
        out.appendLE32(UInt32(truncatingIfNeeded: sampleRate * blockAlign))
        out.appendLE16(UInt16(truncatingIfNeeded: blockAlign))
        out.appendLE16(16)
        out.appendASCII("data")
        out.appendLE32(UInt32(truncatingIfNeeded: dataByteCount))
        return out
    }
}

public enum WAVError: Error, Sendable, Equatable {
    case notRIFFWave
    case truncatedChunk
    case missingFormatChunk
    case missingDataChunk
    /// Not PCM (the format code is given).
    case unsupportedFormat(Int)
    case unsupportedBitsPerSample(Int)
    case invalidChannelCount(Int)
    /// The data chunk claims more bytes than the input holds.
    case truncatedData(declared: Int, available: Int)
}

public struct WAVAudio: Sendable, Equatable {
    public var format: WAVFormat
    /// Interleaved samples.
    public var samples: [Int16]

    public init(format: WAVFormat, samples: [Int16]) { self.format = format; self.samples = samples }

    public init(parsing bytes: [UInt8]) throws(WAVError) {
        var r = LEReader(bytes)
        guard r.matches("RIFF", at: 0), r.matches("WAVE", at: 8) else { throw .notRIFFWave }
        r.offset = 12
        var format: WAVFormat?
        while r.remaining > 0 {
            let idOffset = r.offset
            guard r.take(4) != nil, let size32 = r.u32() else { throw .truncatedChunk }
            let size = Int(size32)
            if r.matches("fmt ", at: idOffset) {
                guard size >= 16, let body = r.take(size) else { throw .truncatedChunk }
                var f = LEReader(Array(body))
                guard let code = f.u16(), let channels = f.u16(), let rate = f.u32(), f.u32() != nil,
                      f.u16() != nil, let bits = f.u16() else { throw .truncatedChunk }
                var formatCode = Int(code)
                if code == 0xfffe {
                    // WAVE_FORMAT_EXTENSIBLE: cbSize, valid bits, channel mask, then the sub-format GUID
                    // whose first two bytes are the real format code.
                    guard f.u16() != nil, f.u16() != nil, f.u32() != nil, let sub = f.u16() else { throw .truncatedChunk }
                    formatCode = Int(sub)
                }
                guard formatCode == 1 else { throw .unsupportedFormat(formatCode) }
                guard bits == 16 else { throw .unsupportedBitsPerSample(Int(bits)) }
                guard (1...8).contains(channels) else { throw .invalidChannelCount(Int(channels)) }
                format = WAVFormat(channels: Int(channels), sampleRate: Int(rate))
            } else if r.matches("data", at: idOffset) {
                guard let format else { throw .missingFormatChunk }
                guard size <= r.remaining else { throw .truncatedData(declared: size, available: r.remaining) }
                let usable = size - size % format.blockAlign
                var samples = [Int16](repeating: 0, count: usable / 2)
                let start = r.offset
                for i in 0..<samples.count {
                    samples[i] = Int16(bitPattern: UInt16(bytes[start + 2 * i]) | UInt16(bytes[start + 2 * i + 1]) << 8)
                }
                self.format = format
                self.samples = samples
                return
            } else {
                guard r.take(size) != nil else { throw .truncatedChunk }
            }
            if size % 2 == 1, r.remaining > 0 { r.offset += 1 } // chunks are padded to even sizes
        }
        throw format == nil ? .missingFormatChunk : .missingDataChunk
    }

    public func serialized() -> [UInt8] {
        var out = format.header(dataByteCount: samples.count * 2)
        out.reserveCapacity(out.count + samples.count * 2)
        for s in samples { out.appendLE16(UInt16(bitPattern: s)) }
        return out
    }
}

/// Streams 16-bit PCM to a WAV file; sizes are patched on `finish`.
public final class WAVFileWriter {
    private let sink: FileSink
    public let format: WAVFormat
    private var dataBytes = 0
    private var scratch: [UInt8] = []

    public init(path: String, format: WAVFormat) throws(FileIOError) {
        sink = try FileSink(path: path)
        self.format = format
        try sink.write(format.header(dataByteCount: 0))
    }

    public func write(_ samples: UnsafeBufferPointer<Int16>) throws(FileIOError) {
        scratch.removeAll(keepingCapacity: true)
        for s in samples { scratch.appendLE16(UInt16(bitPattern: s)) }
        try sink.write(scratch)
        dataBytes += samples.count * 2
    }

    public func write(_ samples: [Int16]) throws(FileIOError) {
        let result: Result<Void, FileIOError> = samples.withUnsafeBufferPointer { buffer in
            do throws(FileIOError) { try write(buffer); return .success(()) } catch { return .failure(error) }
        }
        try result.get()
    }

    public func finish() throws(FileIOError) {
        try sink.write(format.header(dataByteCount: dataBytes), at: 0)
        sink.close()
    }
}
