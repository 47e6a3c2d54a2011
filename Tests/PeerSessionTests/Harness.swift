import DTLS
import ICE
import PeerSession
import RTCBase
import SRTP


enum Fixtures {
    // Made once: key generation is the slowest part of a handshake test.
    static let clientCertificate = try! DTLSCertificate(commonName: "client")
    static let serverCertificate = try! DTLSCertificate(commonName: "server")
    static let strangerCertificate = try! DTLSCertificate(commonName: "stranger")

    static let clientAddress = TransportAddress("192.0.2.10:50000")!
    static let serverAddress = TransportAddress("198.51.100.1:3478")!
    static let strangerAddress = TransportAddress("203.0.113.66:40000")!

    static let clientCredentials = ICECredentials(ufrag: "cLnt", password: "client-password-0123456789")
    static let serverCredentials = ICECredentials(ufrag: "sRvr", password: "server-password-0123456789")

    static func rtp(seq: UInt16, ssrc: UInt32, payloadType: UInt8 = 96, payload: [UInt8]) -> [UInt8] {
        var p: [UInt8] = [0x80, payloadType, UInt8(seq >> 8), UInt8(seq & 0xFF)]
        let ts = UInt32(seq) &* 3000
        p += [UInt8(ts >> 24), UInt8((ts >> 16) & 0xFF), UInt8((ts >> 8) & 0xFF), UInt8(ts & 0xFF)]
        p += [UInt8(ssrc >> 24), UInt8((ssrc >> 16) & 0xFF), UInt8((ssrc >> 8) & 0xFF), UInt8(ssrc & 0xFF)]
        return p + payload
    }

    /// A receiver report with one report block (RFC 3550 §6.4.2).
    static func receiverReport(ssrc: UInt32, lost: UInt8) -> [UInt8] {
        var p: [UInt8] = [0x81, 201, 0, 7]
        p += [UInt8(ssrc >> 24), UInt8((ssrc >> 16) & 0xFF), UInt8((ssrc >> 8) & 0xFF), UInt8(ssrc & 0xFF)]
        p += [0xAB, 0xCD, 0xEF, 0x01, lost, 0, 0, lost, 0, 0, 0x12, 0x34]
        p += [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        return p
    }
}

/// What `exchangeMedia` needs from a simulated network.
protocol MediaLink: AnyObject {
    var client: PeerTransport { get }
    var server: PeerTransport { get }
    func run(for duration: Duration, stop: () -> Bool)
    func rtpReceived(byServer: Bool) -> [[UInt8]]
    func rtcpReceived(byServer: Bool) -> [[UInt8]]
}

extension MediaLink {
    func run(for duration: Duration) { run(for: duration, stop: { false }) }
}

/// Two transports joined by a simulated link (loss, 20–80 ms delay, hence
/// reordering) under a fake clock that jumps from deadline to deadline.
final class Harness: MediaLink {
    struct Packet {
        var deliverAt: Instant
        var order: Int
        var toServer: Bool
        var transmit: Transmit
    }

    let client: PeerTransport
    let server: PeerTransport
    var now = Instant.zero
    var loss: Double
    var minDelay: Int64 = 20
    var maxDelay: Int64 = 80
    /// While true, the link drops everything (a cable pulled out).
    var cut = false
    var rng: SplitMix64
    private var inFlight: [Packet] = []
    private var order = 0
    var clientEvents: [PeerSessionEvent] = []
    var serverEvents: [PeerSessionEvent] = []
    /// Datagrams each side received, by kind (for tests that look at the wire).
    var delivered = 0

    init(loss: Double = 0, seed: UInt64 = 1, clientDTLSRole: DTLSRole = .client,
         profiles: [DTLSSRTPProfile] = [.aeadAes128Gcm, .aes128CmHmacSha1_80],
         serverProfiles: [DTLSSRTPProfile]? = nil,
         clientExpectsFingerprint: DTLSFingerprint = Fixtures.serverCertificate.fingerprint,
         serverKnowsFingerprint: Bool = true, dtls: DTLSConfiguration? = nil) throws {
        self.loss = loss
        rng = SplitMix64(seed: seed)
        var clientDTLS = dtls ?? DTLSConfiguration()
        clientDTLS.srtpProfiles = profiles
        var serverDTLS = dtls ?? DTLSConfiguration()
        serverDTLS.srtpProfiles = serverProfiles ?? profiles

        // The client makes its offer before it knows anything about the server.
        client = try PeerTransport(
            configuration: PeerSessionConfiguration(
                iceRole: .client, dtlsRole: clientDTLSRole, localCredentials: Fixtures.clientCredentials,
                localCandidates: [Fixtures.clientAddress], certificate: Fixtures.clientCertificate, dtls: clientDTLS),
            rng: SplitMix64(seed: seed &* 31 &+ 7))
        // The server answers knowing the client's offer.
        server = try PeerTransport(
            configuration: PeerSessionConfiguration(
                iceRole: .server, dtlsRole: clientDTLSRole == .client ? .server : .client,
                localCredentials: Fixtures.serverCredentials, certificate: Fixtures.serverCertificate,
                remoteCredentials: Fixtures.clientCredentials,
                remoteFingerprint: serverKnowsFingerprint ? Fixtures.clientCertificate.fingerprint : nil,
                dtls: serverDTLS))
        // The answer reaches the client.
        client.setRemoteCredentials(Fixtures.serverCredentials)
        client.setRemoteFingerprint(clientExpectsFingerprint)
        client.addRemoteCandidate(ICECandidate(
            foundation: "1", priority: ICECandidate.priority(type: .host), address: Fixtures.serverAddress, type: .host))
    }

    var bothConnected: Bool { client.state == .connected && server.state == .connected }

    /// Moves queued transmits onto the link and collects events.
    func drain() {
        while let t = client.pollTransmit() { send(t, toServer: true) }
        while let t = server.pollTransmit() { send(t, toServer: false) }
        while let e = client.pollEvent() { clientEvents.append(e) }
        while let e = server.pollEvent() { serverEvents.append(e) }
    }

    private func send(_ t: Transmit, toServer: Bool) {
        // Neither side may ever send anywhere but to the other.
        precondition(t.destination == (toServer ? Fixtures.serverAddress : Fixtures.clientAddress))
        if cut { return }
        if loss > 0, Double(rng.next() % 1_000_000) / 1_000_000 < loss { return }
        let delay = minDelay + Int64(rng.next() % UInt64(maxDelay - minDelay + 1))
        inFlight.append(Packet(deliverAt: now + .milliseconds(delay), order: order, toServer: toServer, transmit: t))
        order += 1
    }

    func inject(_ payload: [UInt8], toServer: Bool, from: TransportAddress) {
        let to = toServer ? Fixtures.serverAddress : Fixtures.clientAddress
        (toServer ? server : client).handleReceive(payload, from: from, to: to, now: now)
    }

    /// Runs until `stop` is true or `end` (absolute fake time) passes.
    func run(until end: Instant, stop: () -> Bool = { false }) {
        while true {
            // Deliver what is due, in arrival order.
            let due = inFlight.filter { $0.deliverAt <= now }.sorted { ($0.deliverAt, $0.order) < ($1.deliverAt, $1.order) }
            inFlight.removeAll { $0.deliverAt <= now }
            for p in due {
                delivered += 1
                let receiver = p.toServer ? server : client
                let from = p.toServer ? Fixtures.clientAddress : Fixtures.serverAddress
                receiver.handleReceive(p.transmit.payload, from: p.transmit.source ?? from, to: p.transmit.destination, now: now)
            }
            for side in [client, server] {
                if let t = side.pollTimeout(), t <= now { side.handleTimeout(now: now) }
            }
            drain()
            if stop() { return }
            let (next, finished) = nextFakeTime(now: now, end: end,
                                                deadlines: inFlight.map(\.deliverAt) + [client.pollTimeout(), server.pollTimeout()])
            now = next
            if finished { return }
        }
    }

    func run(for duration: Duration, stop: () -> Bool = { false }) {
        run(until: now + duration, stop: stop)
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

/// The fake clock's next step for a harness run until `end`: the earliest
/// of `deadlines` (at least 1 ms ahead so the run always advances), or `end`
/// with `finished` when nothing is due before it.
func nextFakeTime(now: Instant, end: Instant, deadlines: [Instant?]) -> (next: Instant, finished: Bool) {
    guard var next = deadlines.compactMap({ $0 }).min() else { return (max(now, end), true) }
    if next <= now { next = now + .milliseconds(1) }
    if next > end { return (end, true) }
    return (next, false)
}
