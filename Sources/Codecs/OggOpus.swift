/// Ogg encapsulation of Opus (RFC 7845) over Ogg pages (RFC 3533).
///
/// Page layout (RFC 3533 §6): "OggS", version 0, header type (0x01
/// continued packet, 0x02 beginning of stream, 0x04 end of stream), 64-bit
/// granule position, serial number, page sequence number, CRC-32, segment
/// count, lacing values, then the segments. A packet is split into
/// 255-byte lacing values ending with one below 255.

/// The Ogg CRC-32: polynomial 0x04c11db7, MSB first, initial value 0, no
/// final XOR, computed over the whole page with the CRC field zeroed
/// (RFC 3533 §6).
let oggCRCTable: [UInt32] = (0..<256).map { i in
    var r = UInt32(i) << 24
    for _ in 0..<8 { r = r & 0x8000_0000 != 0 ? (r << 1) ^ 0x04c1_1db7 : r << 1 }
    return r
}

@inline(__always)
func oggCRCUpdate(_ crc: UInt32, _ byte: UInt8) -> UInt32 {
    (crc << 8) ^ oggCRCTable[Int((crc >> 24) ^ UInt32(byte))]
}

/// The identification header (RFC 7845 §5.1).
public struct OpusHead: Sendable, Equatable {
    public var version: Int = 1
    public var channels: Int
    /// Samples at 48 kHz to discard from the decoder output start (the
    /// encoder's lookahead).
    public var preSkip: Int
    /// The original input rate, informational only.
    public var inputSampleRate: Int
    /// Q7.8 dB gain to apply on output.
    public var outputGain: Int16 = 0
    /// 0: mono/stereo, no mapping table.
    public var mappingFamily: Int = 0

    public init(channels: Int, preSkip: Int, inputSampleRate: Int = 48_000) {
        self.channels = channels; self.preSkip = preSkip; self.inputSampleRate = inputSampleRate
    }

    public func serialized() -> [UInt8] {
        var out: [UInt8] = []
        out.appendASCII("OpusHead")
        out.append(1)
        out.append(UInt8(truncatingIfNeeded: channels))
        out.appendLE16(UInt16(truncatingIfNeeded: preSkip))
        out.appendLE32(UInt32(truncatingIfNeeded: inputSampleRate))
        out.appendLE16(UInt16(bitPattern: outputGain))
        out.append(0)
        return out
    }

    init(parsing p: [UInt8]) throws(OggOpusError) {
        var r = LEReader(p)
        guard p.count >= 19, r.matches("OpusHead", at: 0) else { throw .badOpusHead }
        r.offset = 8
        guard let v = r.u8(), let ch = r.u8(), let skip = r.u16(), let rate = r.u32(), let gain = r.u16(),
              let family = r.u8() else { throw .badOpusHead }
        // §5.1: a major version other than 0 (upper nibble) is incompatible.
        guard v & 0xf0 == 0 else { throw .unsupportedVersion(Int(v)) }
        guard ch >= 1 else { throw .badOpusHead }
        if family == 0 { guard ch <= 2 else { throw .badOpusHead } } else {
            // Families 1 and 255 carry stream count, coupled count and a mapping table.
            guard p.count >= 21 + Int(ch) else { throw .badOpusHead }
        }
        version = Int(v); channels = Int(ch); preSkip = Int(skip); inputSampleRate = Int(rate)
        outputGain = Int16(bitPattern: gain); mappingFamily = Int(family)
    }
}

/// The comment header (RFC 7845 §5.2).
public struct OpusTags: Sendable, Equatable {
    public var vendor: String
    public var comments: [String]

    public init(vendor: String = "Parley", comments: [String] = []) { self.vendor = vendor; self.comments = comments }

    public func serialized() -> [UInt8] {
        var out: [UInt8] = []
        out.appendASCII("OpusTags")
        out.appendLE32(UInt32(vendor.utf8.count))
        out.append(contentsOf: vendor.utf8)
        out.appendLE32(UInt32(comments.count))
        for c in comments { out.appendLE32(UInt32(c.utf8.count)); out.append(contentsOf: c.utf8) }
        return out
    }

    init(parsing p: [UInt8]) throws(OggOpusError) {
        var r = LEReader(p)
        guard r.matches("OpusTags", at: 0) else { throw .badOpusTags }
        r.offset = 8
        guard let vlen = r.u32(), let vendorBytes = r.take(Int(vlen)), let count = r.u32() else { throw .badOpusTags }
        vendor = String(decoding: vendorBytes, as: UTF8.self)
        comments = []
        for _ in 0..<count {
            guard let len = r.u32(), let bytes = r.take(Int(len)) else { throw .badOpusTags }
            comments.append(String(decoding: bytes, as: UTF8.self))
        }
    }
}

public enum OggOpusError: Error, Sendable, Equatable {
    case badCapturePattern(offset: Int)
    case unsupportedPageVersion(Int)
    /// A page header or body runs past the end of the data.
    case truncatedPage(offset: Int)
    case crcMismatch(pageSequence: Int)
    case missingOpusHead
    case badOpusHead
    case unsupportedVersion(Int)
    case missingOpusTags
    case badOpusTags
    /// Writer: an Opus packet cannot be larger than 255 × 254 bytes here
    /// (one page's segment table).
    case packetTooLarge
}

/// Builds an Ogg Opus stream in memory; output accumulates in `output`,
/// which a file writer drains. Pages hold whole packets, about one second
/// each (a page is flushed before the packet that would overflow the
/// 255-entry segment table or pass one second).
public struct OggOpusMuxer {
    public let head: OpusHead
    public let serialNumber: UInt32
    /// Bytes produced and not yet taken.
    public var output: [UInt8] = []
    private var pageSequence: UInt32 = 0
    private var granule: Int64
    private var pendingLacing: [UInt8] = []
    private var pendingBody: [UInt8] = []
    private var pendingSamples = 0
    private var finished = false

    /// Writes OpusHead (alone on the first page, BOS) and OpusTags (second
    /// page) as RFC 7845 §3 requires.
    public init(head: OpusHead, tags: OpusTags = OpusTags(), serialNumber: UInt32) {
        self.head = head
        self.serialNumber = serialNumber
        // Granule positions count decoder output samples at 48 kHz, pre-skip
        // included (RFC 7845 §4): the first sample to play is at granule
        // preSkip, and a page's granule is the output count up to the end of
        // its last completed packet.
        granule = 0
        pendingLacing.reserveCapacity(255)
        pendingBody.reserveCapacity(64 * 1024)
        writePage(headerType: 0x02, granule: 0, lacing: Self.lacing(for: head.serialized().count), body: head.serialized())
        let tagBytes = tags.serialized()
        writePage(headerType: 0, granule: 0, lacing: Self.lacing(for: tagBytes.count), body: tagBytes)
    }

    static func lacing(for size: Int) -> [UInt8] {
        Array(repeating: 255, count: size / 255) + [UInt8(size % 255)]
    }

    /// Adds one Opus packet that decodes to `samples` samples per channel
    /// at 48 kHz.
    public mutating func append(packet: UnsafeRawBufferPointer, samples: Int) throws(OggOpusError) {
        let segments = packet.count / 255 + 1
        guard segments <= 255 else { throw .packetTooLarge }
        if !pendingLacing.isEmpty && (pendingLacing.count + segments > 255 || pendingSamples >= 48_000) {
            flushPage(headerType: 0, granule: granule)
        }
        for _ in 0..<(packet.count / 255) { pendingLacing.append(255) }
        pendingLacing.append(UInt8(packet.count % 255))
        pendingBody.append(contentsOf: packet)
        pendingSamples += samples
        granule += Int64(samples)
    }

    public mutating func append(packet: [UInt8], samples: Int) throws(OggOpusError) {
        let result: Result<Void, OggOpusError> = packet.withUnsafeBytes { raw in
            do throws(OggOpusError) { try append(packet: raw, samples: samples); return .success(()) } catch {
                return .failure(error)
            }
        }
        try result.get()
    }

    /// Writes the last page with the end-of-stream flag. If
    /// `originalSampleCount` (per channel, of the encoder input) is given
    /// and the packets cover it, the last granule is set to
    /// `preSkip + originalSampleCount` so players drop the encoder's padding
    /// at the end (RFC 7845 §4.5). Encode enough trailing frames (at least
    /// `preSkip` extra samples) for the packets to cover the input.
    public mutating func finish(originalSampleCount: Int? = nil) {
        guard !finished else { return }
        finished = true
        var last = granule
        if let n = originalSampleCount {
            let trimmed = Int64(head.preSkip + n)
            // §4.5: end trimming may only cut into the final page's audio.
            let pageStart = granule - Int64(pendingSamples)
            if trimmed <= last && trimmed >= pageStart { last = trimmed }
        }
        flushPage(headerType: 0x04, granule: last)
    }

    private mutating func flushPage(headerType: UInt8, granule: Int64) {
        writePage(headerType: headerType, granule: granule, lacing: pendingLacing, body: pendingBody)
        pendingLacing.removeAll(keepingCapacity: true)
        pendingBody.removeAll(keepingCapacity: true)
        pendingSamples = 0
    }

    private mutating func writePage(headerType: UInt8, granule: Int64, lacing: [UInt8], body: [UInt8]) {
        let start = output.count
        output.appendASCII("OggS")
        output.append(0)
        output.append(headerType)
        output.appendLE64(UInt64(bitPattern: granule))
        output.appendLE32(serialNumber)
        output.appendLE32(pageSequence)
        output.appendLE32(0) // CRC, filled below
        output.append(UInt8(lacing.count))
        output.append(contentsOf: lacing)
        output.append(contentsOf: body)
        var crc: UInt32 = 0
        for i in start..<output.count { crc = oggCRCUpdate(crc, output[i]) }
        output.setLE32(crc, at: start + 22)
        pageSequence += 1
    }
}

public struct OggOpusPacket: Sendable, Equatable {
    public var bytes: [UInt8]
    /// Granule position of the page this packet ends on, if it is the last
    /// packet completed on that page.
    public var granulePosition: Int64?
}

/// A parsed Ogg Opus stream.
public struct OggOpusStream: Sendable, Equatable {
    public var head: OpusHead
    public var tags: OpusTags
    public var serialNumber: UInt32
    public var packets: [OggOpusPacket]
    /// Granule position of the last page with one (-1 if none).
    public var lastGranulePosition: Int64
    /// Whether the end-of-stream page was seen.
    public var isComplete: Bool
    public var pageCount: Int

    /// Playable samples per channel: last granule minus pre-skip.
    public var sampleCount: Int { max(0, Int(lastGranulePosition) - head.preSkip) }
    public var durationSeconds: Double { Double(sampleCount) / 48_000 }

    /// Parses a whole Ogg Opus file from memory, checking every page's CRC.
    /// Pages of other logical streams (other serial numbers) are skipped.
    public init(parsing bytes: [UInt8]) throws(OggOpusError) {
        var offset = 0
        var serial: UInt32? = nil
        var partial: [UInt8] = []
        var completed: [OggOpusPacket] = []
        var lastGranule: Int64 = -1
        var eos = false
        var pages = 0
        while offset < bytes.count {
            var r = LEReader(bytes, offset: offset)
            guard r.remaining >= 27 else { throw .truncatedPage(offset: offset) }
            guard r.matches("OggS", at: offset) else { throw .badCapturePattern(offset: offset) }
            r.offset += 4
            guard let version = r.u8(), let type = r.u8(), let granule = r.u64(), let pageSerial = r.u32(),
                  let sequence = r.u32(), let storedCRC = r.u32(), let segmentCount = r.u8() else {
                throw .truncatedPage(offset: offset)
            }
            guard version == 0 else { throw .unsupportedPageVersion(Int(version)) }
            guard let lacing = r.take(Int(segmentCount)) else { throw .truncatedPage(offset: offset) }
            let bodySize = lacing.reduce(0) { $0 + Int($1) }
            guard r.remaining >= bodySize else { throw .truncatedPage(offset: offset) }
            let pageEnd = r.offset + bodySize
            var crc: UInt32 = 0
            for i in offset..<pageEnd { crc = oggCRCUpdate(crc, (i >= offset + 22 && i < offset + 26) ? 0 : bytes[i]) }
            guard crc == storedCRC else { throw .crcMismatch(pageSequence: Int(sequence)) }
            defer { offset = pageEnd }
            if serial == nil { serial = pageSerial }
            guard pageSerial == serial else { continue }
            pages += 1
            if type & 0x01 == 0 { partial.removeAll() } // not a continuation: drop any unfinished packet
            var position = r.offset
            var lastCompletedIndex: Int? = nil
            for value in lacing {
                partial.append(contentsOf: bytes[position..<(position + Int(value))])
                position += Int(value)
                if value < 255 {
                    completed.append(OggOpusPacket(bytes: partial, granulePosition: nil))
                    lastCompletedIndex = completed.count - 1
                    partial.removeAll()
                }
            }
            let g = Int64(bitPattern: granule)
            if let i = lastCompletedIndex, g != -1 {
                completed[i].granulePosition = g
                lastGranule = g
            }
            if type & 0x04 != 0 { eos = true }
        }
        guard let first = completed.first else { throw .missingOpusHead }
        let head = try OpusHead(parsing: first.bytes)
        guard completed.count >= 2 else { throw .missingOpusTags }
        self.head = head
        self.tags = try OpusTags(parsing: completed[1].bytes)
        self.serialNumber = serial ?? 0
        self.packets = Array(completed.dropFirst(2))
        self.lastGranulePosition = lastGranule
        self.isComplete = eos
        self.pageCount = pages
    }
}

/// Writes an Ogg Opus file as packets arrive.
public final class OggOpusFileWriter {
    private let sink: FileSink
    private var muxer: OggOpusMuxer

    public init(path: String, head: OpusHead, tags: OpusTags = OpusTags(), serialNumber: UInt32 = 0x5041_524c)
        throws(FileIOError) {
        sink = try FileSink(path: path)
        muxer = OggOpusMuxer(head: head, tags: tags, serialNumber: serialNumber)
        try drain()
    }

    private func drain() throws(FileIOError) {
        guard !muxer.output.isEmpty else { return }
        try sink.write(muxer.output)
        muxer.output.removeAll(keepingCapacity: true)
    }

    public func write(packet: UnsafeRawBufferPointer, samples: Int) throws(OggOpusFileError) {
        do throws(OggOpusError) { try muxer.append(packet: packet, samples: samples) } catch { throw .format(error) }
        do throws(FileIOError) { try drain() } catch { throw .io(error) }
    }

    public func write(packet: [UInt8], samples: Int) throws(OggOpusFileError) {
        let result: Result<Void, OggOpusFileError> = packet.withUnsafeBytes { raw in
            do throws(OggOpusFileError) { try write(packet: raw, samples: samples); return .success(()) } catch {
                return .failure(error)
            }
        }
        try result.get()
    }

    public func finish(originalSampleCount: Int? = nil) throws(FileIOError) {
        muxer.finish(originalSampleCount: originalSampleCount)
        try drain()
        sink.close()
    }
}

public enum OggOpusFileError: Error, Sendable, Equatable {
    case format(OggOpusError)
    case io(FileIOError)
}
