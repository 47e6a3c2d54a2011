import RTCBase
import STUN
import Testing
@testable import TURN

let realm = "parley.test"
let publicIP = IPAddress("203.0.113.1")!
let clientA = TransportAddress("198.51.100.10:50000")!
let clientB = TransportAddress("198.51.100.20:50001")!
/// TEST-NET addresses are not in any refused range, so they act as public peers.
let peerA = TransportAddress("192.0.2.77:6000")!
let peerB = TransportAddress("192.0.2.78:7000")!
let restSecret: [UInt8] = Array("north-wind".utf8)
/// Unix time when the fake monotonic clock reads zero.
let unixEpochAtZero: Int64 = 1_700_000_000

/// Credentials as a client holds them, and how it signs with them.
struct ClientCredentials {
    var username: String
    var password: String
    var algorithm: STUNPasswordAlgorithmKind = .md5
    /// Send PASSWORD-ALGORITHMS + PASSWORD-ALGORITHM (RFC 8489 clients).
    var negotiateAlgorithm = false
    /// Use MESSAGE-INTEGRITY-SHA256 instead of MESSAGE-INTEGRITY.
    var sha256Integrity = false

    var key: STUNIntegrityKey {
        STUNIntegrityKey(username: username, realm: realm, password: password, algorithm: algorithm)
    }
}

let alice = ClientCredentials(username: "alice", password: "wonderland")
let bob = ClientCredentials(username: "bob", password: "builder")

/// Drives a `TURNServer` with a fake clock, acting as the client and the edge.
final class Harness {
    var server: TURNServer
    var now: Instant = .seconds(1000)
    var nextTID: UInt64 = 1
    /// Last nonce seen per client, as a client would remember it.
    var nonce: [TransportAddress: String] = [:]

    static func configuration(_ tweak: (inout TURNServerConfiguration) -> Void = { _ in }) -> TURNServerConfiguration {
        var c = TURNServerConfiguration(realm: realm, publicIP: publicIP, relayPorts: 50000...50099,
                                        nonceSecret: Array("nonce-secret".utf8),
                                        wallClockSeconds: { unixEpochAtZero + $0.nanoseconds / 1_000_000_000 })
        c.users = ["alice": "wonderland", "bob": "builder"]
        c.restSecret = restSecret
        tweak(&c)
        return c
    }

    init(_ tweak: (inout TURNServerConfiguration) -> Void = { _ in }) {
        server = TURNServer(configuration: Harness.configuration(tweak), seed: 42)
    }

    var unixNow: Int64 { unixEpochAtZero + now.nanoseconds / 1_000_000_000 }

    func tid() -> STUNTransactionID {
        defer { nextTID += 1 }
        return STUNTransactionID(high: 0xABCD, low: nextTID)
    }

    func advance(_ d: Duration) {
        now += d
        server.handleTimeout(now: now)
    }

    /// Runs timers the way an edge would: every deadline up to `now + d`.
    func advanceFiringTimers(_ d: Duration) {
        let end = now + d
        while let t = server.pollTimeout(), t <= end {
            now = max(now, t)
            server.handleTimeout(now: now)
        }
        now = end
        server.handleTimeout(now: now)
    }

    func drain() -> [TURNAction] {
        var out: [TURNAction] = []
        while let a = server.pollAction() { out.append(a) }
        return out
    }

    /// Sends raw bytes from a client and returns the actions.
    func fromClient(_ bytes: [UInt8], client: TransportAddress = clientA,
                             transport: TURNTransport = .udp) -> [TURNAction] {
        server.handleClientPacket(bytes, from: client, transport: transport, now: now)
        return drain()
    }

    /// Encodes a request, signed when `credentials` is given (with the
    /// client's remembered nonce, or `nonceOverride`).
    func encodeRequest(_ method: STUNMethod, _ attributes: [STUNAttribute], credentials: ClientCredentials?,
                                client: TransportAddress = clientA, nonceOverride: String? = nil,
                                transactionID: STUNTransactionID? = nil, fingerprint: Bool = false) -> [UInt8] {
        var attrs = attributes
        var key: STUNIntegrityKey?
        if let credentials {
            attrs += [.username(credentials.username), .realm(realm), .nonce(nonceOverride ?? nonce[client] ?? "none")]
            if credentials.negotiateAlgorithm {
                attrs += [.passwordAlgorithms([STUNPasswordAlgorithm(.md5), STUNPasswordAlgorithm(.sha256)]),
                          .passwordAlgorithm(STUNPasswordAlgorithm(credentials.algorithm))]
            }
            key = credentials.key
        }
        let message = STUNMessage(type: STUNMessageType(method: method, messageClass: .request),
                                  transactionID: transactionID ?? tid(), attributes: attrs)
        let sha = credentials?.sha256Integrity ?? false
        return try! message.encoded(integrity: sha ? nil : key, integritySHA256: sha ? key : nil, fingerprint: fingerprint)
    }

    /// Sends a request and returns the decoded responses to that client
    /// plus every action. Remembers NONCE from 401/438 answers.
    func request(_ method: STUNMethod, _ attributes: [STUNAttribute], credentials: ClientCredentials?,
                          client: TransportAddress = clientA, transport: TURNTransport = .udp,
                          nonceOverride: String? = nil, transactionID: STUNTransactionID? = nil,
                          fingerprint: Bool = false, retryStale: Bool = true) -> (response: STUNMessage?, raw: [UInt8]?, actions: [TURNAction]) {
        let first = requestOnce(method, attributes, credentials: credentials, client: client, transport: transport,
                                nonceOverride: nonceOverride, transactionID: transactionID, fingerprint: fingerprint)
        // A real client retries once with the fresh nonce of a 438.
        if retryStale, credentials != nil, nonceOverride == nil, first.response?.code == 438 {
            return requestOnce(method, attributes, credentials: credentials, client: client, transport: transport,
                               nonceOverride: nil, transactionID: nil, fingerprint: fingerprint)
        }
        return first
    }

    func requestOnce(_ method: STUNMethod, _ attributes: [STUNAttribute], credentials: ClientCredentials?,
                              client: TransportAddress, transport: TURNTransport, nonceOverride: String?,
                              transactionID: STUNTransactionID?, fingerprint: Bool) -> (response: STUNMessage?, raw: [UInt8]?, actions: [TURNAction]) {
        let bytes = encodeRequest(method, attributes, credentials: credentials, client: client,
                                  nonceOverride: nonceOverride, transactionID: transactionID, fingerprint: fingerprint)
        let actions = fromClient(bytes, client: client, transport: transport)
        let raw = actions.compactMap { a -> [UInt8]? in
            if case .sendToClient(let b, let c, let t) = a, c == client, t == transport { return b }
            return nil
        }.first
        let response = raw.flatMap { try? STUNMessage(parsing: $0) }
        if let n = response?.nonce { nonce[client] = n }
        return (response, raw, actions)
    }

    /// Gets a nonce the way a client does: an unauthenticated request → 401.
    func fetchNonce(client: TransportAddress = clientA, transport: TURNTransport = .udp) {
        _ = request(.allocate, [.requestedTransport(protocolNumber: 17)], credentials: nil, client: client, transport: transport)
    }

    /// Full Allocate: 401 round trip, authenticated request, edge bind.
    /// Returns the relayed address and the success response.
    func allocate(_ credentials: ClientCredentials = alice, client: TransportAddress = clientA,
                           transport: TURNTransport = .udp, extra: [STUNAttribute] = []) -> (relay: TransportAddress, response: STUNMessage)? {
        if nonce[client] == nil { fetchNonce(client: client, transport: transport) }
        let result = request(.allocate, [.requestedTransport(protocolNumber: 17)] + extra, credentials: credentials,
                             client: client, transport: transport)
        guard case .bindRelay(let relay, let id)? = result.actions.first else { return nil }
        let bound = server.relayBound(id, now: now)
        #expect(bound)
        let actions = drain()
        guard case .sendToClient(let bytes, _, _)? = actions.first, let response = try? STUNMessage(parsing: bytes) else { return nil }
        return (relay, response)
    }

    /// CreatePermission for `peers`; returns the response.
    func permit(_ peers: [TransportAddress], _ credentials: ClientCredentials = alice,
                         client: TransportAddress = clientA, transport: TURNTransport = .udp) -> STUNMessage? {
        request(.createPermission, peers.map { .xorPeerAddress($0) }, credentials: credentials,
                client: client, transport: transport).response
    }

    func channelBind(_ channel: UInt16, _ peer: TransportAddress, _ credentials: ClientCredentials = alice,
                              client: TransportAddress = clientA, transport: TURNTransport = .udp) -> STUNMessage? {
        request(.channelBind, [.channelNumber(channel), .xorPeerAddress(peer)], credentials: credentials,
                client: client, transport: transport).response
    }

    func fromPeer(_ bytes: [UInt8], relay: TransportAddress, peer: TransportAddress = peerA) -> [TURNAction] {
        server.handlePeerPacket(bytes, relay: relay, from: peer, now: now)
        return drain()
    }
}

extension STUNMessage {
    var isSuccess: Bool { type.messageClass == .successResponse }
    var code: UInt16? { errorCode?.code }
    var xorRelayedAddress: TransportAddress? {
        if case .xorRelayedAddress(let a)? = first(.xorRelayedAddress) { return a }; return nil
    }
    var lifetime: UInt32? { if case .lifetime(let s)? = first(.lifetime) { return s }; return nil }
    var dataValue: [UInt8]? { if case .data(let d)? = first(.data) { return d }; return nil }
    var xorPeerAddress: TransportAddress? {
        if case .xorPeerAddress(let a)? = first(.xorPeerAddress) { return a }; return nil
    }
}

func sendToPeerActions(_ actions: [TURNAction]) -> [(bytes: [UInt8], relay: TransportAddress, peer: TransportAddress)] {
    actions.compactMap { if case .sendToPeer(let b, let r, let p) = $0 { return (b, r, p) }; return nil }
}

func sendToClientActions(_ actions: [TURNAction]) -> [(bytes: [UInt8], client: TransportAddress, transport: TURNTransport)] {
    actions.compactMap { if case .sendToClient(let b, let c, let t) = $0 { return (b, c, t) }; return nil }
}

func sendIndication(peer: TransportAddress, data: [UInt8], tid: STUNTransactionID) -> [UInt8] {
    try! STUNMessage(type: STUNMessageType(method: .send, messageClass: .indication), transactionID: tid,
                     attributes: [.xorPeerAddress(peer), .data(data)]).encoded()
}
