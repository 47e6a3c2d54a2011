/// YUV4MPEG2 (Y4M): a text header line `YUV4MPEG2 W320 H240 F30:1 Ip A1:1
/// C420jpeg`, then per picture a `FRAME` line (optionally with parameters)
/// and the packed planes. Only 8-bit 4:2:0 is supported: C420jpeg (the
/// default when no C tag is present), C420mpeg2, C420paldv and C420 differ
/// only in chroma siting, which a codec round trip does not care about.
public struct Y4MHeader: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var frameRateNumerator: Int
    public var frameRateDenominator: Int
    /// Colorspace tag without the leading "C" ("420jpeg", "420mpeg2", ...).
    public var colorspace: String
    /// Interlace tag ("p" progressive) and aspect ("1:1"), kept for output.
    public var interlace: String
    public var aspect: String

    public init(width: Int, height: Int, frameRateNumerator: Int = 30, frameRateDenominator: Int = 1,
                colorspace: String = "420jpeg") {
        self.width = width; self.height = height
        self.frameRateNumerator = frameRateNumerator; self.frameRateDenominator = frameRateDenominator
        self.colorspace = colorspace; interlace = "p"; aspect = "1:1"
    }

    public static let supportedColorspaces: Set<String> = ["420jpeg", "420mpeg2", "420paldv", "420"]

    public func serialized() -> [UInt8] {
        Array("YUV4MPEG2 W\(width) H\(height) F\(frameRateNumerator):\(frameRateDenominator) I\(interlace) A\(aspect) C\(colorspace)\n".utf8)
    }

    /// Bytes of one packed picture.
    public var frameByteCount: Int { width * height + 2 * ((width + 1) / 2) * ((height + 1) / 2) }
}

public enum Y4MError: Error, Sendable, Equatable {
    case missingSignature
    /// No newline within the first 1024 bytes.
    case unterminatedHeader
    case missingDimensions
    case invalidParameter(String)
    case unsupportedColorspace(String)
    case badFrameMarker(index: Int)
    case truncatedFrame(index: Int)
    /// `nextFrame(into:)` was given a frame of another size.
    case frameSizeMismatch
}

/// Reads Y4M from bytes in memory.
public struct Y4MReader {
    public let header: Y4MHeader
    private let bytes: [UInt8]
    private var offset: Int
    public private(set) var framesRead = 0

    public init(bytes: [UInt8]) throws(Y4MError) {
        self.bytes = bytes
        let signature = Array("YUV4MPEG2".utf8)
        guard bytes.count >= signature.count, Array(bytes[0..<signature.count]) == signature else {
            throw .missingSignature
        }
        guard let newline = bytes.prefix(1024).firstIndex(of: 0x0a) else { throw .unterminatedHeader }
        let line = String(decoding: bytes[signature.count..<newline], as: UTF8.self)
        var width: Int?, height: Int?
        var header = Y4MHeader(width: 0, height: 0)
        for token in line.split(separator: " ") {
            guard let tag = token.first else { continue }
            let value = String(token.dropFirst())
            switch tag {
            case "W": width = Int(value)
                guard width != nil else { throw .invalidParameter(String(token)) }
            case "H": height = Int(value)
                guard height != nil else { throw .invalidParameter(String(token)) }
            case "F":
                let parts = value.split(separator: ":")
                guard parts.count == 2, let n = Int(parts[0]), let d = Int(parts[1]), n > 0, d > 0 else {
                    throw .invalidParameter(String(token))
                }
                header.frameRateNumerator = n; header.frameRateDenominator = d
            case "I": header.interlace = value
            case "A": header.aspect = value
            case "C":
                guard Y4MHeader.supportedColorspaces.contains(value) else { throw .unsupportedColorspace(value) }
                header.colorspace = value
            default: break // X (comments/extensions) and unknown tags are ignored
            }
        }
        guard let width, let height else { throw .missingDimensions }
        guard (1...16_384).contains(width), (1...16_384).contains(height) else {
            throw .invalidParameter("W\(width) H\(height)")
        }
        header.width = width; header.height = height
        self.header = header
        offset = newline + 1
    }

    /// Reads the next picture into `frame` (which must have the header's
    /// size). Returns false at a clean end of data.
    public mutating func nextFrame(into frame: inout I420Frame) throws(Y4MError) -> Bool {
        guard offset < bytes.count else { return false }
        guard frame.width == header.width, frame.height == header.height else { throw .frameSizeMismatch }
        // "FRAME" then optional parameters up to a newline.
        let marker: [UInt8] = [0x46, 0x52, 0x41, 0x4d, 0x45]
        guard bytes.count - offset >= marker.count else { throw .truncatedFrame(index: framesRead) }
        for i in 0..<marker.count where bytes[offset + i] != marker[i] { throw .badFrameMarker(index: framesRead) }
        var p = offset + marker.count
        while p < bytes.count, bytes[p] != 0x0a, p - offset < 1024 { p += 1 }
        guard p < bytes.count, bytes[p] == 0x0a else { throw .truncatedFrame(index: framesRead) }
        p += 1
        guard bytes.count - p >= header.frameByteCount else { throw .truncatedFrame(index: framesRead) }
        bytes.withUnsafeBufferPointer { frame.copy(packed: $0.baseAddress! + p) }
        offset = p + header.frameByteCount
        framesRead += 1
        return true
    }
}

public enum Y4MWriter {
    /// Appends `FRAME\n` and the packed planes of `frame` to `out`.
    public static func appendFrame(_ frame: I420Frame, to out: inout [UInt8]) {
        out.append(contentsOf: [0x46, 0x52, 0x41, 0x4d, 0x45, 0x0a])
        frame.withView { view in
            func plane(_ p: UnsafePointer<UInt8>, _ stride: Int, _ w: Int, _ h: Int) {
                for row in 0..<h { out.append(contentsOf: UnsafeBufferPointer(start: p + row * stride, count: w)) }
            }
            plane(view.y, view.strideY, view.width, view.height)
            plane(view.u, view.strideU, view.chromaWidth, view.chromaHeight)
            plane(view.v, view.strideV, view.chromaWidth, view.chromaHeight)
        }
    }
}

/// Writes a Y4M file picture by picture.
public final class Y4MFileWriter {
    private let sink: FileSink
    private let header: Y4MHeader
    private var scratch: [UInt8] = []

    public init(path: String, header: Y4MHeader) throws(FileIOError) {
        sink = try FileSink(path: path)
        self.header = header
        try sink.write(header.serialized())
        scratch.reserveCapacity(header.frameByteCount + 6)
    }

    public func write(_ frame: I420Frame) throws(FileIOError) {
        scratch.removeAll(keepingCapacity: true)
        Y4MWriter.appendFrame(frame, to: &scratch)
        try sink.write(scratch)
    }

    public func finish() { sink.close() }
}
