/// IVF, libvpx's simple container: a 32-byte file header ("DKIF", version 0,
/// header size 32, FourCC, width, height, timebase denominator and
/// numerator, frame count) and per frame a 12-byte header (size, 64-bit
/// pts) before the frame bytes. All fields little-endian.
public struct IVFHeader: Sendable, Equatable {
    public var fourCC: UInt32
    public var width: Int
    public var height: Int
    /// Timebase = numerator / denominator seconds per pts unit. In the file
    /// the denominator comes first (it doubles as the frame rate).
    public var timebaseDenominator: Int
    public var timebaseNumerator: Int
    public var frameCount: Int

    public static let vp8FourCC: UInt32 = 0x3038_5056 // "VP80"
    public static let byteCount = 32

    public init(width: Int, height: Int, timebaseDenominator: Int, timebaseNumerator: Int = 1,
                frameCount: Int = 0, fourCC: UInt32 = IVFHeader.vp8FourCC) {
        self.fourCC = fourCC; self.width = width; self.height = height
        self.timebaseDenominator = timebaseDenominator; self.timebaseNumerator = timebaseNumerator
        self.frameCount = frameCount
    }

    public var isVP8: Bool { fourCC == Self.vp8FourCC }

    public func serialized() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(Self.byteCount)
        out.appendASCII("DKIF")
        out.appendLE16(0)
        out.appendLE16(UInt16(Self.byteCount))
        out.appendLE32(fourCC)
        out.appendLE16(UInt16(truncatingIfNeeded: width))
        out.appendLE16(UInt16(truncatingIfNeeded: height))
        out.appendLE32(UInt32(truncatingIfNeeded: timebaseDenominator))
        out.appendLE32(UInt32(truncatingIfNeeded: timebaseNumerator))
        out.appendLE32(UInt32(truncatingIfNeeded: frameCount))
        out.appendLE32(0)
        return out
    }
}

public enum IVFError: Error, Sendable, Equatable {
    case truncatedHeader
    case badSignature
    case unsupportedVersion(Int)
    case badHeaderSize(Int)
    /// A frame header or frame body runs past the end of the data.
    case truncatedFrame(index: Int)
}

public struct IVFFrame: Sendable, Equatable {
    public var pts: Int64
    public var bytes: ArraySlice<UInt8>
}

/// Reads IVF from bytes in memory, frame by frame (slices, no copies).
public struct IVFReader {
    public let header: IVFHeader
    private var reader: LEReader
    private var index = 0

    public init(bytes: [UInt8]) throws(IVFError) {
        var r = LEReader(bytes)
        guard bytes.count >= IVFHeader.byteCount else { throw .truncatedHeader }
        guard r.matches("DKIF", at: 0) else { throw .badSignature }
        r.offset = 4
        guard let version = r.u16(), let headerSize = r.u16(), let fourCC = r.u32(), let w = r.u16(), let h = r.u16(),
              let den = r.u32(), let num = r.u32(), let count = r.u32(), r.u32() != nil
        else { throw .truncatedHeader }
        guard version == 0 else { throw .unsupportedVersion(Int(version)) }
        guard Int(headerSize) >= IVFHeader.byteCount, Int(headerSize) <= bytes.count else {
            throw .badHeaderSize(Int(headerSize))
        }
        r.offset = Int(headerSize)
        header = IVFHeader(width: Int(w), height: Int(h), timebaseDenominator: Int(den),
                           timebaseNumerator: Int(num), frameCount: Int(count), fourCC: fourCC)
        reader = r
    }

    /// The next frame, nil at a clean end of data.
    public mutating func nextFrame() throws(IVFError) -> IVFFrame? {
        guard reader.remaining > 0 else { return nil }
        guard let size = reader.u32(), let pts = reader.u64(), let body = reader.take(Int(size)) else {
            throw .truncatedFrame(index: index)
        }
        index += 1
        return IVFFrame(pts: Int64(bitPattern: pts), bytes: body)
    }

    /// All remaining frames.
    public mutating func readAll() throws(IVFError) -> [IVFFrame] {
        var frames: [IVFFrame] = []
        while let f = try nextFrame() { frames.append(f) }
        return frames
    }
}

/// Builds IVF in memory: header first, then frames; `finish` patches the
/// frame count.
public struct IVFMuxer {
    public private(set) var bytes: [UInt8]
    public private(set) var frameCount = 0

    public init(header: IVFHeader) { bytes = header.serialized() }

    public mutating func append(frame: UnsafeRawBufferPointer, pts: Int64) {
        Self.appendFrameHeader(to: &bytes, size: frame.count, pts: pts)
        bytes.append(contentsOf: frame)
        frameCount += 1
        bytes.setLE32(UInt32(truncatingIfNeeded: frameCount), at: 24)
    }

    static func appendFrameHeader(to out: inout [UInt8], size: Int, pts: Int64) {
        out.appendLE32(UInt32(truncatingIfNeeded: size))
        out.appendLE64(UInt64(bitPattern: pts))
    }
}

/// Writes IVF to a file as frames arrive; the frame count in the header is
/// patched on `finish` (or left as written so far if the process dies).
public final class IVFFileWriter {
    private let sink: FileSink
    private var scratch: [UInt8] = []
    public private(set) var frameCount = 0

    public init(path: String, header: IVFHeader) throws(FileIOError) {
        sink = try FileSink(path: path)
        var h = header
        h.frameCount = 0
        try sink.write(h.serialized())
        scratch.reserveCapacity(12)
    }

    public func write(frame: UnsafeRawBufferPointer, pts: Int64) throws(FileIOError) {
        scratch.removeAll(keepingCapacity: true)
        IVFMuxer.appendFrameHeader(to: &scratch, size: frame.count, pts: pts)
        try sink.write(scratch)
        try sink.write(frame)
        frameCount += 1
    }

    public func finish() throws(FileIOError) {
        var count: [UInt8] = []
        count.appendLE32(UInt32(truncatingIfNeeded: frameCount))
        try sink.write(count, at: 24)
        sink.close()
    }
}
