import RTCBase
import STUN

/// Settings of one client-side allocation on one TURN server.
public struct TURNClientConfiguration: Sendable, Hashable {
    /// The TURN server's UDP address.
    public var server: TransportAddress
    /// Long-term credentials (RFC 8489 §9.2), already OpaqueString-prepared
    /// by the caller; REST credentials (`TURNRESTCredential`) work as is.
    public var username: String
    public var password: String
    /// The local socket that reaches the server: the `source` of every
    /// transmit (nil: "the socket you have").
    public var localAddress: TransportAddress?
    /// LIFETIME asked for in Allocate and Refresh; nil lets the server pick
    /// its default (600 s, RFC 8656 §7.2).
    public var requestedLifetime: Duration?
    /// Refresh this long before the allocation expires (RFC 8656 §8 leaves
    /// the margin to the client; one minute covers a full retransmission run).
    public var refreshMargin: Duration = .seconds(60)
    /// Permissions last 300 s (RFC 8656 §9); refresh at 4 minutes.
    public var permissionRefreshInterval: Duration = .seconds(240)
    /// Channel bindings last 600 s (RFC 8656 §12); refresh at 9 minutes.
    public var channelRefreshInterval: Duration = .seconds(540)
    /// A peer IP nothing was sent to for this long is no longer refreshed
    /// (its permission and channel lapse on the server).
    public var peerIdleTimeout: Duration = .seconds(300)
    /// RTO of the first retransmission (RFC 8489 §6.2.1: 500 ms), doubled
    /// after each one.
    public var initialRTO: Duration = .milliseconds(500)
    /// Rc: transmissions of one request (RFC 8489 §6.2.1: 7).
    public var maxTransmissions = 7
    /// Rm: after the last transmission, wait Rm × initial RTO for an answer
    /// (RFC 8489 §6.2.1: 16).
    public var finalWaitMultiplier: Int64 = 16
    /// 401/438 retries of one request before giving up (a server that keeps
    /// issuing stale nonces would otherwise loop forever).
    public var maxAuthRetries = 3
    /// Datagrams held per peer IP while its permission is being installed.
    public var pendingLimit = 16
    /// SOFTWARE in requests (RFC 8489 §14.14); nil leaves it out.
    public var software: String? = "Parley"

    public init(server: TransportAddress, username: String, password: String, localAddress: TransportAddress? = nil) {
        self.server = server
        self.username = username
        self.password = password
        self.localAddress = localAddress
    }
}

/// Why an allocation failed or a request was refused.
public enum TURNClientError: Error, Sendable, Hashable {
    /// No answer after Rc transmissions and the final wait (RFC 8489 §6.2.1).
    case timeout(STUNMethod)
    /// An error response other than the 401/438 the credential mechanism
    /// handles (e.g. 437 Allocation Mismatch, 486 quota, 508 capacity).
    case rejected(STUNMethod, code: UInt16, reason: String)
    /// 401 to a request that carried our credentials: wrong username or
    /// password (RFC 8489 §9.2.5).
    case unauthorized
    /// 401/438 kept coming back beyond `maxAuthRetries`.
    case tooManyChallenges
    /// A 401/438 without REALM and NONCE, or a nonce cookie announcing
    /// password algorithms without PASSWORD-ALGORITHMS (RFC 8489 §9.2.5),
    /// or only algorithms this client does not know.
    case badChallenge
    /// A success response missing what the method requires
    /// (e.g. XOR-RELAYED-ADDRESS for Allocate).
    case malformedResponse(STUNMethod)
}

/// What the allocation reports, drained with `pollEvent()`.
public enum TURNClientEvent: Sendable, Hashable {
    /// The server granted the allocation: `relayed` is the relayed transport
    /// address (the relay candidate), `mapped` the client's server-reflexive
    /// address as the server saw it.
    case allocated(relayed: TransportAddress, mapped: TransportAddress?)
    /// A Refresh succeeded; the allocation now lasts `lifetime`.
    case refreshed(lifetime: Duration)
    /// CreatePermission or ChannelBind for this peer IP failed; data queued
    /// for it was dropped. A later `send` to it tries again.
    case permissionFailed(IPAddress, TURNClientError)
    /// The allocation is unusable (or could not be made).
    case failed(TURNClientError)
    /// `close` finished: the server deleted the allocation (or never answered).
    case closed
}

/// Data a peer sent through the relay, located inside the datagram handed to
/// `handleReceive` (no copy).
public struct TURNRelayedData: Sendable, Hashable {
    public var peer: TransportAddress
    /// Where the peer's bytes sit in the input datagram.
    public var payload: Range<Int>
}

/// A sans-IO TURN client for one UDP allocation (RFC 8656 §7–§12): Allocate
/// with the long-term credential mechanism (RFC 8489 §9.2), Refresh before
/// expiry, CreatePermission and ChannelBind per peer with their refreshes,
/// Send indications until a channel is bound and ChannelData after, and the
/// reverse unwrapping of Data indications and ChannelData.
///
/// Drive it like the other engines: `start(now:)`, then feed every datagram
/// from the server to `handleReceive`, call `handleTimeout` at
/// `pollTimeout()`, and drain `pollTransmit()` and `pollEvent()`.
public struct TURNClientAllocation: Sendable {
    public enum State: Sendable, Hashable { case idle, allocating, allocated, closing, closed, failed }

    enum Request: Sendable, Hashable {
        case allocate
        case refresh(lifetime: UInt32?)
        case createPermission(IPAddress)
        case channelBind(channel: UInt16, peer: TransportAddress)

        var method: STUNMethod {
            switch self {
            case .allocate: return .allocate
            case .refresh: return .refresh
            case .createPermission: return .createPermission
            case .channelBind: return .channelBind
            }
        }
    }

    struct Transaction: Sendable {
        var request: Request
        var bytes: [UInt8]
        var transmissions: Int
        var rto: Duration
        var deadline: Instant
        /// Sent with MESSAGE-INTEGRITY: a 401 to it means bad credentials.
        var authenticated: Bool
        var challenges: Int
    }

    /// Credentials learned from the server's challenge.
    struct Auth: Sendable {
        var realm: String
        var nonce: String
        var key: STUNIntegrityKey
        /// The PASSWORD-ALGORITHMS list to echo, and the one chosen
        /// (RFC 8489 §9.2.4 bid-down protection); nil when not offered.
        var offered: [STUNPasswordAlgorithm]?
        var chosen: STUNPasswordAlgorithmKind
    }

    struct Permission: Sendable {
        var installed = false
        var inFlight = false
        var refreshAt: Instant?
        var lastUsed: Instant
        var queue: [(peer: TransportAddress, payload: [UInt8])] = []
    }

    struct Channel: Sendable {
        var number: UInt16
        var bound = false
        var inFlight = false
        var refreshAt: Instant?
    }

    public let configuration: TURNClientConfiguration
    public private(set) var state: State = .idle
    /// The relayed transport address, once allocated.
    public private(set) var relayedAddress: TransportAddress?
    /// The client's address as the server sees it (XOR-MAPPED-ADDRESS).
    public private(set) var mappedAddress: TransportAddress?
    /// When the allocation expires unless refreshed.
    public private(set) var expiry: Instant?

    private var rng: any RandomNumberGenerator & Sendable
    private var auth: Auth?
    private var transactions: [STUNTransactionID: Transaction] = [:]
    private var refreshAt: Instant?
    private var permissions: [IPAddress: Permission] = [:]
    private var channels: [TransportAddress: Channel] = [:]
    private var peerByChannel: [UInt16: TransportAddress] = [:]
    private var nextChannel: UInt16 = TURNChannelData.channelRange.lowerBound
    private var transmits: [Transmit] = []
    private var events: [TURNClientEvent] = []

    /// - Parameter rng: transaction ids (RFC 8489 §5 asks for random ones;
    ///   tests pass a seeded generator).
    public init(configuration: TURNClientConfiguration,
                rng: any RandomNumberGenerator & Sendable = SystemRandomNumberGenerator()) {
        self.configuration = configuration
        self.rng = rng
    }

    /// The TURN server this allocation lives on.
    public var server: TransportAddress { configuration.server }

    /// True once a ChannelBind for `peer` succeeded (data goes as ChannelData).
    public func isChannelBound(_ peer: TransportAddress) -> Bool { channels[peer]?.bound ?? false }

    /// True while the server holds a permission for `ip` as far as we know.
    public func hasPermission(_ ip: IPAddress) -> Bool { permissions[ip]?.installed ?? false }

    // MARK: Driving

    /// Sends the first Allocate, without credentials: the server's 401
    /// brings REALM and NONCE (RFC 8489 §9.2.3.1).
    public mutating func start(now: Instant) {
        guard state == .idle else { return }
        state = .allocating
        begin(.allocate, now: now)
    }

    /// Deletes the allocation: Refresh with LIFETIME 0 (RFC 8656 §8). Ends
    /// with `.closed` once answered (or timed out).
    public mutating func close(now: Instant) {
        switch state {
        case .allocated:
            transactions.removeAll()
            permissions.removeAll()
            state = .closing
            begin(.refresh(lifetime: 0), now: now)
        case .allocating, .idle:
            transactions.removeAll()
            state = .closed
            events.append(.closed)
        case .closing, .closed, .failed:
            break
        }
    }

    /// Relays `payload` to `peer`: as ChannelData once a channel is bound, as
    /// a Send indication while only the permission exists, or held until the
    /// permission is installed (the first send to a peer starts
    /// CreatePermission and ChannelBind). Returns false if dropped (no
    /// allocation, or the per-peer queue is full).
    @discardableResult
    public mutating func send(_ payload: [UInt8], to peer: TransportAddress, now: Instant) -> Bool {
        guard state == .allocated, payload.count <= 0xFFFF else { return false }
        if permissions[peer.ip] == nil {
            permissions[peer.ip] = Permission(lastUsed: now)
            requestPermission(peer.ip, now: now)
        }
        permissions[peer.ip]?.lastUsed = now
        if channels[peer] == nil, let number = takeChannelNumber() {
            channels[peer] = Channel(number: number)
            peerByChannel[number] = peer
            requestChannel(peer, now: now)
        }
        if let channel = channels[peer], channel.bound {
            // RFC 8656 §12.5: over UDP the padding is optional; leave it out.
            transmit(TURNChannelData.encode(channel: channel.number, payload: payload, padded: false))
            return true
        }
        guard let permission = permissions[peer.ip], permission.installed else {
            guard (permissions[peer.ip]?.queue.count ?? 0) < configuration.pendingLimit else { return false }
            permissions[peer.ip]?.queue.append((peer, payload))
            return true
        }
        sendIndication(payload, to: peer)
        return true
    }

    /// A datagram from `source`. Anything not from the server is ignored.
    /// Returns where the relayed peer data sits in `packet` for a Data
    /// indication or ChannelData; nil for responses and anything dropped.
    public mutating func handleReceive(_ packet: UnsafeRawBufferPointer, from source: TransportAddress,
                                       now: Instant) -> TURNRelayedData? {
        guard source == configuration.server, let first = packet.first else { return nil }
        if first & 0xC0 == 0x40 {
            // ChannelData (RFC 8656 §12.6): the channel names the peer.
            guard let (channel, payload) = try? TURNChannelData.parse(packet),
                  let peer = peerByChannel[channel] else { return nil }
            return TURNRelayedData(peer: peer, payload: payload)
        }
        guard let view = try? STUNMessageView(packet) else { return nil }
        if view.fingerprintOffset != nil, (try? view.verifyFingerprint()) == nil { return nil }
        switch view.type.messageClass {
        case .indication:
            // Data indication (RFC 8656 §11.6): XOR-PEER-ADDRESS and DATA.
            guard view.type.method == .data, state == .allocated || state == .closing,
                  let peerAttr = view.first(.xorPeerAddress),
                  let peer = try? peerAttr.xorAddress(transactionID: view.transactionID),
                  let data = view.first(.data) else { return nil }
            let start = data.offset + 4
            return TURNRelayedData(peer: peer, payload: start..<(start + data.value.count))
        case .successResponse, .errorResponse:
            handleResponse(view, now: now)
            return nil
        case .request:
            return nil
        }
    }

    /// Copying convenience over `handleReceive(_:from:now:)`.
    public mutating func handleReceive(_ packet: [UInt8], from source: TransportAddress,
                                       now: Instant) -> (peer: TransportAddress, payload: [UInt8])? {
        packet.withUnsafeBytes { p in
            handleReceive(p, from: source, now: now).map { ($0.peer, Array(p[$0.payload])) }
        }
    }

    /// Retransmissions (RFC 8489 §6.2.1) and the Refresh, CreatePermission
    /// and ChannelBind refreshes that are due.
    public mutating func handleTimeout(now: Instant) {
        for (id, var tx) in transactions where tx.deadline <= now {
            if tx.transmissions < configuration.maxTransmissions {
                tx.transmissions += 1
                transmit(tx.bytes)
                if tx.transmissions == configuration.maxTransmissions {
                    // The last one: wait Rm × RTO, then give up.
                    tx.deadline = now + configuration.initialRTO * configuration.finalWaitMultiplier
                } else {
                    tx.rto = tx.rto * 2
                    tx.deadline = now + tx.rto
                }
                transactions[id] = tx
            } else {
                transactions[id] = nil
                transactionFailed(tx.request, .timeout(tx.request.method), now: now)
            }
        }
        guard state == .allocated else { return }
        if let at = refreshAt, at <= now {
            refreshAt = nil
            begin(.refresh(lifetime: requestedLifetimeSeconds), now: now)
        }
        for (ip, permission) in permissions {
            guard let at = permission.refreshAt, at <= now else { continue }
            permissions[ip]?.refreshAt = nil
            if now - permission.lastUsed >= configuration.peerIdleTimeout {
                // Idle: let it lapse, with any channel to that IP.
                permissions[ip] = nil
                for (peer, channel) in channels where peer.ip == ip {
                    channels[peer] = nil
                    peerByChannel[channel.number] = nil
                }
                continue
            }
            requestPermission(ip, now: now)
        }
        for (peer, channel) in channels {
            guard let at = channel.refreshAt, at <= now else { continue }
            channels[peer]?.refreshAt = nil
            requestChannel(peer, now: now)
        }
    }

    /// The earliest time `handleTimeout` has work.
    public func pollTimeout() -> Instant? {
        var earliest: Instant?
        func consider(_ t: Instant?) { if let t, earliest.map({ t < $0 }) ?? true { earliest = t } }
        for tx in transactions.values { consider(tx.deadline) }
        guard state == .allocated else { return earliest }
        consider(refreshAt)
        for p in permissions.values { consider(p.refreshAt) }
        for c in channels.values { consider(c.refreshAt) }
        return earliest
    }

    public mutating func pollTransmit() -> Transmit? {
        transmits.isEmpty ? nil : transmits.removeFirst()
    }

    public mutating func pollEvent() -> TURNClientEvent? {
        events.isEmpty ? nil : events.removeFirst()
    }

    // MARK: Requests

    private var requestedLifetimeSeconds: UInt32? {
        configuration.requestedLifetime.map { UInt32(clamping: $0.components.seconds) }
    }

    private mutating func takeChannelNumber() -> UInt16? {
        // Numbers are never reused: the server holds an expired binding's
        // number for 5 minutes (RFC 8656 §12). 4096 channels is plenty for
        // the peers of one ICE session.
        guard nextChannel <= TURNChannelData.channelRange.upperBound else { return nil }
        defer { nextChannel += 1 }
        return nextChannel
    }

    private mutating func requestPermission(_ ip: IPAddress, now: Instant) {
        guard permissions[ip]?.inFlight == false else { return }
        permissions[ip]?.inFlight = true
        begin(.createPermission(ip), now: now)
    }

    private mutating func requestChannel(_ peer: TransportAddress, now: Instant) {
        guard let channel = channels[peer], !channel.inFlight else { return }
        channels[peer]?.inFlight = true
        begin(.channelBind(channel: channel.number, peer: peer), now: now)
    }

    private mutating func begin(_ request: Request, now: Instant, challenges: Int = 0) {
        let tid = STUNTransactionID.random(using: &rng)
        guard let bytes = encode(request, transactionID: tid) else {
            transactionFailed(request, .malformedResponse(request.method), now: now)
            return
        }
        transmit(bytes)
        transactions[tid] = Transaction(request: request, bytes: bytes, transmissions: 1, rto: configuration.initialRTO,
                                        deadline: now + configuration.initialRTO, authenticated: auth != nil,
                                        challenges: challenges)
    }

    private func encode(_ request: Request, transactionID: STUNTransactionID) -> [UInt8]? {
        var attributes: [STUNAttribute] = []
        switch request {
        case .allocate:
            // RFC 8656 §7.1: UDP relaying (protocol 17).
            attributes.append(.requestedTransport(protocolNumber: 17))
            if let seconds = requestedLifetimeSeconds { attributes.append(.lifetime(seconds: seconds)) }
        case .refresh(let lifetime):
            if let lifetime { attributes.append(.lifetime(seconds: lifetime)) }
        case .createPermission(let ip):
            // The port is ignored by the server (RFC 8656 §9.1).
            attributes.append(.xorPeerAddress(TransportAddress(ip: ip, port: 0)))
        case .channelBind(let channel, let peer):
            attributes.append(.channelNumber(channel))
            attributes.append(.xorPeerAddress(peer))
        }
        if let software = configuration.software { attributes.append(.software(software)) }
        var useSHA256 = false
        if let auth {
            attributes.append(.username(configuration.username))
            attributes.append(.realm(auth.realm))
            attributes.append(.nonce(auth.nonce))
            if let offered = auth.offered {
                attributes.append(.passwordAlgorithms(offered))
                attributes.append(.passwordAlgorithm(STUNPasswordAlgorithm(auth.chosen)))
                useSHA256 = auth.chosen == .sha256
            }
        }
        let message = STUNMessage(type: STUNMessageType(method: request.method, messageClass: .request),
                                  transactionID: transactionID, attributes: attributes)
        // With SHA-256 negotiated the integrity attribute is the SHA-256 one
        // (RFC 8489 §9.2.4); otherwise MESSAGE-INTEGRITY with the MD5 key.
        return try? message.encoded(integrity: useSHA256 ? nil : auth?.key, integritySHA256: useSHA256 ? auth?.key : nil,
                                    fingerprint: true)
    }

    private mutating func sendIndication(_ payload: [UInt8], to peer: TransportAddress) {
        // Send indications carry no credentials (RFC 8656 §11.1); their
        // transaction ids only need to be distinct.
        let tid = STUNTransactionID.random(using: &rng)
        let message = STUNMessage(type: STUNMessageType(method: .send, messageClass: .indication), transactionID: tid,
                                  attributes: [.xorPeerAddress(peer), .data(payload)])
        if let bytes = try? message.encoded() { transmit(bytes) }
    }

    private mutating func transmit(_ bytes: [UInt8]) {
        transmits.append(Transmit(source: configuration.localAddress, destination: configuration.server, payload: bytes))
    }

    // MARK: Responses

    private mutating func handleResponse(_ view: STUNMessageView, now: Instant) {
        guard let tx = transactions[view.transactionID], view.type.method == tx.request.method else { return }
        if view.type.messageClass == .errorResponse {
            let code = view.errorCodeNumber ?? 0
            if code == 401 || code == 438 {
                // Unauthenticated by nature (RFC 8489 §9.2.5): they bring the
                // realm and a fresh nonce.
                transactions[view.transactionID] = nil
                challenged(view, tx, code: code, now: now)
                return
            }
            // Other errors to authenticated requests carry integrity; one
            // that does not verify is treated as never received (§9.2.5).
            if tx.authenticated, !integrityOK(view) { return }
            transactions[view.transactionID] = nil
            let reason = (try? view.first(.errorCode)?.decode(transactionID: view.transactionID)).flatMap {
                if case .errorCode(let e) = $0 { return e.reason } else { return nil }
            } ?? ""
            transactionFailed(tx.request, .rejected(tx.request.method, code: code, reason: reason), now: now)
            return
        }
        guard integrityOK(view) else { return }
        transactions[view.transactionID] = nil
        succeeded(tx.request, view, now: now)
    }

    /// RFC 8489 §9.2.5: a success response must carry integrity made with
    /// our key; MESSAGE-INTEGRITY-SHA256 is checked when present.
    private func integrityOK(_ view: STUNMessageView) -> Bool {
        guard let auth else { return false }
        if view.messageIntegritySHA256Offset != nil {
            return (try? view.verifyMessageIntegritySHA256(key: auth.key)) != nil
        }
        return (try? view.verifyMessageIntegrity(key: auth.key)) != nil
    }

    private mutating func challenged(_ view: STUNMessageView, _ tx: Transaction, code: UInt16, now: Instant) {
        // A 401 to a request that carried our credentials means they are
        // wrong; 438 only means the nonce aged (RFC 8489 §9.2.5).
        if code == 401, tx.authenticated {
            transactionFailed(tx.request, .unauthorized, now: now)
            return
        }
        guard tx.challenges < configuration.maxAuthRetries else {
            transactionFailed(tx.request, .tooManyChallenges, now: now)
            return
        }
        guard let message = try? STUNMessage(view), let realm = message.realm ?? auth?.realm, let nonce = message.nonce else {
            transactionFailed(tx.request, .badChallenge, now: now)
            return
        }
        var offered: [STUNPasswordAlgorithm]?
        if case .passwordAlgorithms(let list)? = message.first(.passwordAlgorithms) { offered = list }
        var chosen = STUNPasswordAlgorithmKind.md5
        if let offered {
            // Prefer SHA-256 (RFC 8489 §18.5.1.2 over the MD5 of §18.5.1.1).
            if offered.contains(where: { $0.kind == .sha256 }) {
                chosen = .sha256
            } else if !offered.contains(where: { $0.kind == .md5 }) {
                transactionFailed(tx.request, .badChallenge, now: now)
                return
            }
        } else if TURNClientAllocation.nonceAnnouncesPasswordAlgorithms(nonce) {
            // §9.2.5: the cookie promises PASSWORD-ALGORITHMS but none came:
            // a bid-down attempt; do not retry.
            transactionFailed(tx.request, .badChallenge, now: now)
            return
        }
        if auth?.realm != realm || auth?.chosen != chosen {
            auth = Auth(realm: realm, nonce: nonce,
                        key: STUNIntegrityKey(username: configuration.username, realm: realm,
                                              password: configuration.password, algorithm: chosen),
                        offered: offered, chosen: chosen)
        } else {
            auth?.nonce = nonce
            auth?.offered = offered
        }
        begin(tx.request, now: now, challenges: tx.challenges + 1)
    }

    /// RFC 8489 §9.2: a nonce starting with "obMatJos2" carries the 24-bit
    /// security feature set in 4 base64 characters; bit 0 (the most
    /// significant) is "Password algorithms".
    static func nonceAnnouncesPasswordAlgorithms(_ nonce: String) -> Bool {
        let cookie = "obMatJos2"
        guard nonce.hasPrefix(cookie) else { return false }
        let features = Array(nonce.utf8.dropFirst(cookie.utf8.count).prefix(4))
        guard let firstChar = features.first, let value = base64Value(firstChar) else { return false }
        return value & 0x20 != 0
    }

    private static func base64Value(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return c - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return c - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0") + 52
        case UInt8(ascii: "+"): return 62
        case UInt8(ascii: "/"): return 63
        default: return nil
        }
    }

    private mutating func succeeded(_ request: Request, _ view: STUNMessageView, now: Instant) {
        switch request {
        case .allocate:
            guard state == .allocating else { return }
            guard let relayed = try? view.first(.xorRelayedAddress)?.xorAddress(transactionID: view.transactionID) else {
                fail(.malformedResponse(.allocate))
                return
            }
            relayedAddress = relayed
            mappedAddress = view.xorMappedAddress
            state = .allocated
            scheduleRefresh(lifetime(view) ?? .seconds(600), now: now)
            events.append(.allocated(relayed: relayed, mapped: mappedAddress))
        case .refresh(let lifetime):
            if lifetime == 0 || state == .closing {
                finishClose()
                return
            }
            guard state == .allocated else { return }
            let granted = self.lifetime(view) ?? .seconds(600)
            scheduleRefresh(granted, now: now)
            events.append(.refreshed(lifetime: granted))
        case .createPermission(let ip):
            permissionInstalled(ip, now: now)
        case .channelBind(_, let peer):
            guard channels[peer] != nil else { return }
            channels[peer]?.bound = true
            channels[peer]?.inFlight = false
            let refresh = now + configuration.channelRefreshInterval
            channels[peer]?.refreshAt = refresh
            // A binding installs or refreshes the permission too (RFC 8656 §12.2).
            permissionInstalled(peer.ip, now: now, fromChannel: true)
        }
    }

    private func lifetime(_ view: STUNMessageView) -> Duration? {
        (try? view.first(.lifetime)?.uint32()).map { .seconds(Int64($0)) }
    }

    private mutating func scheduleRefresh(_ lifetime: Duration, now: Instant) {
        expiry = now + lifetime
        // Refresh a margin before expiry; short lifetimes at half-life.
        let lead = lifetime > configuration.refreshMargin * 2 ? lifetime - configuration.refreshMargin : lifetime / 2
        refreshAt = now + lead
    }

    private mutating func permissionInstalled(_ ip: IPAddress, now: Instant, fromChannel: Bool = false) {
        guard var permission = permissions[ip] else { return }
        permission.installed = true
        if !fromChannel {
            permission.inFlight = false
            permission.refreshAt = now + configuration.permissionRefreshInterval
        } else if permission.refreshAt == nil, !permission.inFlight {
            permission.refreshAt = now + configuration.permissionRefreshInterval
        }
        let queued = permission.queue
        permission.queue = []
        permissions[ip] = permission
        for (peer, payload) in queued { send(payload, to: peer, now: now) }
    }

    private mutating func transactionFailed(_ request: Request, _ error: TURNClientError, now: Instant) {
        switch request {
        case .allocate:
            if state == .allocating { fail(error) }
        case .refresh:
            if state == .closing {
                finishClose()
            } else if state == .allocated {
                fail(error)
            }
        case .createPermission(let ip):
            guard permissions[ip] != nil else { return }
            // Forget it so the next send starts over.
            let bound = channels.contains { $0.key.ip == ip && $0.value.bound }
            if bound {
                let refresh = now + configuration.permissionRefreshInterval
                permissions[ip]?.inFlight = false
                permissions[ip]?.refreshAt = refresh
            } else {
                permissions[ip] = nil
                events.append(.permissionFailed(ip, error))
            }
        case .channelBind(let number, let peer):
            if channels[peer]?.number == number {
                if case .rejected = error {
                    // Refused (e.g. 403 for this peer): keep the entry so
                    // later sends use Send indications instead of asking
                    // again for every datagram.
                    channels[peer]?.inFlight = false
                    channels[peer]?.bound = false
                    channels[peer]?.refreshAt = nil
                } else {
                    channels[peer] = nil
                    peerByChannel[number] = nil
                }
            }
            if let permission = permissions[peer.ip], !permission.installed, !permission.inFlight {
                permissions[peer.ip] = nil
                events.append(.permissionFailed(peer.ip, error))
            }
        }
    }

    private mutating func fail(_ error: TURNClientError) {
        state = .failed
        transactions.removeAll()
        permissions.removeAll()
        channels.removeAll()
        peerByChannel.removeAll()
        refreshAt = nil
        events.append(.failed(error))
    }

    private mutating func finishClose() {
        state = .closed
        transactions.removeAll()
        channels.removeAll()
        peerByChannel.removeAll()
        refreshAt = nil
        events.append(.closed)
    }
}
