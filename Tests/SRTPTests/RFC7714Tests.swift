import Testing
import RTCBase
@testable import SRTP

/// RFC 7714 §16 (SRTP) and §17 (SRTCP) examples for AEAD_AES_128_GCM; the
/// RFC gives the session key and salt directly.
@Suite struct RFC7714Tests {
    static let keys = SessionKeys(
        encryptionKey: hex("000102030405060708090a0b0c0d0e0f"),
        salt: hex("517569642070726f2071756f"),  // "Quid pro quo"
        authenticationKey: [])

    static func context() throws -> SRTPContext {
        try SRTPContext(profile: .aeadAES128GCM, rtpKeys: keys, rtcpKeys: keys)
    }

    // §16.1.1: SSRC 0x5501a0b2, SEQ 0xf17b, ROC 0,
    // payload "Gallia est omnis divisa in partes tres".
    static let rtpPlain = hex("""
        8040f17b 8041f8d3 5501a0b2 47616c6c 69612065 7374206f 6d6e6973
        20646976 69736120 696e2070 61727465 73207472 6573
        """)
    static let rtpProtected = hex("""
        8040f17b 8041f8d3 5501a0b2 f24de3a3 fb34de6c acba861c 9d7e4bca
        be633bd5 0d294e6f 42a5f47a 51c7d19b 36de3adf 8833899d 7f27beb1
        6a9152cf 765ee439 0cce
        """)

    // §17.1: sender report of SSRC "Mars", SRTCP index 0x5d4.
    static let rtcpPlain = hex("""
        81c8000d 4d617273 4e545031 4e545032 52545020 0000042a 0000e930
        4c756e61 deadbeef deadbeef deadbeef deadbeef deadbeef
        """)
    static let rtcpProtected = hex("""
        81c8000d 4d617273 63e94885 dcdab67c a727d766 2f6b7e99 7ff5c0f7
        6c06f32d c676a5f1 730d6fda 4ce09b46 86303ded 0bb9275b c84aa458
        96cf4d2f c5abf872 45d9eade 800005d4
        """)

    @Test func rtpEncryption() throws {
        #expect(try Self.context().protectRTP(Self.rtpPlain) == Self.rtpProtected)
    }

    @Test func rtpDecryption() throws {
        let context = try Self.context()
        #expect(try context.unprotectRTP(Self.rtpProtected) == Self.rtpPlain)
        #expect(context.inboundRolloverCounter(for: SSRC(0x5501_a0b2)) == 0)
    }

    @Test func rtpTamperedTagFailsAndLeavesBufferAlone() throws {
        let context = try Self.context()
        for position in [5, 12, 30, Self.rtpProtected.count - 1] {
            var packet = Self.rtpProtected
            packet[position] ^= 0x01
            let original = packet
            #expect(throws: SRTPError.authenticationFailed) {
                try inPlace(&packet, context.unprotectRTP)
            }
            #expect(packet == original)
        }
        // Nothing was recorded by the failures: the genuine packet still passes.
        #expect(try context.unprotectRTP(Self.rtpProtected) == Self.rtpPlain)
    }

    @Test func rtcpEncryption() throws {
        let context = try Self.context()
        context.setNextOutboundRTCPIndex(0x5d4, for: SSRC(0x4d61_7273))
        #expect(try context.protectRTCP(Self.rtcpPlain) == Self.rtcpProtected)
    }

    @Test func rtcpDecryption() throws {
        let context = try Self.context()
        #expect(try context.unprotectRTCP(Self.rtcpProtected) == Self.rtcpPlain)
        #expect(throws: SRTPError.replayed) { try context.unprotectRTCP(Self.rtcpProtected) }
    }

    @Test func rtcpTamperedFails() throws {
        let context = try Self.context()
        for position in [0, 9, Self.rtcpProtected.count - 5, Self.rtcpProtected.count - 1] {
            var packet = Self.rtcpProtected
            packet[position] ^= 0x01
            #expect(throws: SRTPError.authenticationFailed) { try context.unprotectRTCP(packet) }
        }
        #expect(try context.unprotectRTCP(Self.rtcpProtected) == Self.rtcpPlain)
    }
}
