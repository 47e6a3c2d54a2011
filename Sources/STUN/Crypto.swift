import COpenSSL

/// CRC-32 (ISO HDLC / IEEE 802.3, reflected polynomial 0xEDB88320) as the
/// FINGERPRINT attribute uses it (RFC 8489 §14.7). One byte per table lookup.
enum CRC32 {
    static let table: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    @inline(__always)
    static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var c = crc
        table.withUnsafeBufferPointer { t in
            for b in bytes { c = t[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        }
        return c
    }

    static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        update(0xFFFF_FFFF, bytes) ^ 0xFFFF_FFFF
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }
}

/// The XOR applied to the CRC so STUN's FINGERPRINT differs from a CRC the
/// payload might itself carry (RFC 8489 §14.7).
let fingerprintXOR: UInt32 = 0x5354_554E

/// How a long-term credential's key is derived (RFC 8489 §18.5.1).
public enum STUNPasswordAlgorithmKind: UInt16, Sendable, Hashable {
    /// key = MD5(username ":" realm ":" password), RFC 8489 §9.2.2.
    case md5 = 0x0001
    /// key = SHA-256(username ":" realm ":" password), RFC 8489 §18.5.1.2.
    case sha256 = 0x0002
}

/// A MESSAGE-INTEGRITY key with its HMAC-SHA1 and HMAC-SHA256 inner and
/// outer hash states precomputed (RFC 2104). Checking a message copies two
/// small C structs instead of hashing the padded key again, and allocates
/// nothing, which matters at a few hundred thousand Binding requests a second.
public struct STUNIntegrityKey: Sendable {
    /// The raw key bytes (for inspection and tests).
    public let key: [UInt8]
    private var sha1Inner = SHA_CTX()
    private var sha1Outer = SHA_CTX()
    private var sha256Inner = SHA256_CTX()
    private var sha256Outer = SHA256_CTX()

    /// Uses `key` as the HMAC key directly.
    public init(key: [UInt8]) {
        self.key = key
        // HMAC keys longer than the block size are hashed first (RFC 2104 §2);
        // SHA-1 and SHA-256 both use 64-byte blocks, but the hashed key differs.
        var block1 = [UInt8](repeating: 0, count: 64)
        var block256 = [UInt8](repeating: 0, count: 64)
        if key.count > 64 {
            let d1 = STUNIntegrityKey.sha1(key)
            let d256 = STUNIntegrityKey.sha256(key)
            for i in 0..<d1.count { block1[i] = d1[i] }
            for i in 0..<d256.count { block256[i] = d256[i] }
        } else {
            for i in 0..<key.count { block1[i] = key[i]; block256[i] = key[i] }
        }
        let ipad1 = block1.map { $0 ^ 0x36 }, opad1 = block1.map { $0 ^ 0x5C }
        let ipad256 = block256.map { $0 ^ 0x36 }, opad256 = block256.map { $0 ^ 0x5C }
        shim_SHA1_Init(&sha1Inner)
        shim_SHA1_Init(&sha1Outer)
        shim_SHA256_Init(&sha256Inner)
        shim_SHA256_Init(&sha256Outer)
        ipad1.withUnsafeBytes { _ = shim_SHA1_Update(&sha1Inner, $0.baseAddress, 64) }
        opad1.withUnsafeBytes { _ = shim_SHA1_Update(&sha1Outer, $0.baseAddress, 64) }
        ipad256.withUnsafeBytes { _ = shim_SHA256_Update(&sha256Inner, $0.baseAddress, 64) }
        opad256.withUnsafeBytes { _ = shim_SHA256_Update(&sha256Outer, $0.baseAddress, 64) }
    }

    /// Short-term credentials: the key is the password's bytes (RFC 8489
    /// §9.1.1). ICE passwords are ASCII, so OpaqueString processing is a no-op.
    public init(shortTermPassword password: String) {
        self.init(key: Array(password.utf8))
    }

    /// Long-term credentials (RFC 8489 §9.2.2, §18.5.1). The caller passes
    /// username, realm and password already processed with OpaqueString
    /// (RFC 8265) / SASLprep; this type does not do Unicode preparation.
    public init(username: String, realm: String, password: String, algorithm: STUNPasswordAlgorithmKind = .md5) {
        self.init(key: STUNIntegrityKey.longTermKey(username: username, realm: realm, password: password, algorithm: algorithm))
    }

    public static func longTermKey(username: String, realm: String, password: String, algorithm: STUNPasswordAlgorithmKind) -> [UInt8] {
        let input = Array("\(username):\(realm):\(password)".utf8)
        switch algorithm {
        case .md5: return digest(input, EVP_md5(), 16)
        case .sha256: return sha256(input)
        }
    }

    /// USERHASH = SHA-256(OpaqueString(username) ":" OpaqueString(realm))
    /// (RFC 8489 §14.4).
    public static func userhash(username: String, realm: String) -> [UInt8] {
        sha256(Array("\(username):\(realm)".utf8))
    }

    static func sha1(_ bytes: [UInt8]) -> [UInt8] { digest(bytes, EVP_sha1(), 20) }
    static func sha256(_ bytes: [UInt8]) -> [UInt8] { digest(bytes, EVP_sha256(), 32) }

    private static func digest(_ bytes: [UInt8], _ md: OpaquePointer?, _ size: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: size)
        var len: UInt32 = 0
        bytes.withUnsafeBytes { input in
            out.withUnsafeMutableBytes { o in
                _ = EVP_Digest(input.baseAddress, input.count, o.baseAddress?.assumingMemoryBound(to: UInt8.self), &len, md, nil)
            }
        }
        return out
    }

    /// HMAC-SHA1 over the concatenation of `parts`, written to `out` (20 bytes).
    @inline(__always)
    func hmacSHA1(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer, _ c: UnsafeRawBufferPointer,
                  into out: UnsafeMutablePointer<UInt8>) {
        var inner = sha1Inner
        shim_SHA1_Update(&inner, a.baseAddress, a.count)
        shim_SHA1_Update(&inner, b.baseAddress, b.count)
        shim_SHA1_Update(&inner, c.baseAddress, c.count)
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { innerDigest in
            shim_SHA1_Final(innerDigest.baseAddress, &inner)
            var outer = sha1Outer
            shim_SHA1_Update(&outer, innerDigest.baseAddress, 20)
            shim_SHA1_Final(out, &outer)
        }
    }

    /// HMAC-SHA256 over the concatenation of `parts`, written to `out` (32 bytes).
    @inline(__always)
    func hmacSHA256(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer, _ c: UnsafeRawBufferPointer,
                    into out: UnsafeMutablePointer<UInt8>) {
        var inner = sha256Inner
        shim_SHA256_Update(&inner, a.baseAddress, a.count)
        shim_SHA256_Update(&inner, b.baseAddress, b.count)
        shim_SHA256_Update(&inner, c.baseAddress, c.count)
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { innerDigest in
            shim_SHA256_Final(innerDigest.baseAddress, &inner)
            var outer = sha256Outer
            shim_SHA256_Update(&outer, innerDigest.baseAddress, 32)
            shim_SHA256_Final(out, &outer)
        }
    }

    /// HMAC-SHA1 of `message` (for tests and one-off use).
    public func hmacSHA1(_ message: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 20)
        let empty = UnsafeRawBufferPointer(start: nil, count: 0)
        message.withUnsafeBytes { m in
            out.withUnsafeMutableBufferPointer { hmacSHA1(m, empty, empty, into: $0.baseAddress!) }
        }
        return out
    }

    /// HMAC-SHA256 of `message` (for tests and one-off use).
    public func hmacSHA256(_ message: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        let empty = UnsafeRawBufferPointer(start: nil, count: 0)
        message.withUnsafeBytes { m in
            out.withUnsafeMutableBufferPointer { hmacSHA256(m, empty, empty, into: $0.baseAddress!) }
        }
        return out
    }
}

/// Compares MACs in time independent of where they differ, so a forger
/// cannot learn a correct prefix from response timing (RFC 8489 §9).
@inline(__always)
func constantTimeEqual(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
    guard a.count == b.count else { return false }
    var diff: UInt8 = 0
    for i in 0..<a.count { diff |= a[i] ^ b[i] }
    return diff == 0
}
