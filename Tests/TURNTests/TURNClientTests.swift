import RTCBase
import STUN
import Testing
@testable import TURN

/// Seeded generator for transaction ids and link loss.
typealias ClientTestRNG = SplitMix64

let turnServerAddress = TransportAddress("203.0.113.1:3478")!

/// A `TURNClientAllocation` and Parley's `TURNServer` joined by a simulated
/// link (fixed 10 ms delay, optional loss), with peers that record what the
/// relay hands them. The fake clock jumps from deadline to deadline.
final class ClientLoop {
    var client: TURNClientAllocation
    var server: TURNServer
    var now: Instant = .seconds(1000)
    var loss: Double = 0
    /// Drop everything the client sends (a dead server).
    var blackhole = false
    var rng = ClientTestRNG(seed: 99)
    var events: [TURNClientEvent] = []
    /// What peers received: (peer, from relay, payload).
    var peerReceived: [(peer: TransportAddress, relay: TransportAddress, payload: [UInt8])] = []
    /// What the client unwrapped from the server.
    var clientReceived: [(peer: TransportAddress, payload: [UInt8])] = []
    /// Every datagram the client sent to the server, with its send time.
    var clientSent: [(at: Instant, bytes: [UInt8])] = []
    private var inFlight: [(at: Instant, toServer: Bool, bytes: [UInt8])] = []

    init(username: String = "alice", password: String = "wonderland", seed: UInt64 = 7,
         client tweakClient: (inout TURNClientConfiguration) -> Void = { _ in },
         server tweakServer: (inout TURNServerConfiguration) -> Void = { _ in }) {
        var c = TURNClientConfiguration(server: turnServerAddress, username: username, password: password,
                                        localAddress: clientA)
        tweakClient(&c)
        client = TURNClientAllocation(configuration: c, rng: ClientTestRNG(seed: seed))
        server = TURNServer(configuration: Harness.configuration(tweakServer), seed: seed)
    }

    var relayed: TransportAddress? { client.relayedAddress }

    func pump() {
        while let t = client.pollTransmit() {
            #expect(t.destination == turnServerAddress)
            #expect(t.source == clientA)
            clientSent.append((now, t.payload))
            if blackhole { continue }
            if loss > 0, Double(rng.next() % 1_000_000) / 1_000_000 < loss { continue }
            inFlight.append((now + .milliseconds(10), true, t.payload))
        }
        while let e = client.pollEvent() { events.append(e) }
        while let action = server.pollAction() {
            switch action {
            case .sendToClient(let bytes, let to, _):
                #expect(to == clientA)
                if loss > 0, Double(rng.next() % 1_000_000) / 1_000_000 < loss { continue }
                inFlight.append((now + .milliseconds(10), false, bytes))
            case .sendToPeer(let bytes, let relay, let peer):
                peerReceived.append((peer, relay, bytes))
            case .bindRelay(_, let id):
                server.relayBound(id, now: now)
            case .closeRelay, .closeConnection:
                break
            }
        }
    }

    /// A peer sends `bytes` to the relayed address.
    func peerSends(_ bytes: [UInt8], from peer: TransportAddress) {
        guard let relay = relayed else { return }
        server.handlePeerPacket(bytes, relay: relay, from: peer, now: now)
        pump()
    }

    func run(for duration: Duration, stop: () -> Bool = { false }) {
        let end = now + duration
        while true {
            let due = inFlight.filter { $0.at <= now }
            inFlight.removeAll { $0.at <= now }
            for p in due {
                if p.toServer {
                    server.handleClientPacket(p.bytes, from: clientA, transport: .udp, now: now)
                } else if let data = client.handleReceive(p.bytes, from: turnServerAddress, now: now) {
                    clientReceived.append(data)
                }
                pump()
            }
            if let t = client.pollTimeout(), t <= now { client.handleTimeout(now: now) }
            if let t = server.pollTimeout(), t <= now { server.handleTimeout(now: now) }
            pump()
            if stop() { return }
            var next: Instant?
            func consider(_ t: Instant?) { if let t, next.map({ t < $0 }) ?? true { next = t } }
            for p in inFlight { consider(p.at) }
            consider(client.pollTimeout())
            consider(server.pollTimeout())
            guard var n = next else { now = end; return }
            if n <= now { n = now + .milliseconds(1) }
            if n > end { now = end; return }
            now = n
        }
    }

    func start() {
        client.start(now: now)
        pump()
    }

    func allocate() -> Bool {
        start()
        run(for: .seconds(60)) { client.state != .allocating }
        return client.state == .allocated
    }

    /// Decoded requests the client sent with `method`.
    func sentRequests(_ method: STUNMethod) -> [STUNMessage] {
        clientSent.compactMap { try? STUNMessage(parsing: $0.bytes) }
            .filter { $0.type == STUNMessageType(method: method, messageClass: .request) }
    }
}

@Suite("TURN client allocation (RFC 8656 client side, RFC 8489 §9.2)")
struct TURNClientTests {
    @Test func allocatesThroughTheLongTermCredentialChallenge() throws {
        let loop = ClientLoop()
        #expect(loop.allocate())
        let relayed = try #require(loop.relayed)
        #expect(relayed.ip == publicIP)
        #expect((50000...50099).contains(relayed.port))
        #expect(loop.events == [.allocated(relayed: relayed, mapped: clientA)])
        #expect(loop.client.mappedAddress == clientA)
        // One unauthenticated Allocate (401), then one signed retry.
        let allocates = loop.sentRequests(.allocate)
        #expect(allocates.count == 2)
        #expect(allocates[0].first(.messageIntegrity) == nil && allocates[0].username == nil)
        #expect(allocates[0].first(.requestedTransport) == .requestedTransport(protocolNumber: 17))
        #expect(allocates[1].username == "alice")
        #expect(allocates[1].realm == realm)
        #expect(allocates[1].nonce != nil)
        #expect(loop.server.counters.unauthenticated401 == 1)
        #expect(loop.server.counters.allocationsCreated == 1)
        #expect(loop.server.relayAddress(client: clientA, transport: .udp) == relayed)
    }

    @Test func choosesSHA256WhenTheServerOffersIt() throws {
        let loop = ClientLoop()
        #expect(loop.allocate())
        let signed = try #require(loop.sentRequests(.allocate).last)
        // Parley's server offers MD5 and SHA-256; the client echoes the list
        // and picks SHA-256, signing with MESSAGE-INTEGRITY-SHA256.
        #expect(signed.first(.passwordAlgorithms) == .passwordAlgorithms([STUNPasswordAlgorithm(.md5), STUNPasswordAlgorithm(.sha256)]))
        #expect(signed.first(.passwordAlgorithm) == .passwordAlgorithm(STUNPasswordAlgorithm(.sha256)))
        #expect(signed.first(.messageIntegritySHA256) != nil)
        #expect(signed.first(.messageIntegrity) == nil)
        // And the bytes verify with the SHA-256 long-term key.
        let raw = try #require(loop.clientSent.map(\.bytes).last { (try? STUNMessage(parsing: $0))?.transactionID == signed.transactionID })
        let key = STUNIntegrityKey(username: "alice", realm: realm, password: "wonderland", algorithm: .sha256)
        try raw.withUnsafeBytes { p in
            let view = try STUNMessageView(p)
            try view.verifyMessageIntegritySHA256(key: key)
        }
    }

    @Test func wrongPasswordFailsWithUnauthorized() {
        let loop = ClientLoop(password: "not-it")
        #expect(!loop.allocate())
        #expect(loop.client.state == .failed)
        #expect(loop.events == [.failed(.unauthorized)])
        // Exactly two tries: no loop on a bad password.
        #expect(loop.sentRequests(.allocate).count == 2)
    }

    @Test func nonceCookieWithoutAlgorithmsIsABidDown() {
        #expect(TURNClientAllocation.nonceAnnouncesPasswordAlgorithms("obMatJos2gAAAxyz"))
        #expect(!TURNClientAllocation.nonceAnnouncesPasswordAlgorithms("obMatJos2AAAAxyz"))
        #expect(!TURNClientAllocation.nonceAnnouncesPasswordAlgorithms("d2f1e8a09b"))
    }

    @Test func retransmitsOnRFC8489ScheduleThenTimesOut() {
        let loop = ClientLoop()
        loop.blackhole = true
        let start = loop.now
        loop.start()
        loop.run(for: .seconds(60)) { loop.client.state != .allocating }
        #expect(loop.events == [.failed(.timeout(.allocate))])
        // RFC 8489 §6.2.1: RTO 500 ms doubling, Rc = 7 sends at 0, 0.5, 1.5,
        // 3.5, 7.5, 15.5, 31.5 s, then Rm × RTO = 8 s more: 39.5 s.
        let offsets = loop.clientSent.map { ($0.at - start).nanoseconds / 1_000_000 }
        #expect(offsets == [0, 500, 1500, 3500, 7500, 15500, 31500])
        #expect((loop.now - start).nanoseconds / 1_000_000 == 39_500)
    }

    @Test func sendIndicationsThenChannelDataBothWays() throws {
        let loop = ClientLoop()
        #expect(loop.allocate())
        let relayed = try #require(loop.relayed)
        // First send: held until CreatePermission answers, then a Send
        // indication or (once ChannelBind answered) ChannelData.
        let accepted = loop.client.send([1, 2, 3], to: peerA, now: loop.now)
        #expect(accepted)
        loop.pump()
        #expect(loop.peerReceived.isEmpty)
        loop.run(for: .seconds(1))
        #expect(loop.peerReceived.map(\.payload) == [[1, 2, 3]])
        #expect(loop.peerReceived.first?.relay == relayed)
        #expect(loop.peerReceived.first?.peer == peerA)
        #expect(loop.client.hasPermission(peerA.ip))
        #expect(loop.client.isChannelBound(peerA))
        #expect(loop.sentRequests(.createPermission).count == 1)
        #expect(loop.sentRequests(.channelBind).count == 1)

        // Bound: the next datagram goes as ChannelData (4-byte header).
        let before = loop.clientSent.count
        let acceptedBound = loop.client.send([9, 8, 7, 6, 5], to: peerA, now: loop.now)
        #expect(acceptedBound)
        loop.pump()
        let wire = try #require(loop.clientSent.dropFirst(before).first?.bytes)
        #expect(wire.count == 4 + 5)
        #expect(PacketKind.classify(wire) == .turnChannel)
        loop.run(for: .milliseconds(50))
        #expect(loop.peerReceived.last?.payload == [9, 8, 7, 6, 5])

        // Peer → client over the channel, unwrapped.
        loop.peerSends([42, 43], from: peerA)
        loop.run(for: .milliseconds(50))
        #expect(loop.clientReceived.last?.peer == peerA)
        #expect(loop.clientReceived.last?.payload == [42, 43])
    }

    @Test func dataIndicationsAreUnwrappedBeforeAChannelExists() throws {
        let loop = ClientLoop()
        #expect(loop.allocate())
        let accepted = loop.client.send([1], to: peerA, now: loop.now)
        #expect(accepted)
        loop.pump()
        loop.run(for: .seconds(1))
        // A second peer on the same IP shares the permission but has no channel yet.
        let sibling = TransportAddress(ip: peerA.ip, port: 6001)
        loop.peerSends([7, 7, 7], from: sibling)
        loop.run(for: .milliseconds(50))
        #expect(loop.clientReceived.last?.peer == sibling)
        #expect(loop.clientReceived.last?.payload == [7, 7, 7])
    }

    @Test func thirtyMinutesOfRefreshesWithStaleNonces() throws {
        // Nonces last 100 s, so every refresh meets a 438 first.
        let loop = ClientLoop(server: { $0.nonceLifetime = .seconds(100) })
        #expect(loop.allocate())
        let relayed = try #require(loop.relayed)
        let start = loop.now
        var sent = 0
        // Keep talking to one peer every 20 s for 30 simulated minutes.
        while loop.now < start + .seconds(1800) {
            loop.client.send([UInt8(truncatingIfNeeded: sent)], to: peerA, now: loop.now)
            sent += 1
            loop.pump()
            loop.run(for: .seconds(20))
        }
        #expect(loop.client.state == .allocated)
        #expect(loop.relayed == relayed)
        #expect(!loop.events.contains { if case .failed = $0 { return true } else { return false } })
        #expect(!loop.events.contains { if case .permissionFailed = $0 { return true } else { return false } })
        // Default lifetime 600 s, refreshed 60 s early: at least 3 refreshes.
        let refreshes = loop.events.filter { if case .refreshed = $0 { return true } else { return false } }
        #expect(refreshes.count >= 3)
        #expect(loop.server.counters.staleNonce438 >= 3)
        // Permissions refreshed every 4 min, channels every 9 min.
        #expect(loop.sentRequests(.createPermission).count >= 7)
        #expect(loop.sentRequests(.channelBind).count >= 3)
        #expect(loop.server.counters.allocationsExpired == 0)
        #expect(loop.server.counters.noPermission == 0)
        #expect(loop.server.counters.unboundChannel == 0)
        // Everything reached the peer, and over the channel after the first.
        #expect(loop.peerReceived.count == sent)
    }

    @Test func refreshesSurviveTenPercentLoss() throws {
        let loop = ClientLoop(seed: 3)
        loop.loss = 0.10
        #expect(loop.allocate())
        let start = loop.now
        while loop.now < start + .seconds(1800) {
            loop.client.send([1], to: peerA, now: loop.now)
            loop.pump()
            loop.run(for: .seconds(30))
        }
        #expect(loop.client.state == .allocated)
        #expect(loop.server.counters.allocationsExpired == 0)
        #expect(loop.server.allocationCount == 1)
    }

    @Test func idlePeersLapse() throws {
        let loop = ClientLoop()
        #expect(loop.allocate())
        loop.client.send([1], to: peerA, now: loop.now)
        loop.pump()
        loop.run(for: .seconds(1))
        #expect(loop.client.hasPermission(peerA.ip))
        // Nothing more to peerA: after the idle timeout the client stops
        // refreshing, and the server's permission expires.
        loop.run(for: .seconds(700))
        #expect(!loop.client.hasPermission(peerA.ip))
        #expect(loop.client.state == .allocated)
    }

    @Test func closeDeletesTheAllocation() {
        let loop = ClientLoop()
        #expect(loop.allocate())
        #expect(loop.server.allocationCount == 1)
        loop.client.close(now: loop.now)
        loop.pump()
        loop.run(for: .seconds(5)) { loop.client.state == .closed }
        #expect(loop.client.state == .closed)
        #expect(loop.events.last == .closed)
        #expect(loop.server.allocationCount == 0)
        let last = loop.sentRequests(.refresh).last
        #expect(last?.first(.lifetime) == .lifetime(seconds: 0))
        // Sends after close are refused.
        let accepted = loop.client.send([1], to: peerA, now: loop.now)
        #expect(!accepted)
    }

    @Test func quotaRefusalIsReported() {
        let loop = ClientLoop(server: { $0.maxAllocationsPerUser = 0 })
        #expect(!loop.allocate())
        guard case .failed(.rejected(.allocate, let code, _))? = loop.events.last else {
            Issue.record("expected a rejection, got \(loop.events)")
            return
        }
        #expect(code == 486)
    }

    @Test func ignoresStrangersAndGarbage() {
        let loop = ClientLoop()
        #expect(loop.allocate())
        var rng = ClientTestRNG(seed: 5)
        for n in 0..<2000 {
            var bytes = (0..<(Int(rng.next() % 80))).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            if n % 3 == 0, bytes.count > 4 { bytes[0] = 0x40 }  // ChannelData-shaped
            if n % 3 == 1, bytes.count >= 20 { bytes[0] = 0x01; bytes[1] = 0x13; bytes[4] = 0x21; bytes[5] = 0x12; bytes[6] = 0xA4; bytes[7] = 0x42 }
            _ = loop.client.handleReceive(bytes, from: turnServerAddress, now: loop.now)
            let stranger = loop.client.handleReceive(bytes, from: peerA, now: loop.now)
            #expect(stranger == nil)
        }
        #expect(loop.client.state == .allocated)
    }
}
