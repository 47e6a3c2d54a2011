import COpenSSL
import COpus
import CSRTP
import CVPX
import Foundation
import Testing

/// Each C library the media side needs is linked and answers a real call, so a
/// missing or broken system package fails here rather than in a later issue.
@Suite struct CLibrariesTests {
    @Test func openSSLComputesSHA256() {
        var digest = [UInt8](repeating: 0, count: 32)
        let input = Array("abc".utf8)
        _ = SHA256(input, input.count, &digest)
        // FIPS 180-2 test vector for "abc".
        #expect(digest.prefix(4) == [0xba, 0x78, 0x16, 0xbf])
        #expect(digest.suffix(2) == [0x15, 0xad])
    }

    @Test func opusEncodesAFrame() throws {
        var error: Int32 = 0
        let encoder = try #require(opus_encoder_create(48000, 1, OPUS_APPLICATION_VOIP, &error))
        #expect(error == OPUS_OK)
        defer { opus_encoder_destroy(encoder) }
        #expect(shim_opus_set_bitrate(encoder, 32000) == OPUS_OK)
        var pcm = [Int16](repeating: 0, count: 960)
        for i in 0..<960 { pcm[i] = Int16(8000 * sin(Double(i) * 2 * .pi * 440 / 48000)) }
        var packet = [UInt8](repeating: 0, count: 1500)
        let bytes = opus_encode(encoder, pcm, 960, &packet, Int32(packet.count))
        #expect(bytes > 0)
    }

    @Test func vpxOpensAVP8Encoder() {
        var config = vpx_codec_enc_cfg_t()
        #expect(vpx_codec_enc_config_default(vpx_codec_vp8_cx(), &config, 0) == VPX_CODEC_OK)
        config.g_w = 64
        config.g_h = 64
        var codec = vpx_codec_ctx_t()
        #expect(shim_vpx_codec_enc_init(&codec, vpx_codec_vp8_cx(), &config, 0) == VPX_CODEC_OK)
        #expect(shim_vp8_set_cpuused(&codec, -6) == VPX_CODEC_OK)
        vpx_codec_destroy(&codec)
    }

    // libsrtp's global init/shutdown is exercised (under a lock) by
    // SRTPTests' interop suite; a second, concurrent srtp_init here would race
    // it, so this only checks that the library links and its policy setters work.
    @Test func libsrtpPolicySetterLinks() {
        var policy = srtp_crypto_policy_t()
        shim_srtp_policy_aes_cm_128_hmac_sha1_80(&policy)
        #expect(policy.auth_tag_len == 10)
        #expect(policy.cipher_key_len == 30)
    }
}
