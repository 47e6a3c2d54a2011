import BenchSRTP
import COpenSSL
import RTCBase
import SRTP

// The three SRTP implementations the benchmarks compare, each driven over a
// batch of packets laid out in one preallocated buffer, so that the timed
// loops do nothing but the per-packet crypto call: Parley's SRTPContext,
// libsrtp2 (the reference implementation, Debian's NSS-backed build) and the
// bare OpenSSL calls an SRTP transform cannot do without (the "ceiling").

/// Size of the RTP packets measured: header (12 octets, no CSRC, no
/// extension) plus payload.
public let rtpPacketSize = 1200
/// Stride of one packet in a batch: the packet plus room for any SRTP
/// trailer (libsrtp writes up to SRTP_MAX_TRAILER_LEN past the end).
public let slotSize = 1280
public let benchSSRC: UInt32 = 0x1234_5678

/// The two profiles WebRTC negotiates in practice.
public let benchProfiles: [SRTPProfile] = [.aes128CMHMACSHA1_80, .aeadAES128GCM]

extension SRTPProfile {
    /// The profile's name in the printout (libsrtp's spelling, lower case).
    public var benchName: String {
        switch self {
        case .aes128CMHMACSHA1_80: return "aes_cm_128_hmac_sha1_80"
        case .aes128CMHMACSHA1_32: return "aes_cm_128_hmac_sha1_32"
        case .aeadAES128GCM: return "aead_aes_128_gcm"
        }
    }
}

/// Fixtures are the same run to run (RTCBase's SplitMix64).
extension SplitMix64 {
    public mutating func bytes(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8(truncatingIfNeeded: next()) }
    }
}

/// A deterministic master key and salt sized for `profile`.
public func benchMasterKey(for profile: SRTPProfile) -> SRTPMasterKey {
    var rng = SplitMix64(seed: profile == .aeadAES128GCM ? 0x6C6D : 0x434D)
    return SRTPMasterKey(key: rng.bytes(profile.masterKeyLength), salt: rng.bytes(profile.masterSaltLength))
}

/// A plain RTP packet (RFC 3550 §5.1): V=2, PT 96, 12-octet header, random payload.
public func makePlainRTP(size: Int = rtpPacketSize, sequence: UInt16, ssrc: UInt32 = benchSSRC) -> [UInt8] {
    var rng = SplitMix64(seed: 7)
    var p = rng.bytes(size)
    p[0] = 0x80
    p[1] = 96
    p[2] = UInt8(sequence >> 8)
    p[3] = UInt8(truncatingIfNeeded: sequence)
    for i in 0..<4 { p[4 + i] = UInt8(truncatingIfNeeded: 0x0102_0304 >> (24 - 8 * i)) }
    for i in 0..<4 { p[8 + i] = UInt8(truncatingIfNeeded: ssrc >> (24 - 8 * i)) }
    return p
}

/// `count` packets back to back at a fixed stride, in one allocation made
/// up front, with their current lengths.
public final class PacketBatch {
    public let count: Int
    public let storage: UnsafeMutableRawBufferPointer
    public let lengths: UnsafeMutableBufferPointer<Int>
    private let template: UnsafeMutableRawBufferPointer
    /// The sequence number the next `fillPlain` starts at.
    public private(set) var nextSequence: UInt16 = 1

    public init(count: Int, packetSize: Int = rtpPacketSize) {
        self.count = count
        storage = .allocate(byteCount: count * slotSize, alignment: 64)
        storage.initializeMemory(as: UInt8.self, repeating: 0)
        lengths = .allocate(capacity: count)
        lengths.initialize(repeating: 0)
        let plain = makePlainRTP(size: packetSize, sequence: 0)
        template = .allocate(byteCount: plain.count, alignment: 16)
        template.copyBytes(from: plain)
    }

    deinit {
        storage.deallocate()
        lengths.deallocate()
        template.deallocate()
    }

    @inline(__always)
    public func slot(_ i: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: storage[(i * slotSize)..<((i + 1) * slotSize)])
    }

    /// Writes `count` plaintext packets with consecutive sequence numbers
    /// continuing from the previous fill (wrapping, so senders roll the ROC).
    public func fillPlain() {
        for i in 0..<count {
            let s = slot(i)
            s.baseAddress!.copyMemory(from: template.baseAddress!, byteCount: template.count)
            s.storeBytes(of: nextSequence.bigEndian, toByteOffset: 2, as: UInt16.self)
            lengths[i] = template.count
            nextSequence &+= 1
        }
    }
}

// MARK: Parley

/// Parley's SRTPContext as sender and receiver of one stream.
public final class ParleySRTP {
    public let sender: SRTPContext
    public let receiver: SRTPContext

    public init(profile: SRTPProfile) throws {
        let key = benchMasterKey(for: profile)
        sender = try SRTPContext(profile: profile, masterKey: key)
        receiver = try SRTPContext(profile: profile, masterKey: key)
    }

    public func protectAll(_ b: PacketBatch) throws(SRTPError) {
        for i in 0..<b.count {
            b.lengths[i] = try sender.protectRTP(b.slot(i), length: b.lengths[i])
        }
    }

    public func unprotectAll(_ b: PacketBatch) throws(SRTPError) {
        for i in 0..<b.count {
            b.lengths[i] = try receiver.unprotectRTP(b.slot(i), length: b.lengths[i])
        }
    }
}

// MARK: libsrtp2

public struct LibSRTPError: Error, CustomStringConvertible {
    public var status: UInt32
    public var description: String { "libsrtp2 status \(status)" }
}

/// libsrtp's crypto kernel is process-global and may be initialized once.
private let libsrtpInitialized: Bool = srtp_init() == srtp_err_status_ok

/// One libsrtp2 session per direction, "ssrc any" like SRTPContext.
public final class LibSRTPSession {
    private let session: srtp_t

    public init(profile: SRTPProfile, inbound: Bool, windowSize: Int = 1024) throws {
        precondition(libsrtpInitialized, "srtp_init failed")
        let master = benchMasterKey(for: profile)
        var keyMaterial = master.key + master.salt
        var policy = srtp_policy_t()
        switch profile {
        case .aes128CMHMACSHA1_80:
            srtp_crypto_policy_set_rtp_default(&policy.rtp)
            srtp_crypto_policy_set_rtp_default(&policy.rtcp)
        case .aes128CMHMACSHA1_32:
            srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32(&policy.rtp)
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
            return srtp_create(&created, &policy)
        }
        guard status == srtp_err_status_ok, let created else { throw LibSRTPError(status: status.rawValue) }
        session = created
    }

    deinit { srtp_dealloc(session) }

    @inline(__always)
    public func protect(_ packet: UnsafeMutableRawPointer, length: Int) throws(LibSRTPError) -> Int {
        var n = Int32(length)
        let status = srtp_protect(session, packet, &n)
        guard status == srtp_err_status_ok else { throw LibSRTPError(status: status.rawValue) }
        return Int(n)
    }

    @inline(__always)
    public func unprotect(_ packet: UnsafeMutableRawPointer, length: Int) throws(LibSRTPError) -> Int {
        var n = Int32(length)
        let status = srtp_unprotect(session, packet, &n)
        guard status == srtp_err_status_ok else { throw LibSRTPError(status: status.rawValue) }
        return Int(n)
    }
}

/// libsrtp2 as sender and receiver of one stream.
public final class LibSRTP {
    public let sender: LibSRTPSession
    public let receiver: LibSRTPSession

    public init(profile: SRTPProfile) throws {
        sender = try LibSRTPSession(profile: profile, inbound: false)
        receiver = try LibSRTPSession(profile: profile, inbound: true)
    }

    public func protectAll(_ b: PacketBatch) throws(LibSRTPError) {
        for i in 0..<b.count {
            b.lengths[i] = try sender.protect(b.slot(i).baseAddress!, length: b.lengths[i])
        }
    }

    public func unprotectAll(_ b: PacketBatch) throws(LibSRTPError) {
        for i in 0..<b.count {
            b.lengths[i] = try receiver.unprotect(b.slot(i).baseAddress!, length: b.lengths[i])
        }
    }
}

// MARK: OpenSSL-only ceiling

public struct CeilingError: Error, CustomStringConvertible {
    public var description: String { "OpenSSL ceiling: crypto call failed" }
}

/// The least per-packet work an SRTP transform built on libcrypto must do,
/// with no SRTP bookkeeping at all (no index/ROC estimate, no replay window,
/// no per-SSRC state, no header parsing: the header is taken to be 12
/// octets): set the IV on a reused EVP_CIPHER_CTX, then
/// - AES_CM_128_HMAC_SHA1_80: AES-128-CTR over the payload and HMAC-SHA1 over
///   header ‖ payload ‖ ROC on a reused HMAC_CTX (`HMAC_Init_ex` with a NULL
///   key re-uses the key), 10-octet tag;
/// - AEAD_AES_128_GCM: AES-128-GCM with the header as AAD, 16-octet tag.
/// Unprotect does the same in reverse (verify the HMAC before decrypting; GCM
/// decrypt with tag check).
public final class OpenSSLCeiling {
    public let aead: Bool
    private let encryptor: OpaquePointer
    private let decryptor: OpaquePointer
    private let hmac: OpaquePointer?
    private let iv: UnsafeMutablePointer<UInt8>
    private let mac: UnsafeMutablePointer<UInt8>
    private let salt: (UInt64, UInt64)
    public let tagLength: Int

    public init(profile: SRTPProfile) throws {
        aead = profile == .aeadAES128GCM
        tagLength = aead ? 16 : 10
        var rng = SplitMix64(seed: 99)
        let key = rng.bytes(16)
        let authKey = rng.bytes(20)
        salt = (rng.next() & 0xFFFF_FFFF_FFFF_FFFF, rng.next() & 0xFFFF_FFFF_FFFF_0000)
        iv = .allocate(capacity: 16)
        iv.initialize(repeating: 0, count: 16)
        mac = .allocate(capacity: 64)
        mac.initialize(repeating: 0, count: 64)
        guard let e = EVP_CIPHER_CTX_new(), let d = EVP_CIPHER_CTX_new() else { throw CeilingError() }
        encryptor = e
        decryptor = d
        if aead {
            hmac = nil
            guard EVP_EncryptInit_ex(e, EVP_aes_128_gcm(), nil, key, iv) == 1,
                  EVP_DecryptInit_ex(d, EVP_aes_128_gcm(), nil, key, iv) == 1
            else { throw CeilingError() }
        } else {
            guard EVP_EncryptInit_ex(e, EVP_aes_128_ctr(), nil, key, iv) == 1,
                  let h = HMAC_CTX_new(),
                  HMAC_Init_ex(h, authKey, Int32(authKey.count), EVP_sha1(), nil) == 1
            else { throw CeilingError() }
            hmac = h
        }
    }

    deinit {
        EVP_CIPHER_CTX_free(encryptor)
        EVP_CIPHER_CTX_free(decryptor)
        if let hmac { HMAC_CTX_free(hmac) }
        iv.deallocate()
        mac.deallocate()
    }

    @inline(__always)
    private func setIV(_ packet: UnsafeRawPointer) {
        let seq = UInt64(UInt16(bigEndian: packet.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
        let ssrc = UInt64(UInt32(bigEndian: packet.loadUnaligned(fromByteOffset: 8, as: UInt32.self)))
        let high = salt.0 ^ (aead ? ssrc << 16 : ssrc)
        let low = salt.1 ^ (aead ? seq << 32 : seq << 16)
        let raw = UnsafeMutableRawPointer(iv)
        raw.storeBytes(of: high.bigEndian, as: UInt64.self)
        raw.storeBytes(of: low.bigEndian, toByteOffset: 8, as: UInt64.self)
    }

    @inline(__always)
    private func hmacSHA1(_ bytes: UnsafeRawPointer, count: Int) -> Bool {
        guard let hmac else { return false }
        var roc: UInt32 = 0
        var n: UInt32 = 0
        return HMAC_Init_ex(hmac, nil, 0, nil, nil) == 1
            && HMAC_Update(hmac, bytes.assumingMemoryBound(to: UInt8.self), count) == 1
            && withUnsafeBytes(of: &roc) { HMAC_Update(hmac, $0.baseAddress!.assumingMemoryBound(to: UInt8.self), 4) } == 1
            && HMAC_Final(hmac, mac, &n) == 1
    }

    /// Encrypts and authenticates the packet at `packet` in place.
    @inline(__always)
    public func protect(_ packet: UnsafeMutableRawPointer, length: Int) throws(CeilingError) -> Int {
        let payload = (packet + 12).assumingMemoryBound(to: UInt8.self)
        let count = Int32(length - 12)
        var n: Int32 = 0
        setIV(packet)
        if aead {
            guard EVP_EncryptInit_ex(encryptor, nil, nil, nil, iv) == 1,
                  EVP_EncryptUpdate(encryptor, nil, &n, packet.assumingMemoryBound(to: UInt8.self), 12) == 1,
                  EVP_EncryptUpdate(encryptor, payload, &n, payload, count) == 1,
                  EVP_EncryptFinal_ex(encryptor, mac, &n) == 1,
                  EVP_CIPHER_CTX_ctrl(encryptor, EVP_CTRL_GCM_GET_TAG, 16, packet + length) == 1
            else { throw CeilingError() }
        } else {
            guard EVP_EncryptInit_ex(encryptor, nil, nil, nil, iv) == 1,
                  EVP_EncryptUpdate(encryptor, payload, &n, payload, count) == 1,
                  hmacSHA1(packet, count: length)
            else { throw CeilingError() }
            (packet + length).copyMemory(from: mac, byteCount: 10)
        }
        return length + tagLength
    }

    /// Verifies and decrypts in place.
    @inline(__always)
    public func unprotect(_ packet: UnsafeMutableRawPointer, length: Int) throws(CeilingError) -> Int {
        let body = length - tagLength
        let payload = (packet + 12).assumingMemoryBound(to: UInt8.self)
        let count = Int32(body - 12)
        var n: Int32 = 0
        setIV(packet)
        if aead {
            guard EVP_DecryptInit_ex(decryptor, nil, nil, nil, iv) == 1,
                  EVP_CIPHER_CTX_ctrl(decryptor, EVP_CTRL_GCM_SET_TAG, 16, packet + body) == 1,
                  EVP_DecryptUpdate(decryptor, nil, &n, packet.assumingMemoryBound(to: UInt8.self), 12) == 1,
                  EVP_DecryptUpdate(decryptor, payload, &n, payload, count) == 1,
                  EVP_DecryptFinal_ex(decryptor, mac, &n) == 1
            else { throw CeilingError() }
        } else {
            guard hmacSHA1(packet, count: body),
                  CRYPTO_memcmp(mac, packet + body, 10) == 0,
                  EVP_EncryptInit_ex(encryptor, nil, nil, nil, iv) == 1,
                  EVP_EncryptUpdate(encryptor, payload, &n, payload, count) == 1
            else { throw CeilingError() }
        }
        return body
    }

    public func protectAll(_ b: PacketBatch) throws(CeilingError) {
        for i in 0..<b.count {
            b.lengths[i] = try protect(b.slot(i).baseAddress!, length: b.lengths[i])
        }
    }

    public func unprotectAll(_ b: PacketBatch) throws(CeilingError) {
        for i in 0..<b.count {
            b.lengths[i] = try unprotect(b.slot(i).baseAddress!, length: b.lengths[i])
        }
    }
}

// MARK: Cross-check

/// Checks once that Parley and libsrtp2 produce the same SRTP bytes for the
/// same key and packets and accept each other's output, and that each
/// driver's unprotect restores the plaintext: the benchmarks must measure
/// working transforms.
public func crossCheckSRTP(profile: SRTPProfile) throws {
    let parley = try ParleySRTP(profile: profile)
    let lib = try LibSRTP(profile: profile)
    let ceiling = try OpenSSLCeiling(profile: profile)
    let a = PacketBatch(count: 4), b = PacketBatch(count: 4), c = PacketBatch(count: 4)
    a.fillPlain(); b.fillPlain(); c.fillPlain()
    let plain = Array(UnsafeRawBufferPointer(rebasing: a.slot(1)[0..<a.lengths[1]]))
    try parley.protectAll(a)
    try lib.protectAll(b)
    try ceiling.protectAll(c)
    for i in 0..<4 {
        let x = Array(UnsafeRawBufferPointer(rebasing: a.slot(i)[0..<a.lengths[i]]))
        let y = Array(UnsafeRawBufferPointer(rebasing: b.slot(i)[0..<b.lengths[i]]))
        guard x == y else { fatalError("\(profile.benchName): Parley and libsrtp2 SRTP output differ at packet \(i)") }
    }
    // Each receiver takes the other's packets (they are identical) and its own.
    try lib.unprotectAll(a)
    try parley.unprotectAll(b)
    try ceiling.unprotectAll(c)
    for batch in [a, b, c] {
        let back = Array(UnsafeRawBufferPointer(rebasing: batch.slot(1)[0..<batch.lengths[1]]))
        guard back == plain else { fatalError("\(profile.benchName): round trip did not restore the plaintext") }
    }
}
