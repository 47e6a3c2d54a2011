import COpenSSL

/// The keyed libcrypto state for one of SRTP or SRTCP in one context.
///
/// Everything a packet needs is set up once here, so the per-packet work is
/// only: set an IV on a reused `EVP_CIPHER_CTX`, run the cipher in place, and
/// (AES-CM) hash with copies of a pre-keyed HMAC state. Nothing allocates per
/// packet. Measured on the target machine (1200-octet packets): re-keying the
/// IV of an AES-128-CTR context is ~1.5× faster than making the keystream with
/// AES-ECB, and copying pre-keyed `SHA_CTX` inner/outer states is ~15% faster
/// than `HMAC_CTX`/`EVP_MAC` reuse or `EVP_MD_CTX_copy_ex` (which also
/// allocates under OpenSSL 3).
final class PacketCipher {
    let isAEAD: Bool
    /// AES-128-CTR (both directions) or AES-128-GCM encryption.
    private let encryptor: OpaquePointer
    /// AES-128-GCM decryption; nil for AES-CM.
    private let decryptor: OpaquePointer?
    /// HMAC-SHA1 states after absorbing K⊕ipad and K⊕opad, and a work copy.
    private let hashStates: UnsafeMutablePointer<SHA_CTX>
    /// 16 octets IV, 20 octets digest, 4 octets spare word.
    private let scratch: UnsafeMutableRawPointer
    /// The session salt as a big-endian 128-bit number, left-aligned (the
    /// octets past the salt's length are zero).
    private let saltHigh: UInt64
    private let saltLow: UInt64

    private var inner: UnsafeMutablePointer<SHA_CTX> { hashStates }
    private var outer: UnsafeMutablePointer<SHA_CTX> { hashStates + 1 }
    private var work: UnsafeMutablePointer<SHA_CTX> { hashStates + 2 }
    private var iv: UnsafeMutableRawPointer { scratch }
    /// Where `authenticate` leaves the full 20-octet HMAC.
    var digest: UnsafeMutableRawPointer { scratch + 16 }
    private var word: UnsafeMutableRawPointer { scratch + 36 }

    init(keys: SessionKeys, aead: Bool) throws(SRTPError) {
        guard keys.encryptionKey.count == 16,
              keys.salt.count == (aead ? 12 : 14),
              aead || keys.authenticationKey.count == 20
        else { throw .invalidKeyLength }
        isAEAD = aead
        scratch = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 16)
        scratch.initializeMemory(as: UInt8.self, repeating: 0, count: 64)
        hashStates = UnsafeMutablePointer<SHA_CTX>.allocate(capacity: 3)
        hashStates.initialize(repeating: SHA_CTX(), count: 3)

        var salt16 = [UInt8](repeating: 0, count: 16)
        for i in 0..<keys.salt.count { salt16[i] = keys.salt[i] }
        var high: UInt64 = 0
        var low: UInt64 = 0
        for i in 0..<8 {
            high = high << 8 | UInt64(salt16[i])
            low = low << 8 | UInt64(salt16[8 + i])
        }
        saltHigh = high
        saltLow = low

        guard let enc = EVP_CIPHER_CTX_new() else {
            scratch.deallocate()
            hashStates.deallocate()
            throw .cryptoFailure
        }
        encryptor = enc
        if aead {
            decryptor = EVP_CIPHER_CTX_new()
        } else {
            decryptor = nil
        }
        // From here on deinit cleans up, so failures may just throw.
        let zeroIV = [UInt8](repeating: 0, count: 16)
        if aead {
            // The default GCM IV length is the 96 bits RFC 7714 §8.1 uses.
            guard let decryptor,
                  EVP_EncryptInit_ex(enc, EVP_aes_128_gcm(), nil, keys.encryptionKey, zeroIV) == 1,
                  EVP_DecryptInit_ex(decryptor, EVP_aes_128_gcm(), nil, keys.encryptionKey, zeroIV) == 1
            else { throw .cryptoFailure }
        } else {
            guard EVP_EncryptInit_ex(enc, EVP_aes_128_ctr(), nil, keys.encryptionKey, zeroIV) == 1
            else { throw .cryptoFailure }
            // HMAC (RFC 2104) with a 20-octet key: pad the key to the 64-octet
            // SHA-1 block and absorb K⊕ipad / K⊕opad once.
            var pad = [UInt8](repeating: 0x36, count: 64)
            for i in 0..<20 { pad[i] ^= keys.authenticationKey[i] }
            shim_SHA1_Init(inner)
            shim_SHA1_Update(inner, pad, 64)
            for i in 0..<64 { pad[i] = (i < 20 ? keys.authenticationKey[i] : 0) ^ 0x5c }
            shim_SHA1_Init(outer)
            shim_SHA1_Update(outer, pad, 64)
            pad.withUnsafeMutableBytes { OPENSSL_cleanse($0.baseAddress, 64) }
        }
    }

    deinit {
        EVP_CIPHER_CTX_free(encryptor)
        if let decryptor { EVP_CIPHER_CTX_free(decryptor) }
        OPENSSL_cleanse(hashStates, 3 * MemoryLayout<SHA_CTX>.stride)
        OPENSSL_cleanse(scratch, 64)
        hashStates.deallocate()
        scratch.deallocate()
    }

    // MARK: AES-CM (RFC 3711 §4.1.1)

    /// XORs the AES-CM keystream for (`ssrc`, `index`) into `count` octets at
    /// `bytes`: encryption and decryption alike. The IV is
    /// (k_s·2^16) XOR (SSRC·2^64) XOR (i·2^16); `index` is the 48-bit SRTP
    /// packet index or the 31-bit SRTCP index (§3.4).
    @inline(__always)
    func counterMode(ssrc: UInt32, index: UInt64, _ bytes: UnsafeMutableRawPointer, count: Int) -> Bool {
        let high = saltHigh ^ UInt64(ssrc)
        let low = saltLow ^ (index << 16)
        iv.storeBytes(of: high.bigEndian, as: UInt64.self)
        iv.storeBytes(of: low.bigEndian, toByteOffset: 8, as: UInt64.self)
        guard EVP_EncryptInit_ex(encryptor, nil, nil, nil, iv.assumingMemoryBound(to: UInt8.self)) == 1
        else { return false }
        guard count > 0 else { return true }
        var outLength: Int32 = 0
        let p = bytes.assumingMemoryBound(to: UInt8.self)
        return EVP_EncryptUpdate(encryptor, p, &outLength, p, Int32(count)) == 1
    }

    /// HMAC-SHA1 over `count` octets at `bytes`, followed by the 32-bit ROC
    /// when given (RFC 3711 §4.2: M = Authenticated Portion ‖ ROC); the
    /// 20-octet result is left in `digest`.
    @inline(__always)
    func authenticate(_ bytes: UnsafeRawPointer, count: Int, rolloverCounter: UInt32?) {
        work.update(from: inner, count: 1)
        shim_SHA1_Update(work, bytes, count)
        if let rolloverCounter {
            word.storeBytes(of: rolloverCounter.bigEndian, as: UInt32.self)
            shim_SHA1_Update(work, word, 4)
        }
        let d = digest.assumingMemoryBound(to: UInt8.self)
        shim_SHA1_Final(d, work)
        work.update(from: outer, count: 1)
        shim_SHA1_Update(work, d, 20)
        shim_SHA1_Final(d, work)
    }

    /// Constant-time comparison of the first `count` octets of `digest` with
    /// the received tag (CRYPTO_memcmp does not stop at the first mismatch).
    @inline(__always)
    func digestMatches(_ tag: UnsafeRawPointer, count: Int) -> Bool {
        CRYPTO_memcmp(digest, tag, count) == 0
    }

    // MARK: AES-GCM (RFC 7714 §8, §9)

    /// The 96-bit GCM IV: (0x0000 ‖ SSRC ‖ index48) XOR salt. For SRTP the
    /// index is ROC ‖ SEQ (§8.1); for SRTCP it is 0x0000 ‖ 0 ‖ SRTCP index
    /// (§9.1), which is the same layout with the 31-bit index.
    @inline(__always)
    private func setGCMIV(ssrc: UInt32, index: UInt64) {
        let high = saltHigh ^ (UInt64(ssrc) << 16) ^ (index >> 32)
        let low = UInt32(truncatingIfNeeded: saltLow >> 32) ^ UInt32(truncatingIfNeeded: index)
        iv.storeBytes(of: high.bigEndian, as: UInt64.self)
        iv.storeBytes(of: low.bigEndian, toByteOffset: 8, as: UInt32.self)
    }

    /// Encrypts `count` octets at `payload` in place and writes the 16-octet
    /// tag to `tag`. The associated data is `aad` followed by `aadTail`.
    func seal(
        ssrc: UInt32, index: UInt64,
        aad: UnsafeRawPointer, aadCount: Int, aadTail: UInt32? = nil,
        payload: UnsafeMutableRawPointer, count: Int, tag: UnsafeMutableRawPointer
    ) -> Bool {
        setGCMIV(ssrc: ssrc, index: index)
        guard EVP_EncryptInit_ex(encryptor, nil, nil, nil, iv.assumingMemoryBound(to: UInt8.self)) == 1,
              addAAD(encryptor, aad, aadCount, aadTail)
        else { return false }
        var outLength: Int32 = 0
        if count > 0 {
            let p = payload.assumingMemoryBound(to: UInt8.self)
            guard EVP_EncryptUpdate(encryptor, p, &outLength, p, Int32(count)) == 1 else { return false }
        }
        guard EVP_EncryptFinal_ex(encryptor, digest.assumingMemoryBound(to: UInt8.self), &outLength) == 1,
              EVP_CIPHER_CTX_ctrl(encryptor, EVP_CTRL_GCM_GET_TAG, 16, tag) == 1
        else { return false }
        return true
    }

    /// Decrypts in place and verifies the tag. On failure the ciphertext is
    /// put back (re-encrypted with the same keystream), so a rejected packet
    /// leaves the caller's buffer as it was.
    func open(
        ssrc: UInt32, index: UInt64,
        aad: UnsafeRawPointer, aadCount: Int, aadTail: UInt32? = nil,
        payload: UnsafeMutableRawPointer, count: Int, tag: UnsafeMutableRawPointer
    ) -> Bool {
        guard let decryptor else { return false }
        setGCMIV(ssrc: ssrc, index: index)
        guard EVP_DecryptInit_ex(decryptor, nil, nil, nil, iv.assumingMemoryBound(to: UInt8.self)) == 1,
              EVP_CIPHER_CTX_ctrl(decryptor, EVP_CTRL_GCM_SET_TAG, 16, tag) == 1,
              addAAD(decryptor, aad, aadCount, aadTail, decrypt: true)
        else { return false }
        var outLength: Int32 = 0
        let p = payload.assumingMemoryBound(to: UInt8.self)
        if count > 0 {
            guard EVP_DecryptUpdate(decryptor, p, &outLength, p, Int32(count)) == 1 else { return false }
        }
        if EVP_DecryptFinal_ex(decryptor, digest.assumingMemoryBound(to: UInt8.self), &outLength) == 1 {
            return true
        }
        if count > 0,
           EVP_EncryptInit_ex(encryptor, nil, nil, nil, iv.assumingMemoryBound(to: UInt8.self)) == 1 {
            _ = EVP_EncryptUpdate(encryptor, p, &outLength, p, Int32(count))
        }
        return false
    }

    @inline(__always)
    private func addAAD(
        _ ctx: OpaquePointer, _ aad: UnsafeRawPointer, _ count: Int, _ tail: UInt32?,
        decrypt: Bool = false
    ) -> Bool {
        var outLength: Int32 = 0
        let update = decrypt ? EVP_DecryptUpdate : EVP_EncryptUpdate
        guard update(ctx, nil, &outLength, aad.assumingMemoryBound(to: UInt8.self), Int32(count)) == 1
        else { return false }
        if let tail {
            word.storeBytes(of: tail.bigEndian, as: UInt32.self)
            guard update(ctx, nil, &outLength, word.assumingMemoryBound(to: UInt8.self), 4) == 1
            else { return false }
        }
        return true
    }
}
