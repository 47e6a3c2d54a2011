import DTLS
import RTCBase
import Testing

@Suite("Garbage input and failures")
struct DTLSRobustnessTests {
    /// The client's first datagram (a ClientHello), captured from a real client.
    private func clientHello() throws -> [UInt8] {
        let client = try DTLSConnection(role: .client, certificate: TestCertificates.client)
        client.start(now: .zero)
        return try #require(client.pollTransmit())
    }

    @Test("random datagrams never crash any phase and are counted")
    func randomBytes() throws {
        var rng = SplitMix64(seed: 0xD715)
        let link = try DTLSLink()
        func garbage() -> [UInt8] {
            let length = Int.random(in: 0...1500, using: &rng)
            var bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            // Half of them look like DTLS at first glance (RFC 7983 first byte 20–63).
            if !bytes.isEmpty, Bool.random(using: &rng) { bytes[0] = UInt8.random(in: 20...23, using: &rng) }
            return bytes
        }
        for _ in 0..<300 { link.server.handleReceive(garbage(), now: link.now) }
        #expect(link.server.malformedDatagrams == 300)
        #expect(link.server.pollTransmit() == nil)
        link.client.start(now: .zero)
        for _ in 0..<300 { link.client.handleReceive(garbage(), now: link.now) }
        #expect(link.client.malformedDatagrams == 300)
        #expect(link.run())
        for _ in 0..<300 {
            link.client.handleReceive(garbage(), now: link.now)
            link.server.handleReceive(garbage(), now: link.now)
        }
        link.exchange()
        try link.client.send(applicationData: [9])
        link.exchange()
        #expect(link.serverEvents.last == .applicationData([9]))
        #expect(DTLSLink.failure(in: link.clientEvents) == nil)
    }

    @Test("truncated records are dropped, then the whole one works")
    func truncated() throws {
        let hello = try clientHello()
        let server = try DTLSConnection(role: .server, certificate: TestCertificates.server)
        for length in [0, 1, 12, 13, 14, 50, hello.count - 1] {
            server.handleReceive(Array(hello.prefix(length)), now: .zero)
        }
        #expect(server.malformedDatagrams == 7)
        #expect(server.pollTransmit() == nil)
        // Trailing junk after a whole record is malformed too.
        server.handleReceive(hello + [22, 0xFE], now: .zero)
        #expect(server.malformedDatagrams == 8)
        server.handleReceive(hello, now: .zero)
        #expect(server.pollTransmit() != nil) // the server's first flight
    }

    @Test("records with a non-DTLS version or unknown content type are dropped",
          arguments: [(1, 0x03), (2, 0x03), (2, 0xFC), (0, 24), (0, 19)])
    func wrongVersion(_ index: Int, _ value: UInt8) throws {
        var hello = try clientHello()
        hello[index] = value
        let server = try DTLSConnection(role: .server, certificate: TestCertificates.server)
        server.handleReceive(hello, now: .zero)
        #expect(server.malformedDatagrams == 1)
        #expect(server.pollTransmit() == nil)
        #expect(server.pollEvent() == nil)
    }

    @Test("well-framed records with random content are dropped or fail cleanly")
    func framedGarbage() throws {
        var rng = SplitMix64(seed: 42)
        for contentType: UInt8 in [20, 21, 22, 23] {
            for _ in 0..<20 {
                let server = try DTLSConnection(role: .server, certificate: TestCertificates.server)
                let bodyLength = Int.random(in: 0...300, using: &rng)
                var record: [UInt8] = [contentType, 0xFE, 0xFD, 0, 0, 0, 0, 0, 0, 0, 0,
                                       UInt8(bodyLength >> 8), UInt8(bodyLength & 0xFF)]
                for _ in 0..<bodyLength { record.append(UInt8.random(in: 0...255, using: &rng)) }
                server.handleReceive(record, now: .zero)
                #expect(server.malformedDatagrams == 0)
                while let datagram = server.pollTransmit() { #expect(datagram.count <= 1200) }
                while let event = server.pollEvent() {
                    guard case .failed(.handshakeFailed(let reason)) = event else {
                        Issue.record("unexpected event \(event)")
                        continue
                    }
                    #expect(!reason.isEmpty)
                }
            }
        }
    }

    @Test("a corrupted ClientHello fails the server's handshake with OpenSSL's reason")
    func corruptedClientHello() throws {
        var hello = try clientHello()
        // Record header 13 + handshake header 12 + version 2 + random 32 +
        // empty session id 1 + empty cookie 1: the cipher suites length.
        let at = 13 + 12 + 2 + 32 + 2
        hello[at] = 0xFF
        hello[at + 1] = 0xFF
        let server = try DTLSConnection(role: .server, certificate: TestCertificates.server)
        server.handleReceive(hello, now: .zero)
        guard case .failed(.handshakeFailed(let reason)) = server.pollEvent() else {
            Issue.record("expected a handshake failure")
            return
        }
        #expect(!reason.isEmpty)
        #expect(server.isTerminated)
        // The fatal alert goes out to the client…
        let alert = try #require(server.pollTransmit())
        #expect(alert[0] == 21)
        // …and later input is ignored.
        server.handleReceive(try clientHello(), now: .zero)
        #expect(server.pollEvent() == nil)
        #expect(server.pollTransmit() == nil)
    }

    @Test("the client fails when the server answers with a fatal alert")
    func alertPropagates() throws {
        var hello = try clientHello()
        let client = try DTLSConnection(role: .client, certificate: TestCertificates.client,
                                        remoteFingerprint: TestCertificates.server.fingerprint)
        client.start(now: .zero)
        hello = try #require(client.pollTransmit())
        hello[13 + 12 + 2 + 32 + 2] = 0xFF
        let server = try DTLSConnection(role: .server, certificate: TestCertificates.server)
        server.handleReceive(hello, now: .zero)
        let alert = try #require(server.pollTransmit())
        client.handleReceive(alert, now: .zero)
        guard case .failed(.handshakeFailed(let reason)) = client.pollEvent() else {
            Issue.record("expected the client to fail")
            return
        }
        #expect(reason.contains("alert"))
    }

    @Test("no SRTP profile in common fails both sides, without keys")
    func noCommonProfile() throws {
        let link = try DTLSLink(clientConfiguration: DTLSConfiguration(srtpProfiles: [.aeadAes128Gcm]),
                                serverConfiguration: DTLSConfiguration(srtpProfiles: [.aes128CmHmacSha1_80]))
        link.run(until: { DTLSLink.failure(in: $0.clientEvents) != nil && DTLSLink.failure(in: $0.serverEvents) != nil })
        #expect(DTLSLink.failure(in: link.serverEvents) == .srtpNegotiationFailed)
        #expect(DTLSLink.failure(in: link.clientEvents) == .srtpNegotiationFailed)
        #expect(link.clientKeys == nil && link.serverKeys == nil)
    }

    @Test("input before start, after close and after failure is ignored")
    func lifecycle() throws {
        let hello = try clientHello()
        let client = try DTLSConnection(role: .client, certificate: TestCertificates.client)
        client.handleReceive(hello, now: .zero) // not started: a client never speaks second
        #expect(client.pollTransmit() == nil && client.pollTimeout() == nil)
        client.close()
        client.start(now: .zero)
        #expect(client.pollTransmit() == nil)
        client.handleTimeout(now: .seconds(100))
        #expect(client.pollEvent() == nil)
    }
}
