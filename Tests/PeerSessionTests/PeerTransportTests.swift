import DTLS
import ICE
import PeerSession
import RTCBase
import SRTP
import Testing

/// Sends `count` RTP packets and `count / 5` RTCP reports each way, spaced
/// 10 ms apart, lets the link settle, and checks that what arrived decrypts
/// to exactly what was sent.
func exchangeMedia(_ h: some MediaLink, count: Int, minimumFraction: Double) throws {
    var sentToServer: [[UInt8]] = []
    var sentToClient: [[UInt8]] = []
    var rtcpToServer: [[UInt8]] = []
    var rtcpToClient: [[UInt8]] = []
    let rtpBefore = (h.rtpReceived(byServer: true).count, h.rtpReceived(byServer: false).count)
    let rtcpBefore = (h.rtcpReceived(byServer: true).count, h.rtcpReceived(byServer: false).count)
    let failuresBefore = (h.client.counters.srtpAuthFailures, h.server.counters.srtpAuthFailures)
    for i in 0..<count {
        let payload = (0..<(20 + i % 200)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ i) }
        let up = Fixtures.rtp(seq: UInt16(1000 + i), ssrc: 0x1111_1111, payload: payload)
        let down = Fixtures.rtp(seq: UInt16(65_500 &+ UInt16(i % 65_536)), ssrc: 0x2222_2222, payloadType: 111, payload: payload.reversed())
        try h.client.sendRTP(up)
        try h.server.sendRTP(down)
        sentToServer.append(up)
        sentToClient.append(down)
        if i % 5 == 0 {
            let rrUp = Fixtures.receiverReport(ssrc: 0x1111_1111, lost: UInt8(i % 256))
            let rrDown = Fixtures.receiverReport(ssrc: 0x2222_2222, lost: UInt8((i + 1) % 256))
            try h.client.sendRTCP(rrUp)
            try h.server.sendRTCP(rrDown)
            rtcpToServer.append(rrUp)
            rtcpToClient.append(rrDown)
        }
        h.run(for: .milliseconds(10))
    }
    h.run(for: .milliseconds(500))

    let gotServer = Array(h.rtpReceived(byServer: true).dropFirst(rtpBefore.0))
    let gotClient = Array(h.rtpReceived(byServer: false).dropFirst(rtpBefore.1))
    // Every packet that arrived is one that was sent, byte for byte, once.
    #expect(Set(gotServer).isSubset(of: Set(sentToServer)))
    #expect(Set(gotClient).isSubset(of: Set(sentToClient)))
    #expect(Set(gotServer).count == gotServer.count)
    #expect(Set(gotClient).count == gotClient.count)
    let rtcpServer = Array(h.rtcpReceived(byServer: true).dropFirst(rtcpBefore.0))
    let rtcpClient = Array(h.rtcpReceived(byServer: false).dropFirst(rtcpBefore.1))
    #expect(Set(rtcpServer).isSubset(of: Set(rtcpToServer)))
    #expect(Set(rtcpClient).isSubset(of: Set(rtcpToClient)))
    let need = Int(Double(count) * minimumFraction)
    #expect(gotServer.count >= need, "server got \(gotServer.count)/\(count)")
    #expect(gotClient.count >= need, "client got \(gotClient.count)/\(count)")
    // Few RTCP packets: allow for the spread of the loss process.
    let rtcpNeed = minimumFraction >= 1 ? rtcpToServer.count : Int(Double(rtcpToServer.count) * minimumFraction * 0.5)
    #expect(rtcpServer.count >= rtcpNeed, "server got \(rtcpServer.count)/\(rtcpToServer.count) RTCP")
    #expect(rtcpClient.count >= rtcpNeed, "client got \(rtcpClient.count)/\(rtcpToClient.count) RTCP")
    #expect(h.client.counters.srtpAuthFailures == failuresBefore.0)
    #expect(h.server.counters.srtpAuthFailures == failuresBefore.1)
}

@Suite struct ConnectivityTests {
    @Test(arguments: [UInt64(1), 2, 3, 4])
    func connectsWithoutLoss(seed: UInt64) throws {
        let h = try Harness(loss: 0, seed: seed)
        #expect(h.connect(within: .seconds(10)))
        #expect(h.clientEvents.contains(.iceConnected(remote: Fixtures.serverAddress)))
        #expect(h.serverEvents.contains(.iceConnected(remote: Fixtures.clientAddress)))
        // GCM is preferred by both ends.
        #expect(h.clientEvents.contains(.connected(profile: .aeadAES128GCM)))
        #expect(h.serverEvents.contains(.connected(profile: .aeadAES128GCM)))
        try exchangeMedia(h, count: 60, minimumFraction: 1.0)
    }

    @Test(arguments: [UInt64(11), 12, 13, 14])
    func connectsWithTenPercentLoss(seed: UInt64) throws {
        let h = try Harness(loss: 0.10, seed: seed)
        #expect(h.connect(), "client \(h.client.state) server \(h.server.state)")
        try exchangeMedia(h, count: 60, minimumFraction: 0.7)
    }

    @Test(arguments: [UInt64(21), 22, 23, 24])
    func connectsWithThirtyPercentLoss(seed: UInt64) throws {
        let h = try Harness(loss: 0.30, seed: seed)
        #expect(h.connect(), "client \(h.client.state) server \(h.server.state) at \(h.now)")
        try exchangeMedia(h, count: 60, minimumFraction: 0.45)
    }

    @Test(arguments: [DTLSRole.client, .server])
    func bothDTLSRoleAssignments(clientDTLSRole: DTLSRole) throws {
        let h = try Harness(loss: 0.05, seed: 5, clientDTLSRole: clientDTLSRole)
        #expect(h.connect())
        #expect(h.client.configuration.dtlsRole == clientDTLSRole)
        try exchangeMedia(h, count: 30, minimumFraction: 0.8)
    }

    @Test(arguments: [(DTLSSRTPProfile.aes128CmHmacSha1_80, SRTPProfile.aes128CMHMACSHA1_80),
                      (DTLSSRTPProfile.aeadAes128Gcm, SRTPProfile.aeadAES128GCM)])
    func bothSRTPProfiles(dtlsProfile: DTLSSRTPProfile, expected: SRTPProfile) throws {
        let h = try Harness(seed: 6, profiles: [dtlsProfile])
        #expect(h.connect())
        #expect(h.client.profile == expected)
        #expect(h.server.profile == expected)
        #expect(h.serverEvents.contains(.connected(profile: expected)))
        try exchangeMedia(h, count: 30, minimumFraction: 1.0)
    }

    @Test func serverPreferenceDecidesTheProfile() throws {
        // The DTLS server picks from the client's list by its own order.
        let h = try Harness(seed: 7, profiles: [.aeadAes128Gcm, .aes128CmHmacSha1_80],
                            serverProfiles: [.aes128CmHmacSha1_80, .aeadAes128Gcm])
        #expect(h.connect())
        #expect(h.client.profile == h.server.profile)
    }

    @Test func fingerprintMismatchFails() throws {
        let h = try Harness(seed: 8, clientExpectsFingerprint: Fixtures.strangerCertificate.fingerprint)
        h.run(for: .seconds(20)) { h.client.state == .failed }
        #expect(h.client.state == .failed)
        #expect(h.clientEvents.contains(.failed(.fingerprintMismatch)))
        #expect(!h.clientEvents.contains { if case .connected = $0 { return true } else { return false } })
        #expect(throws: PeerSessionError.notConnected) { try h.client.sendRTP(Fixtures.rtp(seq: 1, ssrc: 1, payload: [1])) }
        #expect(h.client.pollTimeout() == nil)
    }

    @Test func fingerprintArrivingAfterTheHandshakeReleasesKeys() throws {
        // The server session learns the client's fingerprint only after the
        // handshake ran (signalling slower than media).
        let h = try Harness(seed: 9, serverKnowsFingerprint: false)
        h.run(for: .seconds(5))
        #expect(h.client.state == .connected)
        #expect(h.server.state == .handshaking)
        #expect(!h.serverEvents.contains { if case .connected = $0 { return true } else { return false } })
        h.server.setRemoteFingerprint(Fixtures.clientCertificate.fingerprint)
        h.drain()
        #expect(h.server.state == .connected)
        try exchangeMedia(h, count: 10, minimumFraction: 1.0)
    }

    @Test func consentExpiresWhenTheLinkIsCut() throws {
        let clock = ContinuousClock()
        let started = clock.now
        let h = try Harness(loss: 0, seed: 10)
        #expect(h.connect())
        h.run(for: .seconds(10))
        #expect(h.bothConnected, "consent keeps a live link up")
        h.cut = true
        let cutAt = h.now
        h.run(for: .seconds(40)) { h.client.state == .disconnected && h.server.state == .disconnected }
        #expect(h.clientEvents.contains(.disconnected(.consentExpired)))
        #expect(h.serverEvents.contains(.disconnected(.consentExpired)))
        // RFC 7675 §5.1: 30 s without consent, not much earlier.
        #expect(h.now - cutAt >= .seconds(24))
        #expect(throws: PeerSessionError.notConnected) { try h.client.sendRTP(Fixtures.rtp(seq: 1, ssrc: 1, payload: [1])) }
        #expect(throws: PeerSessionError.notConnected) { try h.server.sendRTCP(Fixtures.receiverReport(ssrc: 1, lost: 0)) }
        // 50+ s of simulated time, far faster than real time.
        #expect(clock.now - started < .seconds(3))
    }

    @Test func closeNotifyDisconnectsThePeer() throws {
        let h = try Harness(seed: 12)
        #expect(h.connect())
        h.client.close()
        #expect(h.client.state == .closed)
        h.run(for: .seconds(1)) { h.server.state == .disconnected }
        #expect(h.serverEvents.contains(.disconnected(.closedByPeer)))
    }

    @Test func sendingBeforeConnectedIsRefused() throws {
        let h = try Harness(seed: 13)
        #expect(throws: PeerSessionError.notConnected) { try h.client.sendRTP(Fixtures.rtp(seq: 1, ssrc: 1, payload: [1])) }
        var buffer = [UInt8](repeating: 0, count: 64)
        #expect(throws: PeerSessionError.notConnected) {
            _ = try buffer.withUnsafeMutableBytes { b throws(PeerSessionError) in try h.server.protectRTP(in: b, length: 20) }
        }
    }

    @Test func iceFailsWhenNothingAnswers() throws {
        let h = try Harness(seed: 14)
        h.cut = true
        h.run(for: .seconds(60)) { h.client.state == .failed }
        #expect(h.clientEvents.contains(.failed(.iceFailed)))
        #expect(h.server.state == .checking)
    }
}

@Suite("ServerTransport's allocation-free path")
struct ServerTransportTests {
    @Test func bindingIsAnsweredIntoTheCallersBufferAndRestartChangesCredentials() throws {
        let server = try ServerTransport(configuration: PeerSessionConfiguration(
            iceRole: .server, dtlsRole: .server, localCredentials: Fixtures.serverCredentials,
            certificate: Fixtures.serverCertificate, remoteCredentials: Fixtures.clientCredentials,
            remoteFingerprint: Fixtures.clientCertificate.fingerprint))
        var agent = ICEAgent(local: Fixtures.clientCredentials, remote: Fixtures.serverCredentials,
                             localCandidates: [Fixtures.clientAddress], rng: SplitMix64(seed: 5))
        agent.addRemoteCandidate(ICECandidate(foundation: "1", priority: ICECandidate.priority(type: .host),
                                              address: Fixtures.serverAddress, type: .host))
        var now = Instant.seconds(10)
        agent.handleTimeout(now: now)
        let first = agent.pollTransmit()
        let check = try #require(first)
        var reply = [UInt8](repeating: 0, count: 128)
        let outcome = check.payload.withUnsafeBytes { packet in
            reply.withUnsafeMutableBytes { server.answerBinding(packet, from: Fixtures.clientAddress, now: now, into: $0) }
        }
        guard case .answered(let n) = outcome else {
            Issue.record("expected an answer, got \(outcome)")
            return
        }
        #expect(server.isValidated(Fixtures.clientAddress))
        // The answer is a valid success for the agent.
        let accepted = reply.withUnsafeBytes {
            agent.handleReceive(UnsafeRawBufferPointer(rebasing: $0[0..<n]), from: Fixtures.serverAddress,
                                to: Fixtures.clientAddress, now: now)
        }
        #expect(accepted)
        #expect(server.pollTransmit() == nil, "nothing allocated a queued transmit")
        // Not STUN at all.
        let rtp = Fixtures.rtp(seq: 1, ssrc: 1, payload: [1])
        #expect(rtp.withUnsafeBytes { p in reply.withUnsafeMutableBytes { server.answerBinding(p, from: Fixtures.clientAddress, now: now, into: $0) } } == .notSTUN)
        // After an ICE restart the old credentials no longer pass.
        let fresh = ICECredentials(ufrag: "nEw1", password: "new-server-password-0123456789")
        server.restartICE(local: fresh, remote: Fixtures.clientCredentials)
        #expect(server.localCredentials == fresh)
        now += .milliseconds(100)
        agent.handleTimeout(now: now + .seconds(1))
        if let stale = agent.pollTransmit() {
            let again = stale.payload.withUnsafeBytes { packet in
                reply.withUnsafeMutableBytes { server.answerBinding(packet, from: Fixtures.clientAddress, now: now, into: $0) }
            }
            #expect(again == .none, "a check with the old ufrag is refused (401 queued)")
        }
    }
}
