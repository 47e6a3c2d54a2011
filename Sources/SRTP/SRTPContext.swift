import COpenSSL
import RTCBase

/// One direction of an SRTP session: protects what this side sends, or
/// unprotects what the peer sends, for every SSRC under one master key
/// (RFC 3711 §3.2; "ssrc any" in libsrtp terms).
///
/// DTLS-SRTP gives each side its own write key (RFC 5764 §4.2), so a session
/// has two contexts: one keyed with the local write key that only protects,
/// one keyed with the peer's that only unprotects. A context keeps outbound
/// and inbound per-SSRC state apart, so using one for both is also correct.
///
/// - Sender: per SSRC, the highest packet index sent; the ROC follows the
///   sequence number across wraps by the same estimate a receiver makes
///   (RFC 3711 Appendix A), so retransmissions with an older sequence number
///   keep their original index. Per SSRC, the next SRTCP index (from 0).
/// - Receiver: per SSRC, the highest authenticated index and a replay window
///   (RFC 3711 §3.3.2) of `replayWindowSize` packets, 1024 by default like
///   libwebrtc, which tolerates the reordering of paced video bursts. State
///   for a new SSRC is created only once its first packet authenticates, with
///   ROC 0 (§3.3.1); the SRTCP window starts at the first SRTCP index seen.
///
/// Header extensions are authenticated, not encrypted (no RFC 6904); RTP
/// padding is encrypted with the payload and left in place; no MKI.
/// Every failure throws before any state changes. Not thread-safe: one
/// context belongs to one session's event loop.
public final class SRTPContext {
    public let profile: SRTPProfile
    /// Packets the replay window covers (a power of two ≥ 64).
    public let replayWindowSize: Int

    private let rtp: PacketCipher
    private let rtcp: PacketCipher
    private let rtpTagLength: Int
    private let rtcpTagLength: Int

    private final class OutboundStream {
        var highestIndex: UInt64
        init(_ index: UInt64) { highestIndex = index }
    }

    private final class OutboundControlStream {
        var nextIndex: UInt32 = 0
    }

    private final class InboundStream {
        var window: ReplayWindow
        init(_ window: ReplayWindow) { self.window = window }
    }

    private var outboundRTP: [UInt32: OutboundStream] = [:]
    private var outboundRTCP: [UInt32: OutboundControlStream] = [:]
    private var inboundRTP: [UInt32: InboundStream] = [:]
    private var inboundRTCP: [UInt32: InboundStream] = [:]

    /// A context keyed with `masterKey` (session keys derived per RFC 3711
    /// §4.3 with key derivation rate 0, or RFC 7714 §11 for GCM).
    /// `replayWindowSize` is rounded up to a power of two, at least 64.
    public convenience init(
        profile: SRTPProfile, masterKey: SRTPMasterKey, replayWindowSize: Int = 1024
    ) throws(SRTPError) {
        try self.init(
            profile: profile,
            rtpKeys: KeyDerivation.sessionKeys(profile: profile, master: masterKey, rtcp: false),
            rtcpKeys: KeyDerivation.sessionKeys(profile: profile, master: masterKey, rtcp: true),
            replayWindowSize: replayWindowSize)
    }

    /// A context from session keys directly (the RFC test vectors start here).
    init(
        profile: SRTPProfile, rtpKeys: SessionKeys, rtcpKeys: SessionKeys, replayWindowSize: Int = 1024
    ) throws(SRTPError) {
        self.profile = profile
        var size = 64
        while size < min(replayWindowSize, 1 << 15) { size <<= 1 }
        self.replayWindowSize = size
        rtp = try PacketCipher(keys: rtpKeys, aead: profile.isAEAD)
        rtcp = try PacketCipher(keys: rtcpKeys, aead: profile.isAEAD)
        rtpTagLength = profile.rtpTagLength
        rtcpTagLength = profile.rtcpTagLength
    }

    // MARK: State queries

    /// The rollover counter of the highest index sent on `ssrc`.
    public func outboundRolloverCounter(for ssrc: SSRC) -> UInt32? {
        outboundRTP[ssrc.rawValue].map { UInt32(truncatingIfNeeded: $0.highestIndex >> 16) }
    }

    /// The rollover counter of the highest index received on `ssrc`.
    public func inboundRolloverCounter(for ssrc: SSRC) -> UInt32? {
        inboundRTP[ssrc.rawValue].map { UInt32(truncatingIfNeeded: $0.window.highest >> 16) }
    }

    /// Sets the next SRTCP index sent on `ssrc` (tests start at the RFC
    /// vector's index).
    func setNextOutboundRTCPIndex(_ index: UInt32, for ssrc: SSRC) {
        let stream = OutboundControlStream()
        stream.nextIndex = index
        outboundRTCP[ssrc.rawValue] = stream
    }

    /// Forgets all state for `ssrc` (a stream that ended), both directions.
    public func removeStream(_ ssrc: SSRC) {
        outboundRTP[ssrc.rawValue] = nil
        outboundRTCP[ssrc.rawValue] = nil
        inboundRTP[ssrc.rawValue] = nil
        inboundRTCP[ssrc.rawValue] = nil
    }

    // MARK: SRTP (RFC 3711 §3.1, RFC 7714 §8)

    /// Encrypts and authenticates the RTP packet in the first `length`
    /// octets of `buffer` in place and appends the tag; `buffer` must have
    /// `profile.rtpOverhead` spare octets after `length`.
    /// - Returns: the length of the SRTP packet.
    public func protectRTP(_ buffer: UnsafeMutableRawBufferPointer, length: Int) throws(SRTPError) -> Int {
        guard length >= 12, length <= buffer.count, let base = buffer.baseAddress else {
            throw .packetTooShort
        }
        let headerLength = try rtpHeaderLength(base, length)
        guard buffer.count - length >= rtpTagLength else { throw .bufferTooSmall }
        let sequence = loadUInt16(base, 2)
        let ssrc = loadUInt32(base, 8)

        let stream = outboundRTP[ssrc]
        var index = UInt64(sequence)
        if let stream {
            // A "too early" guess at ROC 0 only happens after a jump of more
            // than half the space at the very start; take the sender's word.
            index = estimateIndex(sequence: sequence, highest: stream.highestIndex) ?? index
        }
        guard index >> 48 == 0 else { throw .indexExhausted }
        let roc = UInt32(truncatingIfNeeded: index >> 16)

        let payload = base + headerLength
        let payloadLength = length - headerLength
        if rtp.isAEAD {
            // AAD is the whole header, CSRCs and extension included (§8.2).
            guard rtp.seal(
                ssrc: ssrc, index: index, aad: base, aadCount: headerLength,
                payload: payload, count: payloadLength, tag: base + length)
            else { throw .cryptoFailure }
        } else {
            guard rtp.counterMode(ssrc: ssrc, index: index, payload, count: payloadLength)
            else { throw .cryptoFailure }
            rtp.authenticate(base, count: length, rolloverCounter: roc)
            (base + length).copyMemory(from: rtp.digest, byteCount: rtpTagLength)
        }

        if let stream {
            if index > stream.highestIndex { stream.highestIndex = index }
        } else {
            outboundRTP[ssrc] = OutboundStream(index)
        }
        return length + rtpTagLength
    }

    /// Verifies and decrypts the SRTP packet in the first `length` octets of
    /// `buffer` in place. On any error the buffer and the state are unchanged.
    /// - Returns: the length of the RTP packet (the tag removed).
    public func unprotectRTP(_ buffer: UnsafeMutableRawBufferPointer, length: Int) throws(SRTPError) -> Int {
        guard length >= 12 + rtpTagLength, length <= buffer.count, let base = buffer.baseAddress else {
            throw .packetTooShort
        }
        let protectedLength = length - rtpTagLength
        let headerLength = try rtpHeaderLength(base, protectedLength)
        let sequence = loadUInt16(base, 2)
        let ssrc = loadUInt32(base, 8)

        let stream = inboundRTP[ssrc]
        var index = UInt64(sequence)
        if let stream {
            guard let estimate = estimateIndex(sequence: sequence, highest: stream.window.highest) else {
                throw .tooOld
            }
            guard estimate >> 48 == 0 else { throw .indexExhausted }
            index = estimate
            switch stream.window.check(index) {
            case .ahead, .inside: break
            case .replayed: throw .replayed
            case .tooOld: throw .tooOld
            }
        }
        let roc = UInt32(truncatingIfNeeded: index >> 16)

        let payload = base + headerLength
        let payloadLength = protectedLength - headerLength
        let tag = base + protectedLength
        if rtp.isAEAD {
            guard rtp.open(
                ssrc: ssrc, index: index, aad: base, aadCount: headerLength,
                payload: payload, count: payloadLength, tag: tag)
            else { throw .authenticationFailed }
        } else {
            // Verify before decrypting (RFC 3711 §3.3 step 5).
            rtp.authenticate(base, count: protectedLength, rolloverCounter: roc)
            guard rtp.digestMatches(tag, count: rtpTagLength) else { throw .authenticationFailed }
            guard rtp.counterMode(ssrc: ssrc, index: index, payload, count: payloadLength)
            else { throw .cryptoFailure }
        }

        if let stream {
            stream.window.accept(index)
        } else {
            inboundRTP[ssrc] = InboundStream(ReplayWindow(size: replayWindowSize, first: index))
        }
        return protectedLength
    }

    // MARK: SRTCP (RFC 3711 §3.4, RFC 7714 §9)

    /// Encrypts and authenticates the (compound) RTCP packet in place and
    /// appends E‖SRTCP index and the tag; `buffer` must have
    /// `profile.rtcpOverhead` spare octets after `length`. The SSRC is the
    /// sender SSRC of the first packet; the E bit is always set.
    /// - Returns: the length of the SRTCP packet.
    public func protectRTCP(_ buffer: UnsafeMutableRawBufferPointer, length: Int) throws(SRTPError) -> Int {
        guard length >= 8, length <= buffer.count, let base = buffer.baseAddress else {
            throw .packetTooShort
        }
        guard base.load(as: UInt8.self) >> 6 == 2 else { throw .malformedHeader }
        guard buffer.count - length >= rtcpTagLength + 4 else { throw .bufferTooSmall }
        let ssrc = loadUInt32(base, 4)

        let stream: OutboundControlStream
        if let existing = outboundRTCP[ssrc] {
            stream = existing
        } else {
            stream = OutboundControlStream()
            outboundRTCP[ssrc] = stream
        }
        let index = stream.nextIndex
        guard index < 0x8000_0000 else { throw .indexExhausted }
        let word = 0x8000_0000 | index

        let payload = base + 8
        let payloadLength = length - 8
        if rtcp.isAEAD {
            // Layout: header ‖ ciphertext ‖ tag ‖ E‖index; the AAD is the
            // 8-octet header followed by E‖index (RFC 7714 §9.2, §17).
            guard rtcp.seal(
                ssrc: ssrc, index: UInt64(index), aad: base, aadCount: 8, aadTail: word,
                payload: payload, count: payloadLength, tag: base + length)
            else { throw .cryptoFailure }
            (base + length + 16).storeBytes(of: word.bigEndian, as: UInt32.self)
        } else {
            guard rtcp.counterMode(ssrc: ssrc, index: UInt64(index), payload, count: payloadLength)
            else { throw .cryptoFailure }
            // Layout: header ‖ ciphertext ‖ E‖index ‖ tag; the tag covers
            // everything before it (RFC 3711 §3.4).
            (base + length).storeBytes(of: word.bigEndian, as: UInt32.self)
            rtcp.authenticate(base, count: length + 4, rolloverCounter: nil)
            (base + length + 4).copyMemory(from: rtcp.digest, byteCount: rtcpTagLength)
        }
        stream.nextIndex = index + 1
        return length + 4 + rtcpTagLength
    }

    /// Verifies and decrypts the SRTCP packet in place. On any error the
    /// buffer and the state are unchanged.
    /// - Returns: the length of the RTCP packet (trailer removed).
    public func unprotectRTCP(_ buffer: UnsafeMutableRawBufferPointer, length: Int) throws(SRTPError) -> Int {
        let trailer = rtcpTagLength + 4
        guard length >= 8 + trailer, length <= buffer.count, let base = buffer.baseAddress else {
            throw .packetTooShort
        }
        guard base.load(as: UInt8.self) >> 6 == 2 else { throw .malformedHeader }
        let rtcpLength = length - trailer
        let ssrc = loadUInt32(base, 4)
        let wordOffset = rtcp.isAEAD ? length - 4 : rtcpLength
        let word = loadUInt32(base, wordOffset)
        let encrypted = word & 0x8000_0000 != 0
        let index = UInt64(word & 0x7fff_ffff)

        let stream = inboundRTCP[ssrc]
        if let stream {
            switch stream.window.check(index) {
            case .ahead, .inside: break
            case .replayed: throw .replayed
            case .tooOld: throw .tooOld
            }
        }

        if rtcp.isAEAD {
            let tag = base + rtcpLength
            // With E clear nothing is encrypted and the whole packet is AAD
            // (RFC 7714 §9.3).
            let aadCount = encrypted ? 8 : rtcpLength
            guard rtcp.open(
                ssrc: ssrc, index: index, aad: base, aadCount: aadCount, aadTail: word,
                payload: base + 8, count: encrypted ? rtcpLength - 8 : 0, tag: tag)
            else { throw .authenticationFailed }
        } else {
            rtcp.authenticate(base, count: rtcpLength + 4, rolloverCounter: nil)
            guard rtcp.digestMatches(base + rtcpLength + 4, count: rtcpTagLength) else {
                throw .authenticationFailed
            }
            if encrypted {
                guard rtcp.counterMode(ssrc: ssrc, index: index, base + 8, count: rtcpLength - 8)
                else { throw .cryptoFailure }
            }
        }

        if let stream {
            stream.window.accept(index)
        } else {
            inboundRTCP[ssrc] = InboundStream(ReplayWindow(size: replayWindowSize, first: index))
        }
        return rtcpLength
    }

    // MARK: Array conveniences (allocate; for tests and cold paths)

    public func protectRTP(_ packet: [UInt8]) throws(SRTPError) -> [UInt8] {
        try transform(packet, extra: profile.rtpOverhead) { (b, n) throws(SRTPError) in try protectRTP(b, length: n) }
    }

    public func unprotectRTP(_ packet: [UInt8]) throws(SRTPError) -> [UInt8] {
        try transform(packet, extra: 0) { (b, n) throws(SRTPError) in try unprotectRTP(b, length: n) }
    }

    public func protectRTCP(_ packet: [UInt8]) throws(SRTPError) -> [UInt8] {
        try transform(packet, extra: profile.rtcpOverhead) { (b, n) throws(SRTPError) in try protectRTCP(b, length: n) }
    }

    public func unprotectRTCP(_ packet: [UInt8]) throws(SRTPError) -> [UInt8] {
        try transform(packet, extra: 0) { (b, n) throws(SRTPError) in try unprotectRTCP(b, length: n) }
    }

    private func transform(
        _ packet: [UInt8], extra: Int,
        _ body: (UnsafeMutableRawBufferPointer, Int) throws(SRTPError) -> Int
    ) throws(SRTPError) -> [UInt8] {
        var out = packet
        out.append(contentsOf: repeatElement(0, count: extra))
        var result: Result<Int, SRTPError> = .failure(.packetTooShort)
        out.withUnsafeMutableBytes { bytes in
            result = Result { () throws(SRTPError) in try body(bytes, packet.count) }
        }
        let length = try result.get()
        out.removeLast(out.count - length)
        return out
    }

    // MARK: Header parsing

    /// Length of the RTP header with its CSRC list and header extension
    /// (RFC 3550 §5.1, §5.3.1), checked to lie within `length`.
    @inline(__always)
    private func rtpHeaderLength(_ base: UnsafeMutableRawPointer, _ length: Int) throws(SRTPError) -> Int {
        guard length >= 12 else { throw .packetTooShort }
        let first = base.load(as: UInt8.self)
        guard first >> 6 == 2 else { throw .malformedHeader }
        var headerLength = 12 + 4 * Int(first & 0x0f)
        if first & 0x10 != 0 {
            guard headerLength + 4 <= length else { throw .malformedHeader }
            headerLength += 4 + 4 * Int(loadUInt16(base, headerLength + 2))
        }
        guard headerLength <= length else { throw .malformedHeader }
        return headerLength
    }
}

@inline(__always)
private func loadUInt16(_ base: UnsafeMutableRawPointer, _ offset: Int) -> UInt16 {
    UInt16(bigEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
}

@inline(__always)
private func loadUInt32(_ base: UnsafeMutableRawPointer, _ offset: Int) -> UInt32 {
    UInt32(bigEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
}
