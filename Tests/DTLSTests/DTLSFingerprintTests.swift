import COpenSSL
@testable import DTLS
import RTCBase
import Testing

@Suite("Certificates and fingerprints (RFC 8122)")
struct DTLSFingerprintTests {
    @Test("the SDP form is the hash name then uppercase hex pairs joined by colons")
    func format() throws {
        let fingerprint = TestCertificates.server.fingerprint
        let text = fingerprint.sdpValue
        #expect(text.hasPrefix("sha-256 "))
        let hex = text.dropFirst("sha-256 ".count)
        #expect(hex.count == 32 * 3 - 1)
        #expect(hex.split(separator: ":").count == 32)
        #expect(hex.allSatisfy { "0123456789ABCDEF:".contains($0) })
        #expect(fingerprint.description == text)
    }

    @Test("parse(format(x)) == x, also for lowercase input and other hash functions")
    func roundTrip() throws {
        let fingerprint = TestCertificates.client.fingerprint
        #expect(try DTLSFingerprint(parsing: fingerprint.sdpValue) == fingerprint)
        #expect(try DTLSFingerprint(parsing: "  " + fingerprint.sdpValue.lowercased() + "\r\n") == fingerprint)
        #expect(try DTLSFingerprint(parsing: fingerprint.sdpValue.uppercased()) == fingerprint)
        for algorithm in DTLSFingerprint.Algorithm.allCases {
            let other = try #require(TestCertificates.client.fingerprint(algorithm: algorithm))
            #expect(other.digest.count == algorithm.digestLength)
            #expect(try DTLSFingerprint(parsing: other.sdpValue) == other)
        }
    }

    @Test("a known digest formats as expected")
    func knownValue() throws {
        let digest: [UInt8] = (0..<32).map { UInt8($0 * 8) }
        let fingerprint = try DTLSFingerprint(algorithm: .sha256, digest: digest)
        #expect(fingerprint.sdpValue == "sha-256 00:08:10:18:20:28:30:38:40:48:50:58:60:68:70:78:80:88:90:98:A0:A8:B0:B8:C0:C8:D0:D8:E0:E8:F0:F8")
    }

    @Test("malformed fingerprints are rejected", arguments: [
        "", "sha-256", "sha-256 ", "md5 00:11", "sha-256 AB:CD",
        "sha-256 " + String(repeating: "AB:", count: 31) + "A",
        "sha-256 " + String(repeating: "AB:", count: 31) + "GG",
        "sha-256 " + String(repeating: "AB-", count: 31) + "AB",
        "sha-256 " + String(repeating: "AB:", count: 32) + "AB",
        "sha-999 " + String(repeating: "AB:", count: 31) + "AB",
    ])
    func rejects(_ text: String) {
        #expect(throws: DTLSError.invalidInput) { try DTLSFingerprint(parsing: text) }
    }

    @Test("the fingerprint is SHA-256 over the DER certificate, computed independently")
    func digestOfDER() throws {
        let der = TestCertificates.server.derEncoded
        #expect(der.count > 200)
        var digest = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        #expect(EVP_Digest(der, der.count, &digest, &length, EVP_sha256(), nil) == 1)
        #expect(length == 32)
        #expect(TestCertificates.server.fingerprint.digest == digest)
    }

    @Test("the certificate is self-signed P-256, CN parley, valid now, with a random serial")
    func certificateFields() throws {
        let a = try DTLSCertificate()
        let b = try DTLSCertificate()
        #expect(a.fingerprint != b.fingerprint)
        let der = a.derEncoded
        let parsed = try #require(der.withUnsafeBufferPointer { buffer -> OpaquePointer? in
            var cursor: UnsafePointer<UInt8>? = buffer.baseAddress
            return d2i_X509(nil, &cursor, der.count)
        })
        defer { X509_free(parsed) }
        #expect(X509_NAME_cmp(X509_get_issuer_name(parsed), X509_get_subject_name(parsed)) == 0)
        let key = try #require(X509_get0_pubkey(parsed))
        #expect(X509_verify(parsed, key) == 1)                   // self-signature verifies
        #expect(EVP_PKEY_get_base_id(key) == EVP_PKEY_EC)
        #expect(EVP_PKEY_get_bits(key) == 256)
        #expect(X509_cmp_current_time(X509_get0_notBefore(parsed)) < 0)
        #expect(X509_cmp_current_time(X509_get0_notAfter(parsed)) > 0)
        var name = [CChar](repeating: 0, count: 64)
        #expect(X509_NAME_get_text_by_NID(X509_get_subject_name(parsed), NID_commonName, &name, 64) == 6)
        #expect(String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) == "parley")
        let serialA = ASN1_INTEGER_get(X509_get_serialNumber(parsed))
        #expect(serialA > 0)
    }

    @Test("connections share one SSL_CTX per certificate and profile list")
    func contextSharing() throws {
        let certificate = try DTLSCertificate()
        let a = try certificate.context(srtpProfiles: [.aeadAes128Gcm, .aes128CmHmacSha1_80])
        let b = try certificate.context(srtpProfiles: [.aeadAes128Gcm, .aes128CmHmacSha1_80])
        let c = try certificate.context(srtpProfiles: [.aes128CmHmacSha1_80])
        #expect(a == b)
        #expect(a != c)
        // Connections outliving nothing: make and drop many.
        for _ in 0..<200 {
            _ = try DTLSConnection(role: .server, certificate: certificate)
        }
        #expect(throws: DTLSError.invalidInput) {
            try DTLSConnection(role: .client, certificate: certificate, configuration: DTLSConfiguration(srtpProfiles: []))
        }
        #expect(throws: DTLSError.invalidInput) {
            try DTLSConnection(role: .client, certificate: certificate, mtu: 100)
        }
    }
}
