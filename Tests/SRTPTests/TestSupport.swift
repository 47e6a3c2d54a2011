import RTCBase
import CSRTP
import Synchronization
@testable import SRTP

/// Octets from hex text; spaces and newlines are ignored.
func hex(_ text: String) -> [UInt8] {
    let digits = text.compactMap { $0.hexDigitValue }
    precondition(digits.count % 2 == 0, "odd hex length")
    return stride(from: 0, to: digits.count, by: 2).map { UInt8(digits[$0] << 4 | digits[$0 + 1]) }
}

/// Packet contents repeat run to run (RTCBase's SplitMix64).
typealias SeededGenerator = SplitMix64

extension SeededGenerator {
    mutating func bytes(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8.random(in: 0...255, using: &self) }
    }
}

/// An RTP packet (RFC 3550 §5.1) with optional CSRCs and a one-byte-header
/// extension (RFC 8285), for exercising header handling.
func makeRTP(
    sequence: UInt16, ssrc: UInt32, timestamp: UInt32 = 0x1234_5678, payloadType: UInt8 = 96,
    csrcs: [UInt32] = [], extensionWords: [UInt32]? = nil, payload: [UInt8]
) -> [UInt8] {
    var p: [UInt8] = []
    let x: UInt8 = extensionWords == nil ? 0 : 0x10
    p.append(0x80 | x | UInt8(csrcs.count))
    p.append(payloadType)
    p += be16(sequence)
    p += be32(timestamp)
    p += be32(ssrc)
    for c in csrcs { p += be32(c) }
    if let extensionWords {
        p += [0xBE, 0xDE]
        p += be16(UInt16(extensionWords.count))
        for w in extensionWords { p += be32(w) }
    }
    return p + payload
}

/// A sender report with `blocks` report blocks plus an SDES-like tail, as a
/// compound RTCP packet (RFC 3550 §6.4.1).
func makeRTCP(ssrc: UInt32, blocks: Int, tail: [UInt8]) -> [UInt8] {
    var p: [UInt8] = [0x80 | UInt8(blocks), 200]
    p += be16(UInt16(6 + 6 * blocks))
    p += be32(ssrc)
    p += [UInt8](repeating: 0x11, count: 20)
    for b in 0..<blocks { p += be32(UInt32(b)) + [UInt8](repeating: UInt8(b), count: 20) }
    var sdes: [UInt8] = [0x81, 202]
    let body = be32(ssrc) + tail
    let padded = body + [UInt8](repeating: 0, count: (4 - body.count % 4) % 4)
    sdes += be16(UInt16(padded.count / 4))
    return p + sdes + padded
}

func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(truncatingIfNeeded: v)] }
func be32(_ v: UInt32) -> [UInt8] {
    [UInt8(v >> 24), UInt8(truncatingIfNeeded: v >> 16), UInt8(truncatingIfNeeded: v >> 8), UInt8(truncatingIfNeeded: v)]
}

/// Errors of the libsrtp2 oracle, with its status code.
struct LibSRTPError: Error, Equatable {
    var status: UInt32
}

/// Debian's libsrtp2 as the reference implementation, one session per
/// direction with "ssrc any" like SRTPContext.
final class LibSRTP {
    private var session: srtp_t?
    /// libsrtp's crypto kernel is process-global: session creation is
    /// serialized.
    private static let lock = Mutex(())

    init(profile: SRTPProfile, masterKey: SRTPMasterKey, inbound: Bool, windowSize: Int = 1024) throws {
        var keyMaterial = masterKey.key + masterKey.salt
        var policy = srtp_policy_t()
        switch profile {
        case .aes128CMHMACSHA1_80:
            srtp_crypto_policy_set_rtp_default(&policy.rtp)
            srtp_crypto_policy_set_rtp_default(&policy.rtcp)
        case .aes128CMHMACSHA1_32:
            srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32(&policy.rtp)
            // RFC 5764 §4.1.2: SRTCP keeps the 80-bit tag.
            srtp_crypto_policy_set_rtp_default(&policy.rtcp)
        case .aeadAES128GCM:
            srtp_crypto_policy_set_aes_gcm_128_16_auth(&policy.rtp)
            srtp_crypto_policy_set_aes_gcm_128_16_auth(&policy.rtcp)
        }
        policy.ssrc.type = inbound ? ssrc_any_inbound : ssrc_any_outbound
        policy.window_size = UInt(windowSize)
        policy.allow_repeat_tx = 0
        var created: srtp_t?
        let status = keyMaterial.withUnsafeMutableBufferPointer { key in
            policy.key = key.baseAddress
            return Self.lock.withLock { _ in
                // A second srtp_init fails (libsrtp re-registers its debug
                // module), so the kernel is brought up only for srtp_create
                // and shut down again: sessions keep working (they point at
                // libsrtp's static cipher types), and other suites in the
                // process that init/shutdown libsrtp themselves see it idle.
                let initialized = srtp_init() == srtp_err_status_ok
                let status = srtp_create(&created, &policy)
                if initialized { _ = srtp_shutdown() }
                return status
            }
        }
        guard status == srtp_err_status_ok else { throw LibSRTPError(status: status.rawValue) }
        session = created
    }

    deinit {
        if let session { srtp_dealloc(session) }
    }

    func protectRTP(_ packet: [UInt8]) throws -> [UInt8] {
        try run(packet) { srtp_protect(session, $0, $1) }
    }

    func unprotectRTP(_ packet: [UInt8]) throws -> [UInt8] {
        try run(packet) { srtp_unprotect(session, $0, $1) }
    }

    func protectRTCP(_ packet: [UInt8]) throws -> [UInt8] {
        try run(packet) { srtp_protect_rtcp(session, $0, $1) }
    }

    func unprotectRTCP(_ packet: [UInt8]) throws -> [UInt8] {
        try run(packet) { srtp_unprotect_rtcp(session, $0, $1) }
    }

    private func run(
        _ packet: [UInt8],
        _ body: (UnsafeMutableRawPointer, UnsafeMutablePointer<Int32>) -> srtp_err_status_t
    ) throws -> [UInt8] {
        // libsrtp writes up to SRTP_MAX_TRAILER_LEN (+4 for SRTCP) past the end.
        var buffer = packet + [UInt8](repeating: 0, count: 64)
        var length = Int32(packet.count)
        let status = buffer.withUnsafeMutableBytes { body($0.baseAddress!, &length) }
        guard status == srtp_err_status_ok else { throw LibSRTPError(status: status.rawValue) }
        return Array(buffer[0..<Int(length)])
    }
}

/// A master key whose octets come from `seed`, sized for `profile`.
func masterKey(for profile: SRTPProfile, seed: UInt64) -> SRTPMasterKey {
    var rng = SeededGenerator(seed: seed)
    return SRTPMasterKey(key: rng.bytes(profile.masterKeyLength), salt: rng.bytes(profile.masterSaltLength))
}

/// Runs `body` on the array's storage in place (so tests can see that a
/// failed unprotect leaves the octets alone).
func inPlace(
    _ packet: inout [UInt8], _ body: (UnsafeMutableRawBufferPointer, Int) throws(SRTPError) -> Int
) throws(SRTPError) -> Int {
    let length = packet.count
    var result: Result<Int, SRTPError> = .failure(.packetTooShort)
    packet.withUnsafeMutableBytes { buffer in
        result = Result { () throws(SRTPError) in try body(buffer, length) }
    }
    return try result.get()
}
