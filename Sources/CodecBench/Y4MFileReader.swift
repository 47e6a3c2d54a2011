#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Codecs

/// Reads a Y4M file picture by picture through one reused buffer, like
/// vpxenc does, so Parley's file→file timing does not pay for loading the
/// whole file (hundreds of MB at 720p) before the first frame. The header
/// is parsed by Codecs' `Y4MReader`.
final class Y4MFileReader {
    let header: Y4MHeader
    private let file: UnsafeMutablePointer<FILE>
    private var chunk: [UInt8]

    init(path: String) throws(CodecBenchError) {
        guard let file = fopen(path, "rb") else { throw .file(.open(path: path, errno: errno)) }
        var line: [UInt8] = []
        while line.count < 1024 {
            let c = getc(file)
            guard c != EOF else { break }
            line.append(UInt8(c))
            if c == 0x0a { break }
        }
        do { header = try Y4MReader(bytes: line).header } catch {
            fclose(file)
            throw .input("\(path): \(error)")
        }
        self.file = file
        chunk = [UInt8](repeating: 0, count: header.frameByteCount)
    }

    deinit { fclose(file) }

    /// Reads the next picture into `frame` (the header's size); false at the end.
    func nextFrame(into frame: inout I420Frame) throws(CodecBenchError) -> Bool {
        // "FRAME" and optional parameters up to the newline.
        var marker = 0
        while true {
            let c = getc(file)
            if c == EOF { if marker == 0 { return false } else { throw .input("truncated Y4M frame header") } }
            marker += 1
            if c == 0x0a { break }
            if marker > 1024 { throw .input("Y4M frame header too long") }
        }
        let want = chunk.count
        let got = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, want, file) }
        guard got == want else { throw .input("truncated Y4M frame") }
        chunk.withUnsafeBufferPointer { frame.copy(packed: $0.baseAddress!) }
        return true
    }
}
