import COpenSSL

/// A certificate fingerprint as SDP carries it (RFC 8122 §5):
/// `sha-256 AB:CD:…`, the hash function's IANA textual name, a space, and the
/// digest as uppercase hex pairs joined by colons.
public struct DTLSFingerprint: Sendable, Hashable, CustomStringConvertible {
    /// Hash functions from RFC 8122 §5 ("Hash Function Textual Names" registry).
    /// MD5 and MD2 are excluded: RFC 8122 §5 says they must not be used.
    public enum Algorithm: String, Sendable, Hashable, CaseIterable {
        case sha1 = "sha-1"
        case sha224 = "sha-224"
        case sha256 = "sha-256"
        case sha384 = "sha-384"
        case sha512 = "sha-512"

        public var digestLength: Int {
            switch self {
            case .sha1: 20
            case .sha224: 28
            case .sha256: 32
            case .sha384: 48
            case .sha512: 64
            }
        }

        var messageDigest: OpaquePointer? {
            switch self {
            case .sha1: EVP_sha1()
            case .sha224: EVP_sha224()
            case .sha256: EVP_sha256()
            case .sha384: EVP_sha384()
            case .sha512: EVP_sha512()
            }
        }
    }

    public let algorithm: Algorithm
    public let digest: [UInt8]

    public init(algorithm: Algorithm, digest: [UInt8]) throws(DTLSError) {
        guard digest.count == algorithm.digestLength else { throw .invalidInput }
        self.algorithm = algorithm
        self.digest = digest
    }

    /// Parses `sha-256 AB:CD:…` (the value of `a=fingerprint:`). The hash name
    /// and hex digits are case-insensitive (RFC 8122 §5 uses ABNF strings, and
    /// RFC 4572 §5 allows either case on input).
    public init(parsing text: some StringProtocol) throws(DTLSError) {
        let utf8 = Array(text.utf8)
        var start = 0
        var end = utf8.count
        while start < end, utf8[start] == 0x20 || utf8[start] == 0x09 { start += 1 }
        while end > start, utf8[end - 1] == 0x20 || utf8[end - 1] == 0x09 || utf8[end - 1] == 0x0D || utf8[end - 1] == 0x0A { end -= 1 }
        guard let space = utf8[start..<end].firstIndex(where: { $0 == 0x20 }) else { throw .invalidInput }
        let name = String(decoding: utf8[start..<space], as: UTF8.self).lowercased()
        guard let algorithm = Algorithm(rawValue: name) else { throw .invalidInput }
        var hexStart = space
        while hexStart < end, utf8[hexStart] == 0x20 { hexStart += 1 }
        let hex = utf8[hexStart..<end]
        // Exactly "XX(:XX)*": 3n-1 characters for n bytes.
        let n = algorithm.digestLength
        guard hex.count == 3 * n - 1 else { throw .invalidInput }
        var digest = [UInt8]()
        digest.reserveCapacity(n)
        var i = hex.startIndex
        for byteIndex in 0..<n {
            if byteIndex > 0 {
                guard hex[i] == UInt8(ascii: ":") else { throw .invalidInput }
                i += 1
            }
            guard let high = Self.nibble(hex[i]), let low = Self.nibble(hex[i + 1]) else { throw .invalidInput }
            digest.append(high << 4 | low)
            i += 2
        }
        self.algorithm = algorithm
        self.digest = digest
    }

    /// The SDP form, `sha-256 AB:CD:…` with uppercase hex (RFC 8122 §5).
    public var sdpValue: String {
        let digits: [UInt8] = Array("0123456789ABCDEF".utf8)
        var out = [UInt8](algorithm.rawValue.utf8)
        out.append(0x20)
        for (index, byte) in digest.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ":")) }
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    public var description: String { sdpValue }

    /// The fingerprint of a DER certificate held by OpenSSL.
    static func of(x509: OpaquePointer, algorithm: Algorithm) -> DTLSFingerprint? {
        var buffer = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        guard X509_digest(x509, algorithm.messageDigest, &buffer, &length) == 1,
              Int(length) == algorithm.digestLength
        else { return nil }
        return try? DTLSFingerprint(algorithm: algorithm, digest: Array(buffer[0..<Int(length)]))
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
