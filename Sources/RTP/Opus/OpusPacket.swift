/// Errors of Opus packet validation (RFC 6716 §3.4).
public enum OpusError: Error, Sendable, Equatable {
    /// R1: a packet has at least the TOC byte.
    case empty
    /// R2/R6/R7: a frame longer than 1275 bytes.
    case frameTooLong
    /// R3: a code 1 packet whose remaining length is odd.
    case oddLengthCode1
    /// R4/R7: a frame length byte is missing, or lengths exceed the packet.
    case badFrameLength
    /// R5: code 3 without a frame count byte, with M = 0, or over 120 ms.
    case badFrameCount
    /// R6/R7: padding longer than the packet.
    case badPadding
    /// R6: a CBR code 3 packet whose data does not split into M equal frames.
    case unevenCBR
}

/// Coding mode from the TOC config (RFC 6716 §3.1, Table 2).
public enum OpusMode: Sendable, Equatable {
    case silk, hybrid, celt
}

/// Audio bandwidth from the TOC config.
public enum OpusBandwidth: Sendable, Equatable {
    case narrowband, mediumband, wideband, superWideband, fullband
}

/// The TOC byte (RFC 6716 §3.1): `config(5) | s(1) | c(2)`.
@frozen
public struct OpusTOC: Sendable, Equatable {
    public let rawValue: UInt8

    @inlinable public init(_ rawValue: UInt8) { self.rawValue = rawValue }

    /// 0–31.
    @inlinable public var config: UInt8 { rawValue >> 3 }
    @inlinable public var isStereo: Bool { rawValue & 0x04 != 0 }
    /// The frame count code c, 0–3 (§3.2).
    @inlinable public var frameCountCode: UInt8 { rawValue & 0x03 }

    public var mode: OpusMode {
        switch config {
        case 0...11: return .silk
        case 12...15: return .hybrid
        default: return .celt
        }
    }

    public var bandwidth: OpusBandwidth {
        switch config {
        case 0...3, 16...19: return .narrowband
        case 4...7: return .mediumband
        case 8...11, 20...23: return .wideband
        case 12...13, 24...27: return .superWideband
        default: return .fullband
        }
    }

    /// Duration of one frame in 48 kHz samples (2.5 ms = 120), per Table 2:
    /// SILK 10/20/40/60 ms, Hybrid 10/20 ms, CELT 2.5/5/10/20 ms.
    @inlinable public var samplesPerFrame: Int {
        let c = Int(config)
        if c < 12 {
            switch c & 3 {
            case 0: return 480
            case 1: return 960
            case 2: return 1920
            default: return 2880
            }
        }
        if c < 16 { return (c & 1) == 0 ? 480 : 960 }
        return 120 << (c & 3)
    }
}

/// What the TOC and frame-count bytes of one Opus packet say, checked
/// against RFC 6716 §3.4 rules R1–R7. Parsing does not allocate.
@frozen
public struct OpusPacketInfo: Sendable, Equatable {
    public let toc: OpusTOC
    /// Number of frames, 1–48.
    public let frameCount: Int
    /// Code 3 only: frames have individual lengths (v bit).
    public let isVBR: Bool
    /// Code 3 only: padding bytes at the end, the length bytes not included.
    public let paddingLength: Int

    /// Duration of the packet in 48 kHz samples.
    @inlinable public var samples: Int { frameCount * toc.samplesPerFrame }
    /// Duration in microseconds.
    @inlinable public var durationMicroseconds: Int { samples * 1000 / 48 }

    @usableFromInline
    init(toc: OpusTOC, frameCount: Int, isVBR: Bool, paddingLength: Int) {
        self.toc = toc
        self.frameCount = frameCount
        self.isVBR = isVBR
        self.paddingLength = paddingLength
    }

    public init(parsing b: UnsafeRawBufferPointer) throws(OpusError) {
        guard let first = b.first else { throw .empty }
        let toc = OpusTOC(first)
        let n = b.count
        switch toc.frameCountCode {
        case 0:
            // One frame filling the rest (R2).
            guard n - 1 <= 1275 else { throw .frameTooLong }
            self.init(toc: toc, frameCount: 1, isVBR: false, paddingLength: 0)
        case 1:
            // Two frames of equal size (R3).
            guard (n - 1) % 2 == 0 else { throw .oddLengthCode1 }
            guard (n - 1) / 2 <= 1275 else { throw .frameTooLong }
            self.init(toc: toc, frameCount: 2, isVBR: false, paddingLength: 0)
        case 2:
            // Two frames; the first's length is coded (R4).
            var offset = 1
            let first = try Self.frameLength(b, &offset)
            guard first <= n - offset else { throw .badFrameLength }
            guard n - offset - first <= 1275 else { throw .frameTooLong }
            self.init(toc: toc, frameCount: 2, isVBR: false, paddingLength: 0)
        default:
            self = try Self.parseCode3(b, toc: toc)
        }
    }

    public init(parsing bytes: [UInt8]) throws(OpusError) {
        self = try withBytes(bytes) { (b) throws(OpusError) in try OpusPacketInfo(parsing: b) }
    }

    /// Code 3 (§3.2.5): a frame count byte `v|p|M(6)`, optional padding
    /// length bytes, then CBR frames or VBR frame lengths.
    private static func parseCode3(_ b: UnsafeRawBufferPointer, toc: OpusTOC) throws(OpusError) -> OpusPacketInfo {
        let n = b.count
        guard n >= 2 else { throw .badFrameCount }
        let countByte = b[1]
        let m = Int(countByte & 0x3F)
        // R5: at least one frame, and at most 120 ms of audio (5760 samples).
        guard m >= 1, m * toc.samplesPerFrame <= 5760 else { throw .badFrameCount }
        var offset = 2
        var padding = 0
        if countByte & 0x40 != 0 {
            // Each 255 adds 254 and another length byte follows (§3.2.5).
            while true {
                guard offset < n else { throw .badPadding }
                let p = Int(b[offset])
                offset += 1
                if p == 255 {
                    padding += 254
                } else {
                    padding += p
                    break
                }
            }
        }
        guard padding <= n - offset else { throw .badPadding }
        let vbr = countByte & 0x80 != 0
        if vbr {
            // R7: M-1 coded lengths, the last frame takes what is left.
            var total = 0
            for _ in 0..<(m - 1) {
                total += try Self.frameLength(b, &offset)
            }
            let available = n - offset - padding
            guard available >= 0, total <= available else { throw .badFrameLength }
            guard available - total <= 1275 else { throw .frameTooLong }
        } else {
            // R6: the remainder splits into M equal frames.
            let data = n - offset - padding
            guard data % m == 0 else { throw .unevenCBR }
            guard data / m <= 1275 else { throw .frameTooLong }
        }
        return OpusPacketInfo(toc: toc, frameCount: m, isVBR: vbr, paddingLength: padding)
    }

    /// A frame length (§3.2.1): one byte 0–251, or two bytes
    /// `first + 4 * second` for 252–1275.
    private static func frameLength(_ b: UnsafeRawBufferPointer, _ offset: inout Int) throws(OpusError) -> Int {
        guard offset < b.count else { throw .badFrameLength }
        let first = Int(b[offset])
        offset += 1
        guard first >= 252 else { return first }
        guard offset < b.count else { throw .badFrameLength }
        let second = Int(b[offset])
        offset += 1
        return first + 4 * second
    }

    /// True for the 1–2 byte packets an Opus encoder sends during
    /// discontinuous transmission (silence), which carry no audio frame data.
    @inlinable
    public static func isDTX(_ packet: UnsafeRawBufferPointer) -> Bool {
        packet.count <= 2
    }
}

/// RTP payload format for Opus (RFC 7587): the payload is exactly one Opus
/// packet, and the timestamp advances by its duration at 48 kHz (§4.1),
/// whatever the actual sample rate.
public struct OpusPacketizer: Sendable {
    /// RTP timestamp for the next packet.
    public var timestamp: UInt32
    private var inDTX = false

    public init(timestamp: UInt32 = 0) { self.timestamp = timestamp }

    /// Validates one Opus packet and returns the RTP timestamp and marker to
    /// send it with. The marker is set on the first packet after DTX (the
    /// start of a talkspurt, RFC 7587 §4.2 referring to RFC 3551 §4.1).
    public mutating func packetize(_ packet: UnsafeRawBufferPointer) throws(OpusError) -> (timestamp: UInt32, marker: Bool) {
        let info = try OpusPacketInfo(parsing: packet)
        let dtx = OpusPacketInfo.isDTX(packet)
        let marker = inDTX && !dtx
        inDTX = dtx
        defer { timestamp &+= UInt32(info.samples) }
        return (timestamp, marker)
    }
}

/// The receive side: checks the payload is a valid Opus packet and reports
/// its duration; the payload itself is handed to the decoder as is.
public enum OpusDepacketizer {
    public static func depacketize(_ payload: UnsafeRawBufferPointer) throws(OpusError) -> OpusPacketInfo {
        try OpusPacketInfo(parsing: payload)
    }
}
