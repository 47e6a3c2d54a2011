import COpenSSL

/// The keys one of SRTP or SRTCP runs on, derived from the master key.
struct SessionKeys: Sendable, Equatable {
    var encryptionKey: [UInt8]
    var salt: [UInt8]
    /// Empty for AEAD profiles: GCM authenticates with the cipher key.
    var authenticationKey: [UInt8]
}

/// The SRTP key derivation function (RFC 3711 §4.3) with the AES-CM PRF
/// (§4.3.3) and a key derivation rate of 0, so `r = index DIV kdr` is 0 and
/// the session keys never change for the life of the master key.
enum KeyDerivation {
    /// Labels of RFC 3711 §4.3.1 (SRTP) and §4.3.2 (SRTCP).
    enum Label: UInt8 {
        case rtpEncryption = 0, rtpAuthentication = 1, rtpSalt = 2
        case rtcpEncryption = 3, rtcpAuthentication = 4, rtcpSalt = 5
    }

    /// `length` octets of PRF output for `label`.
    ///
    /// key_id = label ‖ r (r is 48 zero bits), x = key_id XOR master_salt with
    /// both right-aligned in 112 bits, and the output is the AES-CM keystream
    /// under the master key starting at counter x·2^16. A 96-bit GCM master
    /// salt is padded with two zero octets on the right to make the 112-bit x
    /// (RFC 7714 §11 reuses this KDF unchanged; libsrtp pads the same way,
    /// which the cross-check tests confirm).
    static func derive(
        masterKey: [UInt8], masterSalt: [UInt8], label: Label, length: Int
    ) throws(SRTPError) -> [UInt8] {
        guard masterKey.count == 16, masterSalt.count == 14 || masterSalt.count == 12 else {
            throw .invalidKeyLength
        }
        var iv = [UInt8](repeating: 0, count: 16)
        for i in 0..<masterSalt.count { iv[i] = masterSalt[i] }
        // The label is the octet just above the 48-bit r, i.e. octet 7 of x.
        iv[7] ^= label.rawValue
        return try aesCounterKeystream(key: masterKey, iv: iv, length: length)
    }

    /// AES-128 counter-mode keystream: the encryption of `length` zero octets.
    static func aesCounterKeystream(key: [UInt8], iv: [UInt8], length: Int) throws(SRTPError) -> [UInt8] {
        guard key.count == 16, iv.count == 16 else { throw .invalidKeyLength }
        guard let ctx = EVP_CIPHER_CTX_new() else { throw .cryptoFailure }
        defer { EVP_CIPHER_CTX_free(ctx) }
        guard EVP_EncryptInit_ex(ctx, EVP_aes_128_ctr(), nil, key, iv) == 1 else { throw .cryptoFailure }
        var out = [UInt8](repeating: 0, count: length)
        guard length > 0 else { return out }
        var outLength: Int32 = 0
        let ok = out.withUnsafeMutableBufferPointer { buffer in
            EVP_EncryptUpdate(ctx, buffer.baseAddress, &outLength, buffer.baseAddress, Int32(length))
        }
        guard ok == 1, Int(outLength) == length else { throw .cryptoFailure }
        return out
    }

    /// The SRTP (or SRTCP) session keys of `profile` for `master`.
    static func sessionKeys(
        profile: SRTPProfile, master: SRTPMasterKey, rtcp: Bool
    ) throws(SRTPError) -> SessionKeys {
        guard master.key.count == profile.masterKeyLength,
              master.salt.count == profile.masterSaltLength
        else { throw .invalidKeyLength }
        let labels: (Label, Label, Label) =
            rtcp ? (.rtcpEncryption, .rtcpAuthentication, .rtcpSalt)
                 : (.rtpEncryption, .rtpAuthentication, .rtpSalt)
        let encryptionKey = try derive(
            masterKey: master.key, masterSalt: master.salt, label: labels.0, length: 16)
        // Session salt is as long as the master salt: 112 bits for AES-CM
        // (RFC 3711 §8.2), 96 bits for GCM (RFC 7714 §11).
        let salt = try derive(
            masterKey: master.key, masterSalt: master.salt, label: labels.2,
            length: profile.masterSaltLength)
        // n_a = 160 bits for HMAC-SHA1 (RFC 3711 §8.2); AEAD has no auth key.
        let authenticationKey = profile.isAEAD ? [] : try derive(
            masterKey: master.key, masterSalt: master.salt, label: labels.1, length: 20)
        return SessionKeys(encryptionKey: encryptionKey, salt: salt, authenticationKey: authenticationKey)
    }
}
