import DTLS
import ICE
import PeerSession
import RTCBase
import SRTP
import Testing

@Suite struct RobustnessTests {
    /// Connects, then pulls the next datagram `side` queues (after draining
    /// everything else onto the link).
    func connectedPair(seed: UInt64 = 30) throws -> Harness {
        let h = try Harness(seed: seed)
        #expect(h.connect())
        h.run(for: .milliseconds(200))
        h.drain()
        return h
    }

    @Test func garbageIsDroppedAndCountedNeverFatal() throws {
        let h = try Harness(seed: 31)
        var rng = SplitMix64(seed: 99)
        func garbage() -> [UInt8] {
            let n = Int(rng.next() % 300)
            return (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        }
        // Before anything is validated, from both the peer's and a stranger's address.
        for i in 0..<500 {
            let from = i % 2 == 0 ? Fixtures.clientAddress : Fixtures.strangerAddress
            h.inject(garbage(), toServer: true, from: from)
            h.inject(garbage(), toServer: false, from: i % 2 == 0 ? Fixtures.serverAddress : Fixtures.strangerAddress)
        }
        h.inject([], toServer: true, from: Fixtures.clientAddress)
        let early = h.server.counters
        #expect(early.malformedDatagrams + early.unvalidatedSourceDrops > 100)
        #expect(early.unvalidatedSourceDrops > 0)
        #expect(h.server.state == .checking)

        #expect(h.connect())
        // After connecting, garbage from the validated peer address too,
        // including datagrams that classify as DTLS, RTP and RTCP.
        for i in 0..<2000 {
            var g = garbage()
            if !g.isEmpty {
                switch i % 4 {
                case 0: g[0] = 0x80 | (g[0] & 0x3F)      // RTP/RTCP range
                case 1: g[0] = 20 + g[0] % 44          // DTLS range
                case 2: g[0] = g[0] % 4                // STUN range
                default: break
                }
            }
            h.inject(g, toServer: i % 2 == 0, from: i % 2 == 0 ? Fixtures.clientAddress : Fixtures.serverAddress)
        }
        h.drain()
        let c = h.server.counters
        #expect(c.malformedDatagrams + c.srtpAuthFailures > early.malformedDatagrams)
        #expect(c.srtpAuthFailures > 0)
        // Media still flows after the garbage.
        #expect(h.bothConnected)
        try exchangeMedia(h, count: 10, minimumFraction: 1.0)
    }

    @Test func mediaFromAnUnvalidatedAddressIsDropped() throws {
        let h = try connectedPair()
        let original = Fixtures.rtp(seq: 7, ssrc: 0xABCD, payload: Array(repeating: 0x5A, count: 100))
        try h.client.sendRTP(original)
        let srtp = try #require(h.client.pollTransmit())
        #expect(srtp.destination == Fixtures.serverAddress)
        #expect(srtp.payload != original)
        let before = h.server.counters.unvalidatedSourceDrops
        // A valid SRTP packet, but from an address that never passed a check.
        h.inject(srtp.payload, toServer: true, from: Fixtures.strangerAddress)
        h.drain()
        #expect(h.server.counters.unvalidatedSourceDrops == before + 1)
        #expect(h.rtpReceived(byServer: true).isEmpty)
        // The same packet from the peer's validated address decrypts.
        h.inject(srtp.payload, toServer: true, from: Fixtures.clientAddress)
        h.drain()
        #expect(h.rtpReceived(byServer: true) == [original])
    }

    @Test func tamperedAndReplayedSRTPAreCounted() throws {
        let h = try connectedPair()
        let original = Fixtures.rtp(seq: 9, ssrc: 0x1234, payload: Array(0..<80))
        try h.client.sendRTP(original)
        let srtp = try #require(h.client.pollTransmit()).payload
        for index in [1, 12, 40, srtp.count - 1] {
            var tampered = srtp
            tampered[index] ^= 0x01
            h.inject(tampered, toServer: true, from: Fixtures.clientAddress)
        }
        h.drain()
        #expect(h.server.counters.srtpAuthFailures == 4)
        #expect(h.rtpReceived(byServer: true).isEmpty)
        h.inject(srtp, toServer: true, from: Fixtures.clientAddress)
        h.inject(srtp, toServer: true, from: Fixtures.clientAddress)
        h.drain()
        #expect(h.rtpReceived(byServer: true) == [original])
        #expect(h.server.counters.srtpReplays == 1)

        // SRTCP too.
        let report = Fixtures.receiverReport(ssrc: 0x1234, lost: 3)
        try h.server.sendRTCP(report)
        var srtcp = try #require(h.server.pollTransmit()).payload
        srtcp[srtcp.count - 3] ^= 0x80
        h.inject(srtcp, toServer: false, from: Fixtures.serverAddress)
        h.drain()
        #expect(h.client.counters.srtpAuthFailures == 1)
        #expect(h.rtcpReceived(byServer: false).isEmpty)
    }

    @Test func mediaBeforeKeysIsCounted() throws {
        let h = try Harness(seed: 32, serverKnowsFingerprint: false)
        // Before any check, the address gate catches it first.
        h.inject(Fixtures.rtp(seq: 1, ssrc: 1, payload: [1, 2, 3]), toServer: true, from: Fixtures.clientAddress)
        #expect(h.server.counters.unvalidatedSourceDrops == 1)
        #expect(h.server.counters.bytesIn == 15)
        // The client is keyed; the server still waits for the fingerprint.
        h.run(for: .seconds(5))
        #expect(h.client.state == .connected)
        #expect(h.server.state == .handshaking)
        try h.client.sendRTP(Fixtures.rtp(seq: 2, ssrc: 1, payload: [4, 5, 6]))
        h.run(for: .milliseconds(200))
        #expect(h.server.counters.mediaBeforeKeys == 1)
        #expect(h.rtpReceived(byServer: true).isEmpty)
    }

    @Test(arguments: [DTLSSRTPProfile.aes128CmHmacSha1_80, .aeadAes128Gcm])
    func inPlaceProtectAndUnprotect(profile: DTLSSRTPProfile) throws {
        let h = try Harness(seed: 33, profiles: [profile])
        #expect(h.connect())
        h.drain()
        let srtp = try #require(h.server.profile)
        let original = Fixtures.rtp(seq: 500, ssrc: 0x77, payload: Array(repeating: 0xEE, count: 300))
        var buffer = [UInt8](repeating: 0, count: 1500)
        buffer.replaceSubrange(0..<original.count, with: original)
        let protectedLength = try buffer.withUnsafeMutableBytes { b throws(PeerSessionError) in
            try h.server.protectRTP(in: b, length: original.count)
        }
        #expect(protectedLength == original.count + srtp.rtpOverhead)
        let result = buffer.withUnsafeMutableBytes { b in
            h.client.unprotect(b, length: protectedLength, from: Fixtures.serverAddress)
        }
        #expect(result?.kind == .rtp)
        #expect(result.map { Array(buffer[0..<$0.length]) } == original)

        // RTCP in place, and the stranger gate on the in-place path.
        let report = Fixtures.receiverReport(ssrc: 0x77, lost: 1)
        buffer.replaceSubrange(0..<report.count, with: report)
        let n = try buffer.withUnsafeMutableBytes { b throws(PeerSessionError) in
            try h.client.protectRTCP(in: b, length: report.count)
        }
        let copy = buffer
        let fromStranger = buffer.withUnsafeMutableBytes { h.server.unprotect($0, length: n, from: Fixtures.strangerAddress) }
        #expect(fromStranger == nil)
        #expect(buffer == copy, "a dropped packet is left untouched")
        let fromPeer = buffer.withUnsafeMutableBytes { h.server.unprotect($0, length: n, from: Fixtures.clientAddress) }
        #expect(fromPeer?.kind == .rtcp)
        #expect(fromPeer.map { Array(buffer[0..<$0.length]) } == report)
        // Non-media is left for handleReceive.
        let stun: [UInt8] = [0, 1, 0, 0, 0x21, 0x12, 0xA4, 0x42] + Array(repeating: 0, count: 12)
        var stunBuffer = stun
        #expect(stunBuffer.withUnsafeMutableBytes { h.server.unprotect($0, length: stun.count, from: Fixtures.clientAddress) } == nil)
        #expect(h.server.counters.rtcpPacketsIn == 1)
    }

    @Test func countersTrackBytesAndPackets() throws {
        let h = try Harness(seed: 34)
        #expect(h.connect())
        let c0 = h.client.counters, s0 = h.server.counters
        #expect(c0.bytesOut > 0 && s0.bytesIn > 0)
        try exchangeMedia(h, count: 20, minimumFraction: 1.0)
        #expect(h.client.counters.rtpPacketsOut == c0.rtpPacketsOut + 20)
        #expect(h.server.counters.rtpPacketsIn == s0.rtpPacketsIn + 20)
        #expect(h.server.counters.rtcpPacketsIn == s0.rtcpPacketsIn + 4)
        #expect(h.server.counters.bytesIn > s0.bytesIn + 20 * 40)
    }
}
