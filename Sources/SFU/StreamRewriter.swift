import RTCBase
import RTP

/// Maps one publisher source onto one subscriber stream's numbering: its
/// own sequence numbers, timestamps and VP8 PictureID/TL0PICIDX, offset from
/// the source's so that a change of source (a new SSRC after the publisher
/// renegotiated, a simulcast layer switch) or a stretch the SFU did not
/// forward continues the subscriber's stream without a jump its decoder
/// would take for loss or a wrap (RFC 3550 §5.1, RFC 7741 §4.2).
struct StreamRewriter {
    /// The source the offsets apply to; a packet from another one rebases.
    private(set) var sourceSSRC: SSRC?
    private var seqOffset: UInt16 = 0
    fileprivate var tsOffset: UInt32 = 0
    private var pictureIDOffset: UInt16 = 0
    private var tl0Offset: UInt8 = 0
    /// The highest output values so far, and when the packet that set
    /// `lastTimestamp` was forwarded.
    private(set) var lastSequence: UInt16
    private(set) var lastTimestamp: UInt32
    private(set) var lastForwardedAt: Instant?
    private var lastPictureID: UInt16?
    private var lastTL0: UInt8?
    private var highestSourceSequence: UInt16 = 0
    /// Output sequence numbers below this belong to an earlier source.
    private(set) var epochStart: UInt16 = 0
    let clockRate: UInt32

    /// `initialSequence`/`initialTimestamp`: random starting points (RFC 3550 §5.1).
    init(clockRate: UInt32, initialSequence: UInt16, initialTimestamp: UInt32) {
        self.clockRate = clockRate
        lastSequence = initialSequence &- 1
        lastTimestamp = initialTimestamp
    }

    /// True once any packet went out.
    var started: Bool { lastForwardedAt != nil }

    /// The output sequence number and timestamp for a source packet, and
    /// whether it continues the current source (false: it rebased).
    @inline(__always)
    mutating func map(ssrc: SSRC, sequence: UInt16, timestamp: UInt32, now: Instant) -> (sequence: UInt16, timestamp: UInt32) {
        if sourceSSRC != ssrc { rebase(ssrc: ssrc, sequence: sequence, timestamp: timestamp, now: now) }
        let outSeq = sequence &+ seqOffset
        let outTs = timestamp &+ tsOffset
        if SequenceNumber(sequence).isNewer(than: SequenceNumber(highestSourceSequence)) {
            highestSourceSequence = sequence
            lastSequence = outSeq
        }
        if Int32(bitPattern: outTs &- lastTimestamp) > 0 || lastForwardedAt == nil {
            lastTimestamp = outTs
        }
        lastForwardedAt = now
        return (outSeq, outTs)
    }

    /// The source sequence number an output sequence number stood for, if it
    /// belongs to the current source (for answering NACKs from the cache).
    @inline(__always)
    func sourceSequence(forOutput outSeq: UInt16) -> UInt16? {
        guard sourceSSRC != nil else { return nil }
        // Within the current epoch: at or after its start, not after the last.
        let sinceStart = outSeq &- epochStart
        let untilLast = lastSequence &- outSeq
        guard sinceStart < 0x8000, untilLast < 0x8000 else { return nil }
        return outSeq &- seqOffset
    }

    private mutating func rebase(ssrc: SSRC, sequence: UInt16, timestamp: UInt32, now: Instant) {
        let nextSeq = lastSequence &+ 1
        seqOffset = nextSeq &- sequence
        epochStart = nextSeq
        highestSourceSequence = sequence &- 1
        // The new source starts one frame interval (or the real elapsed
        // time) after what the subscriber saw last.
        var advance: UInt32 = clockRate / 30
        if let at = lastForwardedAt {
            let elapsed = UInt32(clamping: (now - at).nanoseconds / 1000 * Int64(clockRate) / 1_000_000)
            advance = max(advance, elapsed)
        }
        tsOffset = (lastTimestamp &+ advance) &- timestamp
        sourceSSRC = ssrc
        // PictureID and TL0PICIDX rebase at the next VP8 packet.
        pictureIDRebase = true
    }

    fileprivate var pictureIDRebase = true

    /// Rewrites PictureID and TL0PICIDX of a VP8 payload descriptor in place
    /// so they continue across sources (a 7-bit field wraps at 128, a 15-bit
    /// one at 32768).
    @inline(__always)
    mutating func rewriteVP8(_ payload: UnsafeMutableRawBufferPointer) {
        guard let layout = try? VP8DescriptorLayout(parsing: UnsafeRawBufferPointer(payload)) else { return }
        let raw = UnsafeRawBufferPointer(payload)
        let pid = layout.pictureID(in: raw)
        let tl0 = layout.tl0PicIndex(in: raw)
        if pictureIDRebase, pid != nil || tl0 != nil {
            if let pid { pictureIDOffset = lastPictureID.map { ($0 &+ 1) &- pid } ?? 0 }
            if let tl0 { tl0Offset = lastTL0.map { ($0 &+ 1) &- tl0 } ?? 0 }
            pictureIDRebase = false
        }
        if let pid {
            let mask: UInt16 = layout.longPictureID ? 0x7FFF : 0x7F
            let out = (pid &+ pictureIDOffset) & mask
            try? layout.setPictureID(out, in: payload)
            // Keep the newest (a reordered packet must not pull it back).
            if lastPictureID.map({ ((out &- $0) & mask) <= (mask >> 1) }) ?? true { lastPictureID = out }
        }
        if let tl0 {
            let out = tl0 &+ tl0Offset
            try? layout.setTL0PicIndex(out, in: payload)
            if lastTL0.map({ out &- $0 < 0x80 }) ?? true { lastTL0 = out }
        }
    }
}

extension StreamRewriter {
    /// As `rewriteVP8`, for a retransmission: the same offsets, no state change.
    @inline(__always)
    func replayVP8(_ payload: UnsafeMutableRawBufferPointer) {
        var copy = self
        copy.pictureIDRebase = false
        copy.rewriteVP8(payload)
    }

    /// The output timestamp of a source timestamp in the current epoch.
    @inline(__always)
    func outputTimestamp(forSource timestamp: UInt32) -> UInt32 { timestamp &+ tsOffset }
}

/// RTP header extension ids a subscriber negotiated (RFC 8285), by what
/// the SFU writes into forwarded packets; 0 when not negotiated.
struct ForwardedExtensions: Equatable {
    var mid: UInt8 = 0
    var absSendTime: UInt8 = 0
    var transportCC: UInt8 = 0
    var audioLevel: UInt8 = 0
}

/// Writes forwarded RTP packets: a fresh header in the subscriber's terms
/// (its SSRC, payload type, sequence number, timestamp and one-byte header
/// extensions with the ids it negotiated: mid, abs-send-time, transport-cc
/// and the source's audio level), then the source payload with padding
/// stripped. The caller protects the result in place.
enum ForwardedPacketWriter {
    /// Bytes a forwarded header may add beyond the source payload.
    static let maxHeader = 12 + 4 + (1 + 16) + (1 + 3) + (1 + 2) + (1 + 1) + 3

    @inline(__always)
    static func write(into out: UnsafeMutableRawBufferPointer, marker: Bool, payloadType: UInt8, sequence: UInt16,
                      timestamp: UInt32, ssrc: SSRC, extensions ids: ForwardedExtensions, mid: UnsafeRawBufferPointer,
                      absSendTime: AbsSendTime, transportSequence: UInt16, audioLevel: UInt8?,
                      prefix: UInt16? = nil, payload: UnsafeRawBufferPointer) -> Int? {
        let needed = maxHeader + 2 + payload.count
        guard out.count >= needed else { return nil }
        out[1] = (marker ? 0x80 : 0) | (payloadType & 0x7F)
        out.storeBytes(of: sequence.bigEndian, toByteOffset: 2, as: UInt16.self)
        out.storeBytes(of: timestamp.bigEndian, toByteOffset: 4, as: UInt32.self)
        out.storeBytes(of: ssrc.rawValue.bigEndian, toByteOffset: 8, as: UInt32.self)
        var o = 16
        if ids.mid != 0, mid.count > 0, mid.count <= 16 {
            out[o] = ids.mid << 4 | UInt8(mid.count - 1)
            for i in 0..<mid.count { out[o + 1 + i] = mid[i] }
            o += 1 + mid.count
        }
        if ids.absSendTime != 0 {
            out[o] = ids.absSendTime << 4 | 2
            let v = absSendTime.rawValue
            out[o + 1] = UInt8(truncatingIfNeeded: v >> 16)
            out[o + 2] = UInt8(truncatingIfNeeded: v >> 8)
            out[o + 3] = UInt8(truncatingIfNeeded: v)
            o += 4
        }
        if ids.transportCC != 0 {
            out[o] = ids.transportCC << 4 | 1
            out[o + 1] = UInt8(truncatingIfNeeded: transportSequence >> 8)
            out[o + 2] = UInt8(truncatingIfNeeded: transportSequence)
            o += 3
        }
        if ids.audioLevel != 0, let level = audioLevel {
            out[o] = ids.audioLevel << 4
            out[o + 1] = level
            o += 2
        }
        let headerEnd: Int
        if o == 16 {
            // No extensions: a bare 12-byte header.
            out[0] = 0x80
            headerEnd = 12
        } else {
            while (o - 16) % 4 != 0 {
                out[o] = 0
                o += 1
            }
            out[0] = 0x90
            out[12] = 0xBE
            out[13] = 0xDE
            out.storeBytes(of: UInt16((o - 16) / 4).bigEndian, toByteOffset: 14, as: UInt16.self)
            headerEnd = o
        }
        var p = headerEnd
        if let prefix {
            // RFC 4588 §4: the original sequence number leads an RTX payload.
            out.storeBytes(of: prefix.bigEndian, toByteOffset: p, as: UInt16.self)
            p += 2
        }
        if let base = payload.baseAddress, payload.count > 0 {
            (out.baseAddress! + p).copyMemory(from: base, byteCount: payload.count)
        }
        return p + payload.count
    }

    /// Where the payload starts in a packet `write` produced.
    @inline(__always)
    static func payloadOffset(_ packet: UnsafeRawBufferPointer) -> Int {
        (try? RTPHeaderLayout(parsing: packet).payloadOffset) ?? 12
    }
}
