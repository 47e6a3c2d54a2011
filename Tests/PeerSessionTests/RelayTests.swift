import DTLS
import ICE
import PeerSession
import RTCBase
import STUN
import Testing
import TURN

/// A client-role transport with TURN (relay policy) and a server-role
/// transport, with Parley's `TURNServer` engine in between: the client only
/// ever talks to the TURN server, and the server-role peer only ever talks to
/// the relayed address. Each hop has its own loss and 10–40 ms delay; the
/// fake clock jumps from deadline to deadline.
final class RelayHarness: MediaLink {
    static let turnAddress = TransportAddress("203.0.113.5:3478")!
    static let turnIP = IPAddress("203.0.113.5")!

    enum Hop { case clientToTURN, turnToClient, peerToRelay(TransportAddress), relayToPeer(relay: TransportAddress) }
    struct Packet {
        var deliverAt: Instant
        var order: Int
        var hop: Hop
        var bytes: [UInt8]
    }

    let client: PeerTransport
    let server: PeerTransport
    var turn: TURNServer
    var now = Instant.zero
    var loss: Double
    var rng: SplitMix64
    var clientEvents: [PeerSessionEvent] = []
    var serverEvents: [PeerSessionEvent] = []
    /// Datagrams the client sent anywhere but the TURN server (must stay 0).
    var clientDirectSends = 0
    private var inFlight: [Packet] = []
    private var order = 0

    init(loss: Double = 0, seed: UInt64 = 1, password: String = "wonderland", nonceLifetime: Duration = .seconds(600),
         policy: PeerICETransportPolicy = .relay) throws {
        self.loss = loss
        rng = SplitMix64(seed: seed)
        var config = TURNServerConfiguration(realm: "parley.test", publicIP: RelayHarness.turnIP, relayPorts: 50000...50099,
                                             nonceSecret: Array("relay-test".utf8), wallClockSeconds: { _ in 1_700_000_000 })
        config.users = ["alice": "wonderland"]
        config.nonceLifetime = nonceLifetime
        turn = TURNServer(configuration: config, seed: seed)

        client = try PeerTransport(
            configuration: PeerSessionConfiguration(
                iceRole: .client, dtlsRole: .client, localCredentials: Fixtures.clientCredentials,
                localCandidates: [Fixtures.clientAddress], certificate: Fixtures.clientCertificate,
                turnServers: [TURNClientConfiguration(server: RelayHarness.turnAddress, username: "alice", password: password)],
                iceTransportPolicy: policy),
            rng: SplitMix64(seed: seed &* 31 &+ 7))
        server = try PeerTransport(
            configuration: PeerSessionConfiguration(
                iceRole: .server, dtlsRole: .server, localCredentials: Fixtures.serverCredentials,
                certificate: Fixtures.serverCertificate, remoteCredentials: Fixtures.clientCredentials,
                remoteFingerprint: Fixtures.clientCertificate.fingerprint))
        client.setRemoteCredentials(Fixtures.serverCredentials)
        client.setRemoteFingerprint(Fixtures.serverCertificate.fingerprint)
        client.addRemoteCandidate(ICECandidate(
            foundation: "1", priority: ICECandidate.priority(type: .host), address: Fixtures.serverAddress, type: .host))
    }

    var bothConnected: Bool { client.state == .connected && server.state == .connected }

    private func enqueue(_ hop: Hop, _ bytes: [UInt8]) {
        if loss > 0, Double(rng.next() % 1_000_000) / 1_000_000 < loss { return }
        let delay = 10 + Int64(rng.next() % 31)
        inFlight.append(Packet(deliverAt: now + .milliseconds(delay), order: order, hop: hop, bytes: bytes))
        order += 1
    }

    func drain() {
        var moved = true
        while moved {
            moved = false
            while let t = client.pollTransmit() {
                moved = true
                guard t.destination == RelayHarness.turnAddress else {
                    clientDirectSends += 1
                    continue
                }
                enqueue(.clientToTURN, t.payload)
            }
            while let t = server.pollTransmit() {
                moved = true
                enqueue(.peerToRelay(t.destination), t.payload)
            }
            while let action = turn.pollAction() {
                moved = true
                switch action {
                case .sendToClient(let bytes, _, _): enqueue(.turnToClient, bytes)
                case .sendToPeer(let bytes, let relay, let peer):
                    #expect(peer == Fixtures.serverAddress)
                    enqueue(.relayToPeer(relay: relay), bytes)
                case .bindRelay(_, let id): turn.relayBound(id, now: now)
                case .closeRelay, .closeConnection: break
                }
            }
        }
        while let e = client.pollEvent() { clientEvents.append(e) }
        while let e = server.pollEvent() { serverEvents.append(e) }
    }

    func run(for duration: Duration, stop: () -> Bool) {
        let end = now + duration
        while true {
            let due = inFlight.filter { $0.deliverAt <= now }.sorted { ($0.deliverAt, $0.order) < ($1.deliverAt, $1.order) }
            inFlight.removeAll { $0.deliverAt <= now }
            for p in due {
                switch p.hop {
                case .clientToTURN:
                    turn.handleClientPacket(p.bytes, from: Fixtures.clientAddress, transport: .udp, now: now)
                case .turnToClient:
                    client.handleReceive(p.bytes, from: RelayHarness.turnAddress, to: Fixtures.clientAddress, now: now)
                case .peerToRelay(let relay):
                    turn.handlePeerPacket(p.bytes, relay: relay, from: Fixtures.serverAddress, now: now)
                case .relayToPeer(let relay):
                    server.handleReceive(p.bytes, from: relay, to: Fixtures.serverAddress, now: now)
                }
                drain()
            }
            for side in [client, server] {
                if let t = side.pollTimeout(), t <= now { side.handleTimeout(now: now) }
            }
            if let t = turn.pollTimeout(), t <= now { turn.handleTimeout(now: now) }
            drain()
            if stop() { return }
            let (next, finished) = nextFakeTime(now: now, end: end, deadlines: inFlight.map(\.deliverAt)
                                                    + [client.pollTimeout(), server.pollTimeout(), turn.pollTimeout()])
            now = next
            if finished { return }
        }
    }

    func connect(within limit: Duration = .seconds(120)) -> Bool {
        run(for: limit) { bothConnected || client.state == .failed || server.state == .failed }
        return bothConnected
    }

    func rtpReceived(byServer: Bool) -> [[UInt8]] {
        (byServer ? serverEvents : clientEvents).compactMap { if case .rtp(let p) = $0 { return p } else { return nil } }
    }

    func rtcpReceived(byServer: Bool) -> [[UInt8]] {
        (byServer ? serverEvents : clientEvents).compactMap { if case .rtcp(let p) = $0 { return p } else { return nil } }
    }
}

@Suite("PeerTransport through a TURN relay (relay policy)")
struct RelayTests {
    @Test(arguments: [UInt64(1), 2, 3])
    func connectsThroughTheRelayWithoutLoss(seed: UInt64) throws {
        let h = try RelayHarness(loss: 0, seed: seed)
        #expect(h.connect(within: .seconds(10)))
        // The relayed candidate was announced, typed relay, from the TURN range.
        let candidates = h.clientEvents.compactMap { if case .localCandidate(let c) = $0 { return c } else { return nil } }
        let relay = try #require(candidates.first)
        #expect(candidates.count == 1)
        #expect(relay.type == .relay)
        #expect(relay.ip == RelayHarness.turnIP)
        #expect(relay.priority == ICECandidate.priority(type: .relay, localPreference: 65535))
        #expect(relay.relatedAddress == Fixtures.clientAddress.ip.description)
        #expect(h.client.localCandidateDescriptions == [relay])
        #expect(h.client.relayedAddresses == [try #require(relay.address)])
        // Both sides selected the relay path: the peer sees the relayed address.
        #expect(h.client.isRelayed)
        #expect(h.client.selectedLocal == relay.address)
        #expect(h.client.selectedRemote == Fixtures.serverAddress)
        #expect(h.server.selectedRemote == relay.address)
        #expect(h.serverEvents.contains(.iceConnected(remote: try #require(relay.address))))
        // 401 then the signed Allocate.
        #expect(h.turn.counters.unauthenticated401 >= 1)
        #expect(h.turn.counters.allocationsCreated == 1)
        try exchangeMedia(h, count: 60, minimumFraction: 1.0)
        // Media went over a channel once bound; never directly.
        #expect(h.clientDirectSends == 0)
        #expect(h.turn.counters.noPermission == 0)
    }

    @Test(arguments: [UInt64(11), 12, 13])
    func connectsThroughTheRelayWithTenPercentLoss(seed: UInt64) throws {
        let h = try RelayHarness(loss: 0.10, seed: seed)
        #expect(h.connect(), "client \(h.client.state) server \(h.server.state)")
        #expect(h.client.isRelayed)
        // Two lossy hops each way: about 81% end to end.
        try exchangeMedia(h, count: 60, minimumFraction: 0.6)
        #expect(h.clientDirectSends == 0)
    }

    @Test func thirtyMinutesRelayedWithStaleNoncesAndRefreshes() throws {
        // Nonces go stale every 2 minutes: refreshes and permission renewals
        // meet 438 and must retry transparently.
        let h = try RelayHarness(loss: 0.02, seed: 5, nonceLifetime: .seconds(120))
        #expect(h.connect())
        let start = h.now
        var sent = 0
        while h.now < start + .seconds(1800) {
            try h.client.sendRTP(Fixtures.rtp(seq: UInt16(truncatingIfNeeded: sent), ssrc: 0x3333, payload: [1, 2, 3]))
            try h.server.sendRTP(Fixtures.rtp(seq: UInt16(truncatingIfNeeded: sent), ssrc: 0x4444, payload: [4, 5, 6]))
            sent += 1
            h.run(for: .seconds(10))
        }
        #expect(h.client.state == .connected)
        #expect(h.server.state == .connected)
        #expect(h.turn.counters.staleNonce438 >= 5)
        #expect(h.turn.counters.allocationsExpired == 0)
        #expect(h.turn.allocationCount == 1)
        // Consent and media kept flowing: most packets arrived both ways,
        // including in the last minutes.
        let up = h.rtpReceived(byServer: true).count, down = h.rtpReceived(byServer: false).count
        #expect(up >= sent * 8 / 10, "server got \(up)/\(sent)")
        #expect(down >= sent * 8 / 10, "client got \(down)/\(sent)")
        let tail = h.rtpReceived(byServer: true).suffix(5)
        #expect(tail.contains { $0.count > 12 && $0[8...11] == [0, 0, 0x33, 0x33] })
        #expect(h.clientDirectSends == 0)
    }

    @Test func wrongTURNPasswordFailsTheRelayOnlyTransport() throws {
        let h = try RelayHarness(seed: 2, password: "nope")
        #expect(!h.connect(within: .seconds(60)))
        #expect(h.client.state == .failed)
        #expect(h.clientEvents.contains(.failed(.relayFailed(.unauthorized))))
    }

    @Test func closeDeletesTheAllocation() throws {
        let h = try RelayHarness(seed: 4)
        #expect(h.connect(within: .seconds(10)))
        #expect(h.turn.allocationCount == 1)
        h.client.close()
        h.drain()
        h.run(for: .seconds(1))
        #expect(h.turn.allocationCount == 0)
    }

    @Test func hostPolicyStillPrefersHostPairsAndOffersRelay() throws {
        // With policy .all the host candidate comes first in priority; the
        // relay candidate is still announced.
        let h = try RelayHarness(seed: 6, policy: .all)
        h.run(for: .seconds(2))
        let descriptions = h.client.localCandidateDescriptions
        #expect(descriptions.map(\.type) == [.host, .relay])
        #expect(descriptions[0].priority > descriptions[1].priority)
    }
}
