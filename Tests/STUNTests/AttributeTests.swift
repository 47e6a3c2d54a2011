import Testing
import RTCBase
@testable import STUN


@Suite("STUN attributes and header")
struct AttributeTests {
    static let v4 = TransportAddress("192.0.2.1:3478")!
    static let v6 = TransportAddress("[2001:db8::dead:beef]:65535")!

    static let all: [STUNAttribute] = [
        .mappedAddress(v4), .mappedAddress(v6),
        .xorMappedAddress(v4), .xorMappedAddress(v6),
        .xorPeerAddress(v4), .xorPeerAddress(v6),
        .xorRelayedAddress(v4), .xorRelayedAddress(v6),
        .username("user:frag"), .userhash(Array(0..<32)),
        .errorCode(.unknownAttribute), .errorCode(STUNErrorCode(code: 699, reason: "")),
        .realm("example.org"), .nonce("abc"),
        .passwordAlgorithms([STUNPasswordAlgorithm(.md5), STUNPasswordAlgorithm(algorithm: 9, parameters: [1, 2, 3])]),
        .passwordAlgorithm(STUNPasswordAlgorithm(.sha256)),
        .unknownAttributes([0x0003, 0x7FFF, 0x1234]),
        .software("Parley ✓"),
        .alternateServer(v6),
        .priority(0x6E00_01FF), .useCandidate,
        .iceControlled(tieBreaker: 0x0102_0304_0506_0708), .iceControlling(tieBreaker: .max),
        .channelNumber(0x4000), .lifetime(seconds: 600), .data([1, 2, 3, 4, 5]), .data([]),
        .evenPort(reserveNext: true), .evenPort(reserveNext: false),
        .requestedTransport(protocolNumber: 17), .dontFragment, .reservationToken(0xFEDC_BA98_7654_3210),
        .requestedAddressFamily(.ipv6), .additionalAddressFamily(.ipv6),
        .addressErrorCode(family: .ipv6, error: .addressFamilyNotSupported),
        .icmp(type: 3, code: 1, errorData: 0xDEAD_BEEF),
        .unknown(type: 0x7ABC, value: [9, 8, 7]), .unknown(type: 0xC001, value: []),
    ]

    @Test("message type interleaving (RFC 8489 §5)")
    func messageType() {
        #expect(STUNMessageType.bindingRequest.rawValue == 0x0001)
        #expect(STUNMessageType.bindingSuccess.rawValue == 0x0101)
        #expect(STUNMessageType.bindingError.rawValue == 0x0111)
        #expect(STUNMessageType.bindingIndication.rawValue == 0x0011)
        #expect(STUNMessageType(method: .allocate, messageClass: .request).rawValue == 0x0003)
        #expect(STUNMessageType(method: .data, messageClass: .indication).rawValue == 0x0017)
        for m in stride(from: UInt16(0), to: 0x1000, by: 7) {
            for c in STUNClass.allCases {
                let t = STUNMessageType(method: STUNMethod(rawValue: m), messageClass: c)
                #expect(STUNMessageType(rawValue: t.rawValue) == t)
                #expect(t.rawValue & 0xC000 == 0)
            }
        }
    }

    @Test("every attribute round-trips through an owned message", arguments: AttributeTests.all)
    func roundTrip(_ attribute: STUNAttribute) throws {
        var rng = SplitMix64(seed: 7)
        let m = STUNMessage(type: .bindingRequest, transactionID: .random(using: &rng), attributes: [attribute])
        let bytes = try m.encoded()
        #expect(bytes.count == 20 + attribute.encodedSize)
        #expect(bytes.count % 4 == 0)
        let back = try STUNMessage(parsing: bytes)
        #expect(back == m)
    }

    @Test("all attributes together, with integrity and fingerprint")
    func everything() throws {
        var rng = SplitMix64(seed: 8)
        let key = STUNIntegrityKey(shortTermPassword: "pw")
        let m = STUNMessage(type: STUNMessageType(method: .allocate, messageClass: .successResponse),
                            transactionID: .random(using: &rng), attributes: AttributeTests.all)
        let bytes = try m.encoded(integrity: key, integritySHA256: key, fingerprint: true)
        try bytes.withUnsafeBytes { p in
            let v = try STUNMessageView(p)
            try v.verifyMessageIntegrity(key: key)
            try v.verifyMessageIntegritySHA256(key: key)
            try v.verifyFingerprint()
            #expect(v.unknownComprehensionRequired() == [0x7ABC])
        }
        let back = try STUNMessage(parsing: bytes)
        #expect(Array(back.attributes.prefix(AttributeTests.all.count)) == AttributeTests.all)
        #expect(back.attributes.count == AttributeTests.all.count + 3)
    }

    @Test("XOR address encoding of IPv4 against RFC 5769 2.2 bytes")
    func xorBytes() throws {
        let tid = try #require(STUNTransactionID(bytes: RFC5769.tid))
        let m = STUNMessage(type: .bindingSuccess, transactionID: tid, attributes: [.xorMappedAddress(TransportAddress("192.0.2.1:32853")!)])
        let bytes = try m.encoded()
        #expect(Array(bytes[20...]) == [0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43])
    }

    @Test("attributes after MESSAGE-INTEGRITY are ignored, except FINGERPRINT")
    func ignoredAfterIntegrity() throws {
        let key = STUNIntegrityKey(shortTermPassword: "secret")
        var rng = SplitMix64(seed: 9)
        var buf = [UInt8](repeating: 0, count: 256)
        let n = try buf.withUnsafeMutableBytes { p in
            var w = try STUNMessageWriter(into: p, type: .bindingRequest, transactionID: .random(using: &rng))
            try w.append(.username("a:b"))
            try w.appendMessageIntegrity(key: key)
            try w.append(.priority(5))  // not covered: must be ignored
            try w.appendFingerprint()
            return w.count
        }
        let bytes = Array(buf[0..<n])
        try bytes.withUnsafeBytes { p in
            let v = try STUNMessageView(p)
            try v.verifyMessageIntegrity(key: key)
            try v.verifyFingerprint()
            #expect(v.priority == nil)
        }
        #expect(try STUNMessage(parsing: bytes).attributes.map(\.type) == [.username, .messageIntegrity, .fingerprint])
    }

    @Test("writer output equals owned encoding")
    func writerMatchesOwned() throws {
        let key = STUNIntegrityKey(shortTermPassword: "pw")
        let tid = STUNTransactionID(high: 1, low: 2)
        let addr = TransportAddress("[2001:db8::1]:9")!
        var buf = [UInt8](repeating: 0, count: 128)
        let n = try buf.withUnsafeMutableBytes { p in
            var w = try STUNMessageWriter(into: p, type: .bindingSuccess, transactionID: tid)
            try w.appendAddress(.xorMappedAddress, addr)
            try w.appendMessageIntegrity(key: key)
            try w.appendFingerprint()
            return w.count
        }
        let owned = try STUNMessage(type: .bindingSuccess, transactionID: tid, attributes: [.xorMappedAddress(addr)])
            .encoded(integrity: key, fingerprint: true)
        #expect(Array(buf[0..<n]) == owned)
    }

    @Test("writer reports a buffer that is too small")
    func smallBuffer() throws {
        var buf = [UInt8](repeating: 0, count: 30)
        _ = buf.withUnsafeMutableBytes { p in
            #expect(throws: STUNError.bufferTooSmall) {
                var w = try STUNMessageWriter(into: p, type: .bindingRequest, transactionID: STUNTransactionID(high: 0, low: 0))
                try w.appendMessageIntegrity(key: STUNIntegrityKey(shortTermPassword: "x"))
            }
        }
    }
}
