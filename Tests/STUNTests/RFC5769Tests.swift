import Testing
import RTCBase
@testable import STUN

/// RFC 5769 test vectors (and the USERHASH of RFC 8489 Appendix B.1).
enum RFC5769 {
    static let tid: [UInt8] = [0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae]
    static let password = "VOkJxbRl1RmTxUk/WvJxBt"

    // §2.1
    static let request: [UInt8] = [
        0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42,
        0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
        0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e, 0x20, 0x74, 0x65, 0x73, 0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74,
        0x00, 0x24, 0x00, 0x04, 0x6e, 0x00, 0x01, 0xff,
        0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36,
        0x00, 0x06, 0x00, 0x09, 0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76, 0x59, 0x20, 0x20, 0x20,
        0x00, 0x08, 0x00, 0x14, 0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e, 0xf2, 0xb5,
        0xb2, 0xd3, 0xf2, 0x49, 0xc1, 0xb5, 0x71, 0xa2,
        0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf,
    ]

    // §2.2
    static let ipv4Response: [UInt8] = [
        0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42,
        0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
        0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63, 0x74, 0x6f, 0x72, 0x20,
        0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43,
        0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3, 0x8c, 0x74, 0x89, 0xf9,
        0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7,
        0x80, 0x28, 0x00, 0x04, 0xc0, 0x7d, 0x4c, 0x96,
    ]

    // §2.3
    static let ipv6Response: [UInt8] = [
        0x01, 0x01, 0x00, 0x48, 0x21, 0x12, 0xa4, 0x42,
        0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
        0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63, 0x74, 0x6f, 0x72, 0x20,
        0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47,
        0x01, 0x13, 0xa9, 0xfa, 0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9,
        0x00, 0x08, 0x00, 0x14, 0xa3, 0x82, 0x95, 0x4e, 0x4b, 0xe6, 0x7b, 0xf1, 0x17, 0x84, 0xc9, 0x7c,
        0x82, 0x92, 0xc2, 0x75, 0xbf, 0xe3, 0xed, 0x41,
        0x80, 0x28, 0x00, 0x04, 0xc8, 0xfb, 0x0b, 0x4c,
    ]

    // §2.4
    static let longTermRequest: [UInt8] = [
        0x00, 0x01, 0x00, 0x60, 0x21, 0x12, 0xa4, 0x42,
        0x78, 0xad, 0x34, 0x33, 0xc6, 0xad, 0x72, 0xc0, 0x29, 0xda, 0x41, 0x2e,
        0x00, 0x06, 0x00, 0x12, 0xe3, 0x83, 0x9e, 0xe3, 0x83, 0x88, 0xe3, 0x83, 0xaa, 0xe3, 0x83, 0x83,
        0xe3, 0x82, 0xaf, 0xe3, 0x82, 0xb9, 0x00, 0x00,
        0x00, 0x15, 0x00, 0x1c, 0x66, 0x2f, 0x2f, 0x34, 0x39, 0x39, 0x6b, 0x39, 0x35, 0x34, 0x64, 0x36,
        0x4f, 0x4c, 0x33, 0x34, 0x6f, 0x4c, 0x39, 0x46, 0x53, 0x54, 0x76, 0x79, 0x36, 0x34, 0x73, 0x41,
        0x00, 0x14, 0x00, 0x0b, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x6f, 0x72, 0x67, 0x00,
        0x00, 0x08, 0x00, 0x14, 0xf6, 0x70, 0x24, 0x65, 0x6d, 0xd6, 0x4a, 0x3e, 0x02, 0xb8, 0xe0, 0x71,
        0x2e, 0x85, 0xc9, 0xa2, 0x8c, 0xa8, 0x96, 0x66,
    ]
    static let longTermUsername = "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}"
}

@Suite("RFC 5769 STUN test vectors")
struct RFC5769Tests {
    let key = STUNIntegrityKey(shortTermPassword: RFC5769.password)

    func view<R>(_ bytes: [UInt8], _ body: (STUNMessageView) throws -> R) throws -> R {
        try bytes.withUnsafeBytes { p in try body(try STUNMessageView(p)) }
    }

    @Test("2.1 sample request: parse, integrity, fingerprint, re-serialize")
    func sampleRequest() throws {
        let tid = try #require(STUNTransactionID(bytes: RFC5769.tid))
        try view(RFC5769.request) { v in
            #expect(v.type == .bindingRequest)
            #expect(v.transactionID == tid)
            try v.verifyMessageIntegrity(key: key)
            try v.verifyFingerprint()
            #expect(v.priority == 0x6e0001ff)
            #expect(v.iceControlled == 0x932ff9b151263b36)
            #expect(v.unknownComprehensionRequired().isEmpty)
        }
        let m = try STUNMessage(parsing: RFC5769.request)
        #expect(m.attributes == [
            .software("STUN test client"),
            .priority(0x6e0001ff),
            .iceControlled(tieBreaker: 0x932ff9b151263b36),
            .username("evtj:h6vY"),
            .messageIntegrity(Array(RFC5769.request[80..<100])),
            .fingerprint(0xe57a3bcf),
        ])
        // The vector pads with spaces; with the same padding, recomputing
        // integrity and fingerprint must give the vector back byte for byte.
        let again = try m.encoded(integrity: key, fingerprint: true, padding: 0x20)
        #expect(again == RFC5769.request)
        // Zero padding gives different bytes that still verify.
        let zeroPadded = try m.encoded(integrity: key, fingerprint: true)
        #expect(zeroPadded != RFC5769.request)
        try view(zeroPadded) { v in
            try v.verifyMessageIntegrity(key: key)
            try v.verifyFingerprint()
        }
        #expect(try STUNMessage(parsing: zeroPadded).attributes.count == 6)
    }

    @Test("2.2 IPv4 response")
    func ipv4Response() throws {
        try view(RFC5769.ipv4Response) { v in
            #expect(v.type == .bindingSuccess)
            try v.verifyMessageIntegrity(key: key)
            try v.verifyFingerprint()
            #expect(v.xorMappedAddress == TransportAddress("192.0.2.1:32853"))
        }
        let m = try STUNMessage(parsing: RFC5769.ipv4Response)
        #expect(m.first(.software) == .software("test vector"))
        #expect(m.xorMappedAddress == TransportAddress("192.0.2.1:32853"))
        #expect(try m.encoded(integrity: key, fingerprint: true, padding: 0x20) == RFC5769.ipv4Response)
    }

    @Test("2.3 IPv6 response")
    func ipv6Response() throws {
        let expected = TransportAddress("[2001:db8:1234:5678:11:2233:4455:6677]:32853")
        #expect(expected != nil)
        try view(RFC5769.ipv6Response) { v in
            try v.verifyMessageIntegrity(key: key)
            try v.verifyFingerprint()
            #expect(v.xorMappedAddress == expected)
        }
        let m = try STUNMessage(parsing: RFC5769.ipv6Response)
        #expect(m.xorMappedAddress == expected)
        #expect(try m.encoded(integrity: key, fingerprint: true, padding: 0x20) == RFC5769.ipv6Response)
    }

    @Test("2.4 request with long-term authentication")
    func longTermRequest() throws {
        // "TheMatrIX" is the password after SASLprep, as the RFC gives it.
        let longTerm = STUNIntegrityKey(username: RFC5769.longTermUsername, realm: "example.org", password: "TheMatrIX")
        #expect(longTerm.key.count == 16)
        try view(RFC5769.longTermRequest) { v in
            try v.verifyMessageIntegrity(key: longTerm)
            #expect(throws: STUNError.fingerprintMissing) { try v.verifyFingerprint() }
            #expect(throws: STUNError.integrityMismatch) { try v.verifyMessageIntegrity(key: key) }
        }
        let m = try STUNMessage(parsing: RFC5769.longTermRequest)
        #expect(m.username == RFC5769.longTermUsername)
        #expect(m.nonce == "f//499k954d6OL34oL9FSTvy64sA")
        #expect(m.realm == "example.org")
        #expect(try m.encoded(integrity: longTerm) == RFC5769.longTermRequest)
    }

    @Test("RFC 8489 B.1 USERHASH and SHA-256 long-term key size")
    func userhash() throws {
        let hash = STUNIntegrityKey.userhash(username: RFC5769.longTermUsername, realm: "example.org")
        #expect(hash == [0x4a, 0x3c, 0xf3, 0x8f, 0xef, 0x69, 0x92, 0xbd, 0xa9, 0x52, 0xc6, 0x78, 0x04, 0x17, 0xda, 0x0f,
                         0x24, 0x81, 0x94, 0x15, 0x56, 0x9e, 0x60, 0xb2, 0x05, 0xc4, 0x6e, 0x41, 0x40, 0x7f, 0x17, 0x04])
        let k = STUNIntegrityKey(username: RFC5769.longTermUsername, realm: "example.org", password: "TheMatrIX", algorithm: .sha256)
        #expect(k.key.count == 32)
    }

    @Test("HMAC matches RFC 2202 / RFC 4231 known answers")
    func hmacKnownAnswers() {
        // RFC 2202 test case 2 and RFC 4231 test case 2: key "Jefe".
        let k = STUNIntegrityKey(key: Array("Jefe".utf8))
        let msg = Array("what do ya want for nothing?".utf8)
        #expect(hex(k.hmacSHA1(msg)) == "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79")
        #expect(hex(k.hmacSHA256(msg)) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        // RFC 2202 test case 6: an 80-byte key is hashed first.
        let long = STUNIntegrityKey(key: [UInt8](repeating: 0xaa, count: 80))
        #expect(hex(long.hmacSHA1(Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8)))
                == "aa4ae5e15272d00e95705637ce8a3b55ed402112")
    }

    @Test("CRC-32 check value")
    func crc() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF43926)
    }
}

func hex(_ b: [UInt8]) -> String {
    b.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
}
