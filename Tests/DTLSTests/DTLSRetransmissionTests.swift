import DTLS
import RTCBase
import Testing

@Suite("DTLS retransmission on the engine's clock (RFC 6347 §4.2.4)")
struct DTLSRetransmissionTests {
    /// Flights of the full DTLS 1.2 handshake as batches on the link:
    /// client batch 0 = ClientHello, server batch 0 = ServerHello…Done,
    /// client batch 1 = Certificate…Finished, server batch 1 = CCS + Finished.
    @Test("a whole lost flight is retransmitted and the handshake completes",
          arguments: [(Direction.clientToServer, 0), (.serverToClient, 0), (.clientToServer, 1), (.serverToClient, 1)])
    func lostFlight(_ direction: Direction, _ batch: Int) throws {
        let link = try DTLSLink()
        link.policy = { d, index, datagrams in (d == direction && index == batch) ? [] : datagrams }
        let started = ContinuousClock.now
        #expect(link.run())
        let elapsed = ContinuousClock.now - started
        #expect(link.clientKeys != nil && link.serverKeys != nil)
        #expect(link.clientKeys?.localMasterKey == link.serverKeys?.remoteMasterKey)
        // Recovery needed the 1 s retransmission timer on the fake clock…
        #expect(link.now >= .seconds(1))
        #expect(link.now < .seconds(3))
        // …which ran far faster than real time.
        #expect(elapsed < .milliseconds(900))
        #expect(link.largestDatagram <= 1200)
    }

    @Test("the same flight lost twice needs the doubled timeout (1 s + 2 s)")
    func lostTwice() throws {
        let link = try DTLSLink()
        link.policy = { d, index, datagrams in (d == .serverToClient && index < 2) ? [] : datagrams }
        #expect(link.run())
        #expect(link.now >= .seconds(3))
    }

    @Test("one datagram of a multi-datagram flight lost")
    func partialFlightLoss() throws {
        let link = try DTLSLink(mtu: 300)
        link.policy = { d, index, datagrams in
            guard d == .serverToClient, index == 0 else { return datagrams }
            #expect(datagrams.count > 1)
            return Array(datagrams.dropFirst())
        }
        #expect(link.run())
        #expect(link.now >= .seconds(1))
    }

    @Test("reordered and duplicated datagrams")
    func reorderedAndDuplicated() throws {
        let link = try DTLSLink(mtu: 400)
        link.policy = { _, _, datagrams in
            var out: [[UInt8]] = []
            for datagram in datagrams.reversed() { out.append(datagram); out.append(datagram) }
            return out
        }
        #expect(link.run())
        #expect(link.clientKeys?.localMasterKey == link.serverKeys?.remoteMasterKey)
        #expect(link.serverKeys?.localMasterSalt == link.clientKeys?.remoteMasterSalt)
    }

    @Test("a stale retransmitted flight arriving after the handshake is harmless")
    func lateDuplicateFlight() throws {
        let link = try DTLSLink()
        var firstClientFlight: [[UInt8]] = []
        link.policy = { d, index, datagrams in
            if d == .clientToServer, index == 1 { firstClientFlight = datagrams }
            return datagrams
        }
        #expect(link.run())
        for datagram in firstClientFlight { link.server.handleReceive(datagram, now: link.now) }
        link.exchange()
        #expect(link.server.isConnected && link.client.isConnected)
        #expect(DTLSLink.failure(in: link.serverEvents) == nil)
        #expect(DTLSLink.failure(in: link.clientEvents) == nil)
    }

    @Test("no answer: retransmits on 1, 2, 4 … s then fails with handshakeTimeout")
    func handshakeTimeout() throws {
        let configuration = DTLSConfiguration(maximumRetransmissions: 4)
        let link = try DTLSLink(clientConfiguration: configuration)
        link.policy = { d, _, datagrams in d == .clientToServer ? [] : datagrams }
        link.run(until: { DTLSLink.failure(in: $0.clientEvents) != nil })
        #expect(DTLSLink.failure(in: link.clientEvents) == .handshakeTimeout)
        let times = link.sent.filter { $0.direction == .clientToServer }.map(\.time)
        #expect(times == [.zero, .seconds(1), .seconds(3), .seconds(7), .seconds(15)])
        // Every copy is a distinct ClientHello record (fresh record sequence numbers).
        let copies = link.sent.filter { $0.direction == .clientToServer }.map(\.datagram)
        #expect(Set(copies).count == copies.count)
        // Gives up one doubled timeout after the last copy.
        #expect(link.now == .seconds(31))
        #expect(link.client.pollTimeout() == nil)
        #expect(link.client.isTerminated)
    }

    @Test("the timeout ceiling caps the doubling")
    func timeoutCeiling() throws {
        let configuration = DTLSConfiguration(initialRetransmitTimeout: .milliseconds(100),
                                              maximumRetransmitTimeout: .milliseconds(300),
                                              maximumRetransmissions: 5)
        let link = try DTLSLink(clientConfiguration: configuration)
        link.policy = { d, _, datagrams in d == .clientToServer ? [] : datagrams }
        link.run(until: { DTLSLink.failure(in: $0.clientEvents) != nil })
        let times = link.sent.filter { $0.direction == .clientToServer }.map(\.time)
        #expect(times == [.zero, .milliseconds(100), .milliseconds(300), .milliseconds(600),
                          .milliseconds(900), .milliseconds(1200)])
    }

    @Test("a server whose flight is never answered times out too")
    func serverTimeout() throws {
        let link = try DTLSLink(serverConfiguration: DTLSConfiguration(maximumRetransmissions: 3))
        link.policy = { d, index, datagrams in (d == .clientToServer && index == 0) ? datagrams : (d == .clientToServer ? [] : datagrams) }
        link.run(until: { DTLSLink.failure(in: $0.serverEvents) != nil })
        #expect(DTLSLink.failure(in: link.serverEvents) == .handshakeTimeout)
        #expect(link.batchCount[.serverToClient] == 4) // the flight and three copies
    }

    @Test("a shorter initial timeout is honoured")
    func shortInitialTimeout() throws {
        let fast = DTLSConfiguration(initialRetransmitTimeout: .milliseconds(50))
        let link = try DTLSLink(clientConfiguration: fast, serverConfiguration: fast)
        link.policy = { d, index, datagrams in (d == .clientToServer && index == 0) ? [] : datagrams }
        #expect(link.run())
        #expect(link.now == .milliseconds(50))
    }
}
