import COpenSSL
import Foundation

/// Salted, deliberately slow password hashing: PBKDF2-HMAC-SHA512 from
/// OpenSSL, stored in a self-describing form so the work factor can rise
/// without breaking existing accounts:
/// `pbkdf2-sha512$<iterations>$<salt base64>$<hash base64>`.
public struct PasswordHasher: Sendable {
    /// OWASP's recommendation for PBKDF2-HMAC-SHA512 (2023).
    public static let defaultIterations = 210_000
    public var iterations: Int

    public init(iterations: Int = PasswordHasher.defaultIterations) {
        self.iterations = max(1, iterations)
    }

    public func hash(_ password: String) -> String {
        let salt = SecureRandom.bytes(16)
        let derived = Self.pbkdf2(password, salt: salt, iterations: iterations)
        return "pbkdf2-sha512$\(iterations)$\(Base64.encode(salt))$\(Base64.encode(derived))"
    }

    public func verify(_ password: String, against stored: String) -> Bool {
        let parts = stored.split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "pbkdf2-sha512", let iterations = Int(parts[1]), iterations > 0,
              let salt = Base64.decode(String(parts[2])), let expected = Base64.decode(String(parts[3]))
        else { return false }
        let derived = Self.pbkdf2(password, salt: salt, iterations: iterations)
        return ConstantTime.equal(derived, expected)
    }

    static func pbkdf2(_ password: String, salt: [UInt8], iterations: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 64)
        // An empty password still needs a valid pointer.
        var pw = Array(password.utf8CString)
        let length = Int32(pw.count - 1)
        let ok = pw.withUnsafeMutableBufferPointer { p in
            PKCS5_PBKDF2_HMAC(p.baseAddress, length, salt, Int32(salt.count), Int32(iterations), EVP_sha512(), 64, &out)
        }
        precondition(ok == 1, "PKCS5_PBKDF2_HMAC failed")
        return out
    }
}

public enum SecureRandom {
    public static func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        precondition(RAND_bytes(&out, Int32(count)) == 1, "RAND_bytes failed")
        return out
    }
}

public enum ConstantTime {
    public static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in 0..<a.count { diff |= a[i] ^ b[i] }
        return diff == 0
    }
}

/// Session tokens: 32 random bytes in base64url. Only their SHA-256 is
/// stored, so a copy of the database does not hand out sessions.
public enum SessionToken {
    public static func generate() -> String {
        Base64.encode(SecureRandom.bytes(32), url: true)
    }

    public static func storageHash(_ token: String) -> String {
        var digest = [UInt8](repeating: 0, count: 32)
        let bytes = Array(token.utf8)
        _ = SHA256(bytes, bytes.count, &digest)
        return Hex.encode(digest)
    }
}

public enum Hex {
    public static func encode(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

public enum Base64 {
    public static func encode(_ bytes: [UInt8], url: Bool = false) -> String {
        let s = Data(bytes).base64EncodedString()
        guard url else { return s }
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s.unicodeScalars {
            switch c {
            case "+": out.unicodeScalars.append("-")
            case "/": out.unicodeScalars.append("_")
            case "=": continue
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    public static func decode(_ s: String) -> [UInt8]? { Data(base64Encoded: s).map { [UInt8]($0) } }
}
