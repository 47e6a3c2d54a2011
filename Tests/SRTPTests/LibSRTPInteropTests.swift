import Testing
import RTCBase
@testable import SRTP

/// Cross-checks with Debian's libsrtp2 both ways, for every profile: Parley's
/// output must unprotect in libsrtp to the same plaintext and vice versa,
/// across a sequence-number wrap (ROC 0 → 1), with CSRCs and header
/// extensions, for several SSRCs under one key, and for SRTCP.
@Suite struct LibSRTPInteropTests {
    static let ssrcs: [UInt32] = [0xCAFE_BABE, 0x0000_0001, 0x8000_0000]

    /// Packet `n` of the test stream of `ssrc`: sequence numbers start just
    /// below the wrap, and header shapes and payload sizes vary.
    static func packet(_ n: Int, ssrc: UInt32, rng: inout SeededGenerator) -> [UInt8] {
        let sequence = UInt16(truncatingIfNeeded: 65_500 + n)
        let payloadCount = [0, 1, 15, 16, 17, 160, 1200][n % 7]
        let csrcs: [UInt32] = n % 3 == 0 ? [] : (0..<(n % 3)).map { UInt32($0) &+ ssrc }
        let extensionWords: [UInt32]? = n % 4 == 1 ? nil : [0x1000_AABB, UInt32(n)]
        return makeRTP(
            sequence: sequence, ssrc: ssrc, timestamp: UInt32(n * 3000),
            csrcs: csrcs, extensionWords: n % 5 == 0 ? nil : extensionWords,
            payload: rng.bytes(payloadCount))
    }

    static let packetsPerStream = 120

    @Test(arguments: SRTPProfile.allCases)
    func parleyProtectsLibSRTPUnprotects(profile: SRTPProfile) throws {
        let key = masterKey(for: profile, seed: 1)
        let parley = try SRTPContext(profile: profile, masterKey: key)
        let reference = try LibSRTP(profile: profile, masterKey: key, inbound: true)
        var rng = SeededGenerator(seed: 7)
        for n in 0..<Self.packetsPerStream {
            for ssrc in Self.ssrcs {
                let plain = Self.packet(n, ssrc: ssrc, rng: &rng)
                let protected = try parley.protectRTP(plain)
                #expect(protected.count == plain.count + profile.rtpOverhead)
                #expect(try reference.unprotectRTP(protected) == plain, "packet \(n) ssrc \(ssrc)")
            }
        }
        for ssrc in Self.ssrcs {
            #expect(parley.outboundRolloverCounter(for: SSRC(ssrc)) == 1)
        }
        for n in 0..<40 {
            let plain = makeRTCP(ssrc: Self.ssrcs[n % 3], blocks: n % 4, tail: rng.bytes(n % 9))
            let protected = try parley.protectRTCP(plain)
            #expect(protected.count == plain.count + profile.rtcpOverhead)
            #expect(try reference.unprotectRTCP(protected) == plain, "rtcp \(n)")
        }
    }

    @Test(arguments: SRTPProfile.allCases)
    func libSRTPProtectsParleyUnprotects(profile: SRTPProfile) throws {
        let key = masterKey(for: profile, seed: 2)
        let reference = try LibSRTP(profile: profile, masterKey: key, inbound: false)
        let parley = try SRTPContext(profile: profile, masterKey: key)
        var rng = SeededGenerator(seed: 8)
        for n in 0..<Self.packetsPerStream {
            for ssrc in Self.ssrcs {
                let plain = Self.packet(n, ssrc: ssrc, rng: &rng)
                let protected = try reference.protectRTP(plain)
                #expect(try parley.unprotectRTP(protected) == plain, "packet \(n) ssrc \(ssrc)")
            }
        }
        for ssrc in Self.ssrcs {
            #expect(parley.inboundRolloverCounter(for: SSRC(ssrc)) == 1)
        }
        for n in 0..<40 {
            let plain = makeRTCP(ssrc: Self.ssrcs[n % 3], blocks: n % 4, tail: rng.bytes(n % 9))
            let protected = try reference.protectRTCP(plain)
            #expect(try parley.unprotectRTCP(protected) == plain, "rtcp \(n)")
        }
    }

    /// Reordering within the window across the wrap: libsrtp protects in
    /// order, Parley receives in a shuffled order and must guess every ROC.
    @Test(arguments: SRTPProfile.allCases)
    func reorderedAcrossTheWrap(profile: SRTPProfile) throws {
        let key = masterKey(for: profile, seed: 3)
        let reference = try LibSRTP(profile: profile, masterKey: key, inbound: false)
        let parley = try SRTPContext(profile: profile, masterKey: key)
        var rng = SeededGenerator(seed: 9)
        let plains = (0..<200).map { Self.packet($0, ssrc: 42, rng: &rng) }
        let protected = try plains.map { try reference.protectRTP($0) }
        // Deliver the first one first (it fixes ROC 0), then shuffle in blocks of 50.
        var order = [0]
        var rest = Array(1..<200)
        while !rest.isEmpty {
            var block = Array(rest.prefix(50))
            rest.removeFirst(block.count)
            block.shuffle(using: &rng)
            order += block
        }
        for i in order {
            #expect(try parley.unprotectRTP(protected[i]) == plains[i], "packet \(i)")
        }
        // Every one of them is now a replay.
        for i in [0, 35, 36, 199] {
            #expect(throws: SRTPError.replayed) { try parley.unprotectRTP(protected[i]) }
        }
    }
}
