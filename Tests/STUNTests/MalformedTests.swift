import Testing
import RTCBase
@testable import STUN

@Suite("Malformed STUN input")
struct MalformedTests {
    func parse(_ bytes: [UInt8]) throws(STUNError) -> STUNMessage {
        try STUNMessage(parsing: bytes)
    }

    func expectError(_ e: STUNError, _ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(throws: e, sourceLocation: sourceLocation) { try parse(bytes) }
    }

    var valid: [UInt8] { RFC5769.request }

    @Test func truncatedHeader() {
        expectError(.truncatedHeader, [])
        expectError(.truncatedHeader, Array(valid[0..<19]))
    }

    @Test func topBitsSet() {
        var b = valid
        b[0] |= 0x80
        expectError(.notSTUN, b)
    }

    @Test func badCookie() {
        var b = valid
        b[5] ^= 1
        expectError(.badMagicCookie, b)
    }

    @Test func lengthMismatch() {
        expectError(.lengthMismatch, Array(valid.dropLast(4)))
        expectError(.lengthMismatch, valid + [0, 0, 0, 0])
    }

    @Test func oddLength() {
        var b = valid
        b[3] = 0x57
        expectError(.lengthNotMultipleOfFour, b)
    }

    @Test func attributeOverrun() {
        // One attribute claiming 100 bytes in an 8-byte body.
        let b: [UInt8] = [0, 1, 0, 8, 0x21, 0x12, 0xa4, 0x42] + [UInt8](repeating: 1, count: 12)
            + [0x80, 0x22, 0, 100, 0x41, 0x41, 0x41, 0x41]
        expectError(.attributeOverrun, b)
        // A lone 2-byte... impossible (length is a multiple of 4); a header-only tail works though.
        let c: [UInt8] = [0, 1, 0, 4, 0x21, 0x12, 0xa4, 0x42] + [UInt8](repeating: 1, count: 12) + [0x00, 0x06, 0x00, 0x01]
        expectError(.attributeOverrun, c)
    }

    @Test func badAddressFamily() {
        let b: [UInt8] = [1, 1, 0, 12, 0x21, 0x12, 0xa4, 0x42] + [UInt8](repeating: 1, count: 12)
            + [0x00, 0x20, 0x00, 0x08, 0x00, 0x03, 0, 0, 1, 2, 3, 4]
        expectError(.badAddressFamily, b)
    }

    @Test func wrongAttributeSizes() {
        // IPv4 family with a 20-byte value; PRIORITY of 2 bytes; MI of 16.
        let header: [UInt8] = [1, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42] + [UInt8](repeating: 1, count: 12)
        func msg(_ attr: [UInt8]) -> [UInt8] {
            var b = header + attr
            b[3] = UInt8(attr.count)
            return b
        }
        expectError(.malformedAttribute(type: 0x0020), msg([0x00, 0x20, 0x00, 0x14, 0x00, 0x01] + [UInt8](repeating: 0, count: 18)))
        expectError(.malformedAttribute(type: 0x0024), msg([0x00, 0x24, 0x00, 0x02, 0, 0, 0, 0]))
        expectError(.malformedAttribute(type: 0x0008), msg([0x00, 0x08, 0x00, 0x10] + [UInt8](repeating: 0, count: 16)))
        expectError(.malformedAttribute(type: 0x0006), msg([0x00, 0x06, 0x00, 0x02, 0xff, 0xfe, 0, 0]))  // not UTF-8
        expectError(.malformedAttribute(type: 0x0009), msg([0x00, 0x09, 0x00, 0x04, 0, 0, 7, 0]))  // class 7
    }

    @Test func badIntegrity() throws {
        var b = valid
        b[30] ^= 0x01  // inside SOFTWARE: covered by the MAC
        try b.withUnsafeBytes { p in
            let v = try STUNMessageView(p)
            #expect(throws: STUNError.integrityMismatch) { try v.verifyMessageIntegrity(key: STUNIntegrityKey(shortTermPassword: RFC5769.password)) }
            #expect(throws: STUNError.fingerprintMismatch) { try v.verifyFingerprint() }
        }
        try valid.withUnsafeBytes { p in
            let v = try STUNMessageView(p)
            #expect(throws: STUNError.integrityMismatch) { try v.verifyMessageIntegrity(key: STUNIntegrityKey(shortTermPassword: "wrong")) }
            #expect(throws: STUNError.integrityMissing) { try v.verifyMessageIntegritySHA256(key: STUNIntegrityKey(shortTermPassword: "wrong")) }
        }
    }

    @Test func badFingerprint() throws {
        var b = valid
        b[b.count - 1] ^= 0xFF
        try b.withUnsafeBytes { p in
            let v = try STUNMessageView(p)
            #expect(throws: STUNError.fingerprintMismatch) { try v.verifyFingerprint() }
            // Integrity does not cover FINGERPRINT, so it still verifies.
            try v.verifyMessageIntegrity(key: STUNIntegrityKey(shortTermPassword: RFC5769.password))
        }
    }

    @Test func fingerprintNotLast() {
        let b: [UInt8] = [0, 1, 0, 16, 0x21, 0x12, 0xa4, 0x42] + [UInt8](repeating: 1, count: 12)
            + [0x80, 0x28, 0x00, 0x04, 1, 2, 3, 4] + [0x00, 0x24, 0x00, 0x04, 0, 0, 0, 1]
        expectError(.fingerprintNotLast, b)
    }

    @Test("random bytes and random mutations never trap")
    func fuzz() throws {
        var rng = SplitMix64(seed: 42)
        let key = STUNIntegrityKey(shortTermPassword: RFC5769.password)
        let seeds = [RFC5769.request, RFC5769.ipv4Response, RFC5769.ipv6Response, RFC5769.longTermRequest,
                     try STUNMessage(type: .bindingRequest, transactionID: .random(using: &rng), attributes: AttributeTests.all).encoded(fingerprint: true)]
        var parsed = 0
        func exercise(_ b: [UInt8]) {
            b.withUnsafeBytes { p in
                guard let v = try? STUNMessageView(p) else { return }
                parsed += 1
                _ = try? v.verifyMessageIntegrity(key: key)
                _ = try? v.verifyMessageIntegritySHA256(key: key)
                _ = try? v.verifyFingerprint()
                _ = v.unknownComprehensionRequired()
                _ = v.xorMappedAddress
                _ = v.errorCodeNumber
                for a in v.attributes { _ = try? a.decode(transactionID: v.transactionID) }
            }
        }
        for _ in 0..<3000 {
            let n = Int.random(in: 0..<80, using: &rng)
            var b = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if n >= 20, Bool.random(using: &rng) {
                // Make the header plausible so the attribute walk is reached.
                b[0] &= 0x3F; b[2] = 0; b[3] = UInt8((n - 20) & ~3)
                b[4] = 0x21; b[5] = 0x12; b[6] = 0xa4; b[7] = 0x42
                b = Array(b[0..<(20 + Int(b[3]))])
            }
            exercise(b)
        }
        for _ in 0..<5000 {
            var b = seeds[Int.random(in: 0..<seeds.count, using: &rng)]
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: b[Int.random(in: 0..<b.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                case 1: b = Array(b.prefix(Int.random(in: 0...b.count, using: &rng)))
                default:
                    // Keep the header consistent but corrupt an attribute length.
                    if b.count > 24 { b[22 + 4 * Int.random(in: 0..<((b.count - 24) / 4 + 1), using: &rng) % (b.count - 23)] = UInt8.random(in: 0...255, using: &rng) }
                }
                if b.isEmpty { break }
            }
            exercise(b)
        }
        #expect(parsed > 100)
    }
}
