import RTCBase
import STUN
@testable import ICE


/// The far end: an ICE-lite server or another full agent.
enum Peer {
    case lite(ICELiteAgent)
    case full(ICEAgent)

    mutating func receive(_ payload: [UInt8], from: TransportAddress, to: TransportAddress, now: Instant) {
        payload.withUnsafeBytes { p in
            switch self {
            case .lite(var a): a.handleReceive(p, from: from, now: now); self = .lite(a)
            case .full(var a): a.handleReceive(p, from: from, to: to, now: now); self = .full(a)
            }
        }
    }
    mutating func timeout(_ now: Instant) {
        switch self {
        case .lite(var a): a.handleTimeout(now: now); self = .lite(a)
        case .full(var a): a.handleTimeout(now: now); self = .full(a)
        }
    }
    var deadline: Instant? {
        switch self {
        case .lite(let a): return a.pollTimeout()
        case .full(let a): return a.pollTimeout()
        }
    }
    mutating func transmit() -> Transmit? {
        switch self {
        case .lite(var a): defer { self = .lite(a) }; return a.pollTransmit()
        case .full(var a): defer { self = .full(a) }; return a.pollTransmit()
        }
    }
    mutating func event() -> ICEEvent? {
        switch self {
        case .lite(var a): defer { self = .lite(a) }; return a.pollEvent()
        case .full(var a): defer { self = .full(a) }; return a.pollEvent()
        }
    }
    var lite: ICELiteAgent? { if case .lite(let a) = self { return a }; return nil }
    var full: ICEAgent? { if case .full(let a) = self { return a }; return nil }
}

/// Two agents joined by an in-memory link with a fake clock, fixed latency
/// and a drop rule; runs much faster than real time.
struct Simulation {
    struct Packet {
        var at: Instant
        var from: TransportAddress
        var to: TransportAddress
        var payload: [UInt8]
        var toClient: Bool
    }

    var client: ICEAgent
    var server: Peer
    /// The server's (single) address, used as `source` for lite transmits.
    let serverAddress: TransportAddress
    var now = Instant.zero
    var latency: Duration = .milliseconds(20)
    var inFlight: [Packet] = []
    /// Returns true to drop a packet.
    var drop: (inout SplitMix64, TransportAddress, TransportAddress) -> Bool = { _, _, _ in false }
    var rng = SplitMix64(seed: 99)
    var clientEvents: [(Instant, ICEEvent)] = []
    var serverEvents: [(Instant, ICEEvent)] = []
    var delivered = 0

    init(client: ICEAgent, server: Peer, serverAddress: TransportAddress) {
        self.client = client
        self.server = server
        self.serverAddress = serverAddress
    }

    mutating func flush() {
        while let t = client.pollTransmit() {
            let src = t.source ?? client.localCandidates[0]
            if !drop(&rng, src, t.destination) {
                inFlight.append(Packet(at: now + latency, from: src, to: t.destination, payload: t.payload, toClient: false))
            }
        }
        while let t = server.transmit() {
            let src = t.source ?? serverAddress
            if !drop(&rng, src, t.destination) {
                inFlight.append(Packet(at: now + latency, from: src, to: t.destination, payload: t.payload, toClient: true))
            }
        }
        while let e = client.pollEvent() { clientEvents.append((now, e)) }
        while let e = server.event() { serverEvents.append((now, e)) }
    }

    /// Runs until `end` (absolute), or until `stop` returns true.
    mutating func run(until end: Instant, stop: (Simulation) -> Bool = { _ in false }) {
        flush()
        while !stop(self) {
            var next = inFlight.map(\.at).min()
            for d in [client.pollTimeout(), server.deadline].compactMap({ $0 }) {
                next = min(next ?? d, d)
            }
            guard let t = next, t <= end else { now = end; return }
            now = max(now, t)
            let due = inFlight.filter { $0.at <= now }
            inFlight.removeAll { $0.at <= now }
            for p in due {
                delivered += 1
                if p.toClient {
                    p.payload.withUnsafeBytes { _ = client.handleReceive($0, from: p.from, to: p.to, now: now) }
                } else {
                    server.receive(p.payload, from: p.from, to: p.to, now: now)
                }
            }
            if let d = client.pollTimeout(), d <= now { client.handleTimeout(now: now) }
            if let d = server.deadline, d <= now { server.timeout(now) }
            flush()
        }
    }

    func clientConnected() -> (TransportAddress, TransportAddress)? {
        for (_, e) in clientEvents { if case .connected(let l, let r) = e { return (l, r) } }
        return nil
    }
    func serverSelected() -> [TransportAddress] {
        serverEvents.compactMap { if case .selectedPair(let r) = $0.1 { return r }; return nil }
    }
}

enum Fixture {
    static let server = TransportAddress("10.0.0.1:3478")!
    static let c1 = TransportAddress("192.168.1.2:5000")!
    static let c2 = TransportAddress("192.168.1.3:5001")!
    static let clientCreds = ICECredentials(ufrag: "cLnt", password: "clientpassword0123456789")
    static let serverCreds = ICECredentials(ufrag: "sRvr", password: "serverpassword0123456789")

    static func pair(clientLocals: [TransportAddress] = [c1], remoteCreds: ICECredentials = serverCreds,
                     seed: UInt64 = 1) -> Simulation {
        var client = ICEAgent(local: clientCreds, remote: remoteCreds, localCandidates: clientLocals,
                              rng: SplitMix64(seed: seed))
        client.addRemoteCandidate(try! ICECandidate(parsing: "candidate:1 1 udp 2130706431 10.0.0.1 3478 typ host"))
        let lite = ICELiteAgent(local: serverCreds, remote: clientCreds)
        return Simulation(client: client, server: .lite(lite), serverAddress: server)
    }
}
