import Testing
@testable import SRTP

/// Test vectors of RFC 3711 Appendix B.
@Suite struct RFC3711Tests {
    // B.2: AES-CM keystream, session key and salt given directly.
    static let sessionKey = hex("2B7E151628AED2A6ABF7158809CF4F3C")
    static let sessionSalt = hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD")

    @Test func appendixB2Keystream() throws {
        let iv = Self.sessionSalt + [0, 0]
        let stream = try KeyDerivation.aesCounterKeystream(
            key: Self.sessionKey, iv: iv, length: 0xFF02 * 16)
        func block(_ n: Int) -> [UInt8] { Array(stream[(n * 16)..<(n * 16 + 16)]) }
        #expect(block(0x0000) == hex("E03EAD0935C95E80E166B16DD92B4EB4"))
        #expect(block(0x0001) == hex("D23513162B02D0F72A43A2FE4A5F97AB"))
        #expect(block(0x0002) == hex("41E95B3BB0A2E8DD477901E4FCA894C0"))
        #expect(block(0xFEFF) == hex("EC8CDF7398607CB0F2D21675EA9EA1E4"))
        #expect(block(0xFF00) == hex("362B7C3C6773516318A077D7FC5073AE"))
        #expect(block(0xFF01) == hex("6A2CC3787889374FBEB4C81B17BA6C44"))
    }

    /// The same keystream through the packet path: SSRC 0, ROC 0, SEQ 0
    /// makes the IV the bare salt, so a zero payload encrypts to the
    /// keystream itself (§4.1.1).
    @Test func appendixB2ThroughProtectRTP() throws {
        let keys = SessionKeys(
            encryptionKey: Self.sessionKey, salt: Self.sessionSalt,
            authenticationKey: [UInt8](repeating: 0, count: 20))
        let context = try SRTPContext(profile: .aes128CMHMACSHA1_80, rtpKeys: keys, rtcpKeys: keys)
        let packet = makeRTP(sequence: 0, ssrc: 0, payload: [UInt8](repeating: 0, count: 48))
        let protected = try context.protectRTP(packet)
        #expect(protected.count == packet.count + 10)
        #expect(Array(protected[0..<12]) == Array(packet[0..<12]))
        #expect(Array(protected[12..<60]) == hex("""
            E03EAD0935C95E80E166B16DD92B4EB4
            D23513162B02D0F72A43A2FE4A5F97AB
            41E95B3BB0A2E8DD477901E4FCA894C0
            """))
    }

    // B.3: key derivation with kdr = 0.
    static let masterKey = hex("E1F97A0D3E018BE0D64FA32C06DE4139")
    static let masterSalt = hex("0EC675AD498AFEEBB6960B3AABE6")

    @Test func appendixB3KeyDerivation() throws {
        let cipherKey = try KeyDerivation.derive(
            masterKey: Self.masterKey, masterSalt: Self.masterSalt, label: .rtpEncryption, length: 16)
        #expect(cipherKey == hex("C61E7A93744F39EE10734AFE3FF7A087"))
        let cipherSalt = try KeyDerivation.derive(
            masterKey: Self.masterKey, masterSalt: Self.masterSalt, label: .rtpSalt, length: 14)
        #expect(cipherSalt == hex("30CBBC08863D8C85D49DB34A9AE1"))
        // The RFC lists 94 octets of the authentication key PRF output.
        let authKey = try KeyDerivation.derive(
            masterKey: Self.masterKey, masterSalt: Self.masterSalt, label: .rtpAuthentication, length: 94)
        #expect(authKey == hex("""
            CEBE321F6FF7716B6FD4AB49AF256A156D38BAA48F0A0ACF3C34E2359E6CDBCE
            E049646C43D9327AD175578EF72270986371C10C9A369AC2F94A8C5FBCDDDC25
            6D6E919A48B610EF17C2041E474035766B68642C59BBFC2F34DB60DBDFB2
            """))
    }

    @Test func sessionKeysUseTheRightLabelsAndLengths() throws {
        let master = SRTPMasterKey(key: Self.masterKey, salt: Self.masterSalt)
        let rtp = try KeyDerivation.sessionKeys(profile: .aes128CMHMACSHA1_80, master: master, rtcp: false)
        #expect(rtp.encryptionKey == hex("C61E7A93744F39EE10734AFE3FF7A087"))
        #expect(rtp.salt == hex("30CBBC08863D8C85D49DB34A9AE1"))
        #expect(rtp.authenticationKey == hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4"))
        let rtcp = try KeyDerivation.sessionKeys(profile: .aes128CMHMACSHA1_80, master: master, rtcp: true)
        let label3 = try KeyDerivation.derive(
            masterKey: Self.masterKey, masterSalt: Self.masterSalt, label: .rtcpEncryption, length: 16)
        #expect(rtcp.encryptionKey == label3)
        #expect(rtcp.encryptionKey != rtp.encryptionKey)
        #expect(rtcp.salt.count == 14 && rtcp.authenticationKey.count == 20)
    }

    @Test func wrongKeyLengthsAreRejected() {
        #expect(throws: SRTPError.invalidKeyLength) {
            try SRTPContext(
                profile: .aes128CMHMACSHA1_80,
                masterKey: SRTPMasterKey(key: Self.masterKey, salt: Array(Self.masterSalt.prefix(12))))
        }
        #expect(throws: SRTPError.invalidKeyLength) {
            try SRTPContext(
                profile: .aeadAES128GCM,
                masterKey: SRTPMasterKey(key: Self.masterKey, salt: Self.masterSalt))
        }
    }

    /// Appendix A's index estimate, including both wrap directions.
    @Test func rolloverCounterEstimate() {
        // s_l low in the space: a SEQ far above is from the previous ROC.
        #expect(estimateIndex(sequence: 0xFFF0, highest: 0x1_0005) == 0x0_FFF0)
        #expect(estimateIndex(sequence: 0x0010, highest: 0x1_0005) == 0x1_0010)
        // s_l high: a SEQ far below has wrapped into the next ROC.
        #expect(estimateIndex(sequence: 0x0003, highest: 0x2_FFF0) == 0x3_0003)
        #expect(estimateIndex(sequence: 0xFF00, highest: 0x2_FFF0) == 0x2_FF00)
        // Nothing before ROC 0.
        #expect(estimateIndex(sequence: 0xF000, highest: 0x0_0010) == nil)
    }

    @Test func replayWindowSlides() {
        var window = ReplayWindow(size: 64, first: 100)
        #expect(window.check(100) == .replayed)
        #expect(window.check(101) == .ahead)
        #expect(window.check(99) == .inside)
        #expect(window.check(36) == .tooOld)
        #expect(window.check(37) == .inside)
        window.accept(99)
        #expect(window.check(99) == .replayed)
        window.accept(200)
        #expect(window.highest == 200)
        // Bits of the old positions must not leak into the new indices.
        #expect(window.check(164) == .inside)
        #expect(window.check(163) == .inside)
        #expect(window.check(136) == .tooOld)
        window.accept(164)
        #expect(window.check(164) == .replayed)
        window.accept(227)
        #expect(window.check(164) == .replayed)
        #expect(window.check(165) == .inside)
        #expect(window.check(163) == .tooOld)
    }
}
