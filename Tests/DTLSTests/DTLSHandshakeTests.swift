import DTLS
import RTCBase
import Testing

@Suite("DTLS handshake")
struct DTLSHandshakeTests {
    @Test("client and server connect with mirrored SRTP keys (default: GCM first)")
    func handshakeDefault() throws {
        let link = try DTLSLink()
        #expect(link.run())
        let c = try #require(link.clientKeys)
        let s = try #require(link.serverKeys)
        #expect(c.profile == .aeadAes128Gcm)
        #expect(s.profile == .aeadAes128Gcm)
        #expect(c.localMasterKey == s.remoteMasterKey)
        #expect(c.localMasterSalt == s.remoteMasterSalt)
        #expect(c.remoteMasterKey == s.localMasterKey)
        #expect(c.remoteMasterSalt == s.localMasterSalt)
        #expect(c.localMasterKey != c.remoteMasterKey)
        #expect(c.localMasterKey.count == 16 && c.localMasterSalt.count == 12)
        #expect(link.client.isConnected && link.server.isConnected)
        #expect(link.client.srtpKeys == c)
        #expect(link.largestDatagram <= 1200)
        // Without loss, no retransmission: the client sent two flights, the server two.
        #expect(link.batchCount[.clientToServer] == 2)
        #expect(link.batchCount[.serverToClient] == 2)
        #expect(link.now == .zero)
        // No held-back retransmission copy leaked onto the wire: ClientHello
        // in one datagram, ServerHello…Done in one (P-256 certificate is small),
        // then the client's flight and the server's CCS + Finished.
        let perDirection = Dictionary(grouping: link.sent, by: \.direction).mapValues(\.count)
        #expect(perDirection[.clientToServer] == 2)
        #expect(perDirection[.serverToClient] == 2)
        // Nothing more after the handshake, even after further reads.
        link.exchange()
        #expect(link.sent.count == 4)
    }

    @Test("each SRTP profile can be forced", arguments: DTLSSRTPProfile.allCases)
    func forcedProfile(_ profile: DTLSSRTPProfile) throws {
        let only = DTLSConfiguration(srtpProfiles: [profile])
        let link = try DTLSLink(clientConfiguration: only, serverConfiguration: only)
        #expect(link.run())
        let c = try #require(link.clientKeys)
        let s = try #require(link.serverKeys)
        #expect(c.profile == profile && s.profile == profile)
        #expect(c.localMasterKey.count == 16)
        #expect(c.localMasterSalt.count == profile.masterSaltLength)
        #expect(c.remoteMasterSalt.count == profile.masterSaltLength)
        #expect(c.localMasterKey == s.remoteMasterKey && c.localMasterSalt == s.remoteMasterSalt)
        #expect(s.localMasterKey == c.remoteMasterKey && s.localMasterSalt == c.remoteMasterSalt)
    }

    @Test("a client offering only AES_CM gets AES_CM from a GCM-preferring server")
    func serverFallsBackToOfferedProfile() throws {
        let link = try DTLSLink(clientConfiguration: DTLSConfiguration(srtpProfiles: [.aes128CmHmacSha1_80]))
        #expect(link.run())
        #expect(link.clientKeys?.profile == .aes128CmHmacSha1_80)
        #expect(link.serverKeys?.profile == .aes128CmHmacSha1_80)
    }

    @Test("two handshakes give different keys")
    func freshKeysEachTime() throws {
        let a = try DTLSLink(), b = try DTLSLink()
        #expect(a.run() && b.run())
        #expect(a.clientKeys?.localMasterKey != b.clientKeys?.localMasterKey)
    }

    @Test("datagrams never exceed a small MTU and the handshake still completes")
    func smallMTU() throws {
        let link = try DTLSLink(mtu: 300)
        #expect(link.run())
        #expect(link.largestDatagram <= 300)
        #expect(link.sent.count > 4) // certificate flights had to be split
    }

    @Test("application data flows both ways, then close_notify gives .closed")
    func applicationDataAndClose() throws {
        let link = try DTLSLink()
        #expect(link.run())
        try link.client.send(applicationData: Array("hello server".utf8))
        try link.server.send(applicationData: Array("hello client".utf8))
        link.exchange()
        #expect(link.serverEvents.contains(.applicationData(Array("hello server".utf8))))
        #expect(link.clientEvents.contains(.applicationData(Array("hello client".utf8))))
        let big = [UInt8](repeating: 7, count: link.client.maximumApplicationDataSize)
        try link.client.send(applicationData: big)
        link.exchange()
        #expect(link.serverEvents.contains(.applicationData(big)))
        #expect(link.largestDatagram <= 1200)
        #expect(throws: DTLSError.invalidInput) {
            try link.client.send(applicationData: big + [1])
        }

        link.client.close()
        link.exchange()
        #expect(link.serverEvents.last == .closed)
        #expect(link.server.isTerminated)
        #expect(!link.clientEvents.contains(.closed)) // a local close emits nothing
        #expect(throws: DTLSError.notConnected) {
            try link.client.send(applicationData: [1])
        }
    }

    @Test("send before connecting is refused")
    func sendTooEarly() throws {
        let link = try DTLSLink()
        #expect(throws: DTLSError.notConnected) {
            try link.client.send(applicationData: [1, 2, 3])
        }
    }

    @Test("the server side can close too")
    func serverCloses() throws {
        let link = try DTLSLink()
        #expect(link.run())
        link.server.close()
        link.exchange()
        #expect(link.clientEvents.last == .closed)
    }
}
