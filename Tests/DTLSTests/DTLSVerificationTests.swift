import DTLS
import RTCBase
import Testing

@Suite("Peer verification by fingerprint (RFC 8122 §5, RFC 5763 §5)")
struct DTLSVerificationTests {
    @Test("the client rejects a server whose certificate does not match")
    func clientSideMismatch() throws {
        let link = try DTLSLink(clientKnowsFingerprint: TestCertificates.other.fingerprint)
        link.run(until: { DTLSLink.failure(in: $0.clientEvents) != nil })
        #expect(DTLSLink.failure(in: link.clientEvents) == .fingerprintMismatch)
        #expect(link.clientKeys == nil)
        #expect(link.client.srtpKeys == nil)
        #expect(link.client.pollTimeout() == nil)
    }

    @Test("the server rejects a client whose certificate does not match")
    func serverSideMismatch() throws {
        let link = try DTLSLink(serverKnowsFingerprint: TestCertificates.other.fingerprint)
        link.run(until: { DTLSLink.failure(in: $0.serverEvents) != nil })
        #expect(DTLSLink.failure(in: link.serverEvents) == .fingerprintMismatch)
        #expect(link.serverKeys == nil)
        // Application data from the unverified client is never surfaced.
        #expect(!link.serverEvents.contains { if case .applicationData = $0 { true } else { false } })
    }

    @Test("a fingerprint with the right algorithm but one flipped bit fails")
    func oneBitOff() throws {
        var digest = TestCertificates.server.fingerprint.digest
        digest[31] ^= 1
        let wrong = try DTLSFingerprint(algorithm: .sha256, digest: digest)
        let link = try DTLSLink(clientKnowsFingerprint: wrong)
        link.run(until: { DTLSLink.failure(in: $0.clientEvents) != nil })
        #expect(DTLSLink.failure(in: link.clientEvents) == .fingerprintMismatch)
    }

    @Test("fingerprints supplied after the handshake completes release the keys then")
    func lateFingerprint() throws {
        let link = try DTLSLink(clientKnowsFingerprint: nil, serverKnowsFingerprint: nil)
        // The handshake itself finishes: nothing is pending, but no keys yet.
        link.run(until: { _ in false }, maxSteps: 5)
        #expect(link.clientKeys == nil && link.serverKeys == nil)
        #expect(link.clientEvents.isEmpty && link.serverEvents.isEmpty)
        #expect(link.client.peerCertificateFingerprint == TestCertificates.server.fingerprint)
        #expect(link.server.peerCertificateFingerprint == TestCertificates.client.fingerprint)
        #expect(link.client.pollTimeout() == nil && link.server.pollTimeout() == nil)

        link.client.setRemoteFingerprint(TestCertificates.server.fingerprint)
        link.collectEvents()
        #expect(link.clientKeys != nil)
        #expect(link.serverKeys == nil)
        // Data the client sends now waits at the server until it can verify.
        try link.client.send(applicationData: [1, 2, 3])
        link.exchange()
        #expect(link.serverEvents.isEmpty)
        link.server.setRemoteFingerprint(TestCertificates.client.fingerprint)
        link.collectEvents()
        #expect(link.serverEvents == [.connected(try #require(link.serverKeys)), .applicationData([1, 2, 3])])
        #expect(link.clientKeys?.localMasterKey == link.serverKeys?.remoteMasterKey)
    }

    @Test("a late fingerprint that does not match fails then")
    func lateMismatch() throws {
        let link = try DTLSLink(clientKnowsFingerprint: nil)
        link.run(until: { $0.serverKeys != nil })
        link.client.setRemoteFingerprint(TestCertificates.other.fingerprint)
        link.collectEvents()
        #expect(link.clientEvents == [.failed(.fingerprintMismatch)])
    }

    @Test("a fingerprint supplied mid-handshake works")
    func midHandshakeFingerprint() throws {
        let link = try DTLSLink(clientKnowsFingerprint: nil)
        link.policy = { [unowned link] direction, index, datagrams in
            if direction == .serverToClient, index == 0 {
                link.client.setRemoteFingerprint(TestCertificates.server.fingerprint)
            }
            return datagrams
        }
        #expect(link.run())
    }

    @Test("a fingerprint using SHA-384 verifies too")
    func otherAlgorithm() throws {
        let sha384 = try #require(TestCertificates.server.fingerprint(algorithm: .sha384))
        let link = try DTLSLink(clientKnowsFingerprint: sha384)
        #expect(link.run())
    }
}
