import COpenSSL
import Synchronization

/// An ECDSA P-256 key and a self-signed X.509 certificate for DTLS-SRTP.
///
/// WebRTC peers authenticate each other by the certificate's fingerprint in
/// SDP (RFC 8827 §6.5, RFC 8122 §5), not by a CA chain, so one certificate
/// made at start-up serves every connection. P-256 because every browser
/// accepts it and ECDSA signing is cheap for a server doing many handshakes.
///
/// The certificate also owns the OpenSSL `SSL_CTX`s its connections are
/// created from (one per SRTP profile list), so thousands of connections
/// share one context instead of each parsing the key again.
public final class DTLSCertificate: @unchecked Sendable {
    // Safe to share: the key and certificate are never mutated after init,
    // and the context cache is behind a mutex.
    let privateKey: OpaquePointer
    let x509: OpaquePointer
    /// SHA-256 fingerprint for the local `a=fingerprint` line.
    public let fingerprint: DTLSFingerprint
    /// SSL_CTX pointers by profile list, stored as bit patterns so the mutex
    /// holds plain Sendable integers.
    private let contexts = Mutex<[String: Int]>([:])

    /// Makes a fresh key pair and certificate. Validity starts 30 days back
    /// (peers with skewed clocks) and lasts a year; the serial is random
    /// (RFC 5280 §4.1.2.2: unique per issuer, at most 20 octets, positive).
    public init(commonName: String = "parley") throws(DTLSError) {
        guard let key = shim_EVP_EC_gen("prime256v1") else { throw .certificateGenerationFailed }
        guard let cert = X509_new() else {
            EVP_PKEY_free(key)
            throw .certificateGenerationFailed
        }
        var ok = X509_set_version(cert, 2) == 1 // v3
        var serialBytes = [UInt8](repeating: 0, count: 8)
        ok = ok && RAND_bytes(&serialBytes, 8) == 1
        serialBytes[0] &= 0x7F // positive, 63 bits
        var serial: UInt64 = 0
        for b in serialBytes { serial = serial << 8 | UInt64(b) }
        ok = ok && ASN1_INTEGER_set_uint64(X509_get_serialNumber(cert), max(serial, 1)) == 1
        ok = ok && X509_gmtime_adj(X509_getm_notBefore(cert), -30 * 86_400) != nil
        ok = ok && X509_gmtime_adj(X509_getm_notAfter(cert), 365 * 86_400) != nil
        ok = ok && X509_set_pubkey(cert, key) == 1
        ok = ok && X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC, commonName, -1, -1, 0) == 1
        ok = ok && X509_set_issuer_name(cert, X509_get_subject_name(cert)) == 1
        ok = ok && X509_sign(cert, key, EVP_sha256()) > 0
        guard ok, let fingerprint = DTLSFingerprint.of(x509: cert, algorithm: .sha256) else {
            X509_free(cert)
            EVP_PKEY_free(key)
            ERR_clear_error()
            throw .certificateGenerationFailed
        }
        self.privateKey = key
        self.x509 = cert
        self.fingerprint = fingerprint
    }

    deinit {
        for bits in contexts.withLock({ Array($0.values) }) {
            SSL_CTX_free(OpaquePointer(bitPattern: bits))
        }
        X509_free(x509)
        EVP_PKEY_free(privateKey)
    }

    /// The fingerprint with another hash function, for peers whose SDP uses one.
    public func fingerprint(algorithm: DTLSFingerprint.Algorithm) -> DTLSFingerprint? {
        DTLSFingerprint.of(x509: x509, algorithm: algorithm)
    }

    /// The certificate in DER form.
    public var derEncoded: [UInt8] {
        let length = i2d_X509(x509, nil)
        guard length > 0 else { return [] }
        var out = [UInt8](repeating: 0, count: Int(length))
        let written = out.withUnsafeMutableBufferPointer { buffer -> Int32 in
            var cursor: UnsafeMutablePointer<UInt8>? = buffer.baseAddress
            return i2d_X509(x509, &cursor)
        }
        return written == length ? out : []
    }

    /// The shared context for this SRTP profile list, made on first use.
    /// The caller gets a borrowed pointer: `SSL_new` takes its own reference.
    func context(srtpProfiles: [DTLSSRTPProfile]) throws(DTLSError) -> OpaquePointer {
        guard !srtpProfiles.isEmpty else { throw .invalidInput }
        let profileList = srtpProfiles.map(\.openSSLName).joined(separator: ":")
        let found = contexts.withLock { $0[profileList] }
        if let found, let pointer = OpaquePointer(bitPattern: found) { return pointer }
        let made = try makeContext(profileList: profileList)
        let winner = contexts.withLock { table -> Int in
            if let existing = table[profileList] { return existing }
            table[profileList] = Int(bitPattern: made)
            return Int(bitPattern: made)
        }
        if winner != Int(bitPattern: made) { SSL_CTX_free(made) } // another thread won the race
        guard let pointer = OpaquePointer(bitPattern: winner) else { throw .certificateGenerationFailed }
        return pointer
    }

    private func makeContext(profileList: String) throws(DTLSError) -> OpaquePointer {
        guard let ctx = SSL_CTX_new(DTLS_method()) else { throw .certificateGenerationFailed }
        var ok = SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, Int(DTLS1_2_VERSION), nil) == 1
        ok = ok && SSL_CTX_use_certificate(ctx, x509) == 1
        ok = ok && SSL_CTX_use_PrivateKey(ctx, privateKey) == 1
        ok = ok && SSL_CTX_check_private_key(ctx) == 1
        // RFC 5764 §4.1.1: offer / accept these protection profiles. Returns 0 on success.
        ok = ok && SSL_CTX_set_tlsext_use_srtp(ctx, profileList) == 0
        guard ok else {
            SSL_CTX_free(ctx)
            ERR_clear_error()
            throw .certificateGenerationFailed
        }
        // No MTU probing through the (memory) BIO: the engine sets it. No
        // session resumption: every WebRTC transport does a full handshake.
        _ = SSL_CTX_set_options(ctx, shim_SSL_OP_NO_QUERY_MTU | shim_SSL_OP_NO_TICKET)
        _ = SSL_CTX_ctrl(ctx, SSL_CTRL_SET_SESS_CACHE_MODE, Int(SSL_SESS_CACHE_OFF), nil)
        // Both sides must present a certificate (RFC 5763 §5: the server asks
        // for the client's). Certificates are self-signed, so the chain check
        // always passes here; the SDP fingerprint is compared after the
        // handshake (RFC 8122 §5).
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT) { _, _ in 1 }
        return ctx
    }
}
