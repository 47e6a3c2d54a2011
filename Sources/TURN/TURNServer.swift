import RTCBase
import STUN

/// A sans-IO TURN server (RFC 8656) with the long-term credential mechanism
/// of RFC 8489 §9.2. It opens no sockets and reads no clock: the IO edge
/// feeds it what arrives and the time, and performs the `TURNAction`s it
/// asks for.
///
/// Inputs:
/// - `handleClientPacket` for each datagram on the TURN port (UDP) or each
///   message a `TURNStreamFramer` cut from a TCP/TLS stream;
/// - `handlePeerPacket` for each datagram on a relay socket;
/// - `relayBound` / `relayBindFailed` answering `.bindRelay`;
/// - `handleConnectionClosed` when a TCP/TLS client goes away;
/// - `handleTimeout(now:)` when `pollTimeout()` is reached.
///
/// Fast paths for relayed data (no allocation per packet): `routeChannelData`
/// (client → peer) and `routePeerData` (peer → client). An edge that uses
/// them sends straight from its receive buffer; `handleClientPacket` and
/// `handlePeerPacket` do the same checks and queue copies instead.
///
/// Outputs: drain `pollAction()` until nil after every input, and re-arm a
/// timer for `pollTimeout()`.
public struct TURNServer: Sendable {
    public private(set) var configuration: TURNServerConfiguration
    /// Every refusal and drop by reason, plus volume.
    public private(set) var counters = TURNCounters()

    private var allocations: [TURNAllocationID: Allocation] = [:]
    private var byTuple: [FiveTuple: TURNAllocationID] = [:]
    private var byRelay: [TransportAddress: TURNAllocationID] = [:]
    private var perUser: [String: Int] = [:]
    private var usedPorts: Set<UInt16> = []
    private var nextID: UInt64 = 1
    private var actions: [TURNAction] = []
    private var actionHead = 0
    private var nextDeadline: Instant?
    private var rateBuckets: [IPAddress: TokenBucket] = [:]
    private var overflowBucket: TokenBucket?
    private var nextRatePrune: Instant?
    private var rng: SplitMix64
    private let nonceKey: STUNIntegrityKey
    private let bandwidthCap: BandwidthCap?
    private let bandwidthBurst: Double
    /// IPs of `serverPeers` that the peer policy would otherwise refuse:
    /// only the server peers' exact addresses are reachable there.
    private var serverPeerOnlyIPs: Set<IPAddress> = []

    /// - `seed`: seeds the generator for relay ports and Data indication
    ///   transaction ids; pass a random value outside tests (RFC 8656 §7.2
    ///   wants relay ports hard to guess).
    public init(configuration: TURNServerConfiguration, seed: UInt64) {
        self.configuration = configuration
        rng = SplitMix64(seed: seed)
        nonceKey = STUNIntegrityKey(key: configuration.nonceSecret)
        bandwidthBurst = max(1, Double(configuration.bandwidthLimit ?? 0) * configuration.bandwidthBurstSeconds)
        bandwidthCap = configuration.bandwidthLimit.map { BandwidthCap(rate: Double($0), burst: max(1, Double($0) * configuration.bandwidthBurstSeconds)) }
        serverPeerOnlyIPs = Set(configuration.serverPeers.map(\.ip.unmappedIPv4).filter { !isPeerAllowed($0) })
    }

    // MARK: - Credentials at run time

    /// Replaces the static users (e.g. after the edge reloads its config).
    /// Existing allocations keep running; their next request is checked
    /// against the new table.
    public mutating func updateUsers(_ users: [String: String]) {
        configuration.users = users
    }

    /// Rotates the REST API shared secret (nil disables REST credentials).
    public mutating func updateRESTSecret(_ secret: [UInt8]?) {
        configuration.restSecret = secret
    }

    // MARK: - Introspection

    /// Live allocations (bound or waiting for their relay socket).
    public var allocationCount: Int { allocations.count }

    /// The relayed address of the allocation on this 5-tuple, once bound.
    public func relayAddress(client: TransportAddress, transport: TURNTransport) -> TransportAddress? {
        guard let id = byTuple[FiveTuple(client: client, transport: transport)],
              let a = allocations[id], a.isActive else { return nil }
        return a.relay
    }

    // MARK: - Outputs

    /// The next thing the edge must do, or nil when there is nothing left.
    public mutating func pollAction() -> TURNAction? {
        guard actionHead < actions.count else {
            if !actions.isEmpty { actions.removeAll(keepingCapacity: true); actionHead = 0 }
            return nil
        }
        let action = actions[actionHead]
        actionHead += 1
        return action
    }

    /// When `handleTimeout(now:)` should next be called (nil: no timer needed).
    /// It may fire early; the engine then just re-arms.
    public func pollTimeout() -> Instant? {
        switch (nextDeadline, nextRatePrune) {
        case (let a?, let b?): return min(a, b)
        case (let a?, nil): return a
        case (nil, let b?): return b
        case (nil, nil): return nil
        }
    }

    private mutating func enqueue(_ action: TURNAction) { actions.append(action) }

    private mutating func noteDeadline(_ t: Instant) {
        if let d = nextDeadline, d <= t { return }
        nextDeadline = t
    }

    // MARK: - Client input

    /// A datagram from a client on the TURN port (UDP), or one whole message
    /// framed by `TURNStreamFramer` (TCP/TLS): a STUN message or a
    /// ChannelData message. Relayed ChannelData is copied into a
    /// `.sendToPeer`; use `routeChannelData` to avoid the copy.
    public mutating func handleClientPacket(_ bytes: UnsafeRawBufferPointer, from client: TransportAddress,
                                            transport: TURNTransport, now: Instant) {
        guard let first = bytes.first else {
            counters.malformedPackets += 1
            return
        }
        if first & 0xC0 == 0x40 {
            if let route = routeChannelData(bytes, from: client, transport: transport, now: now) {
                enqueue(.sendToPeer(Array(bytes[route.payload]), relay: route.relay, peer: route.peer))
            }
            return
        }
        guard first & 0xC0 == 0, bytes.count <= configuration.maxMessageSize else {
            counters.malformedPackets += 1
            if let connection = transport.connectionID { enqueue(.closeConnection(connection)) }
            return
        }
        let view: STUNMessageView
        do {
            view = try STUNMessageView(bytes)
            if view.fingerprintOffset != nil { try view.verifyFingerprint() }
        } catch {
            counters.malformedPackets += 1
            return
        }
        handleSTUN(view, from: client, transport: transport, now: now)
    }

    public mutating func handleClientPacket(_ bytes: [UInt8], from client: TransportAddress,
                                            transport: TURNTransport, now: Instant) {
        bytes.withUnsafeBytes { handleClientPacket($0, from: client, transport: transport, now: now) }
    }

    /// Fast path for ChannelData from a client (RFC 8656 §12.6): checks the
    /// allocation, the channel binding, the permission and the bandwidth cap,
    /// and says where to send `bytes[payload]` (from `relay` to `peer`).
    /// Nil means drop (the reason is counted). Allocates nothing.
    public mutating func routeChannelData(_ bytes: UnsafeRawBufferPointer, from client: TransportAddress,
                                          transport: TURNTransport, now: Instant) -> TURNChannelRoute? {
        let channel: UInt16, payload: Range<Int>
        do {
            (channel, payload) = try TURNChannelData.parse(bytes)
        } catch {
            if error == .badLength { counters.badChannelDataLength += 1 } else { counters.malformedPackets += 1 }
            return nil
        }
        guard let id = byTuple[FiveTuple(client: client, transport: transport)],
              let index = allocations.index(forKey: id) else {
            counters.noAllocation += 1
            return nil
        }
        // Mutate through `values[index]`: `allocations[id]?.check…()` was
        // measured to copy the allocation's tables (3 mallocs a packet).
        let (check, peer, relay) = allocations.values[index].checkChannelData(channel: channel, count: payload.count,
                                                                              now: now, cap: bandwidthCap)
        guard check == .ok else {
            countDrop(check)
            return nil
        }
        counters.packetsToPeers += 1
        counters.bytesToPeers += payload.count
        return TURNChannelRoute(relay: relay, peer: peer, payload: payload)
    }

    private mutating func countDrop(_ check: Allocation.RouteCheck) {
        switch check {
        case .ok: break
        case .expired: counters.noAllocation += 1
        case .unboundChannel: counters.unboundChannel += 1
        case .noPermission: counters.noPermission += 1
        case .overBandwidth: counters.bandwidthDrops += 1
        }
    }

    /// A TCP/TLS connection closed: its allocations go with it (RFC 8656 §5).
    public mutating func handleConnectionClosed(_ connection: TURNConnectionID, now: Instant) {
        let ids = allocations.values.filter { $0.tuple.transport.connectionID == connection }.map(\.id)
        for id in ids { deleteAllocation(id, expired: false) }
    }

    // MARK: - Peer input

    /// Fast path for a datagram from `peer` on the relay socket whose public
    /// address is `relay` (RFC 8656 §11.3/§12.6). Nil means drop (counted).
    /// With a channel it allocates nothing; without one it builds a Data
    /// indication and queues it.
    public mutating func routePeerData(_ bytes: UnsafeRawBufferPointer, relay: TransportAddress,
                                       from peer: TransportAddress, now: Instant) -> TURNPeerRoute? {
        guard let id = byRelay[relay], let index = allocations.index(forKey: id) else {
            counters.noAllocation += 1
            return nil
        }
        if !serverPeerOnlyIPs.isEmpty, serverPeerOnlyIPs.contains(peer.ip.unmappedIPv4),
           !configuration.serverPeers.contains(peer) {
            // A permission for a server peer's IP admits that peer alone.
            counters.forbiddenPeerDrops += 1
            return nil
        }
        let (check, channel, tuple) = allocations.values[index].checkPeerData(peer: peer, count: bytes.count, now: now,
                                                                              cap: bandwidthCap)
        guard check == .ok else {
            countDrop(check)
            return nil
        }
        if let channel, bytes.count <= 0xFFFF {
            let padding = tuple.transport.isStream ? (4 - bytes.count % 4) % 4 : 0
            counters.packetsToClients += 1
            counters.bytesToClients += bytes.count
            return .channelData(channel: channel, client: tuple.client, transport: tuple.transport, padding: padding)
        }
        // Slow path: a Data indication (RFC 8656 §11.5), no integrity.
        let tid = STUNTransactionID(high: UInt32(truncatingIfNeeded: rng.next()), low: rng.next())
        let message = STUNMessage(type: STUNMessageType(method: .data, messageClass: .indication), transactionID: tid,
                                  attributes: [.xorPeerAddress(peer), .data(Array(bytes))])
        guard let encoded = try? message.encoded() else {
            counters.malformedPackets += 1
            return nil
        }
        counters.packetsToClients += 1
        counters.bytesToClients += bytes.count
        enqueue(.sendToClient(encoded, client: tuple.client, transport: tuple.transport))
        return .queued
    }

    /// Like `routePeerData`, but ChannelData is also built and queued as a
    /// `.sendToClient` (a copy), so every outcome is an action.
    public mutating func handlePeerPacket(_ bytes: UnsafeRawBufferPointer, relay: TransportAddress,
                                          from peer: TransportAddress, now: Instant) {
        guard case .channelData(let channel, let client, let transport, let padding)? =
                routePeerData(bytes, relay: relay, from: peer, now: now) else { return }
        var out = TURNChannelData.encode(channel: channel, payload: bytes, padded: false)
        out.append(contentsOf: repeatElement(0, count: padding))
        enqueue(.sendToClient(out, client: client, transport: transport))
    }

    public mutating func handlePeerPacket(_ bytes: [UInt8], relay: TransportAddress, from peer: TransportAddress, now: Instant) {
        bytes.withUnsafeBytes { handlePeerPacket($0, relay: relay, from: peer, now: now) }
    }

    private mutating func consumeBandwidth(_ id: TURNAllocationID, _ count: Int, now: Instant) -> Bool {
        guard let cap = bandwidthCap else { return true }
        guard let index = allocations.index(forKey: id) else { return false }
        let ok = allocations.values[index].bucket.take(Double(count), rate: cap.rate, burst: cap.burst, now: now)
        if !ok { counters.bandwidthDrops += 1 }
        return ok
    }

    // MARK: - Relay socket handshake

    /// The edge bound the relay socket asked for by `.bindRelay(_, id:)`: the
    /// Allocate is answered now. Returns false if the allocation no longer
    /// exists (the edge should close the socket it just bound).
    @discardableResult
    public mutating func relayBound(_ id: TURNAllocationID, now: Instant) -> Bool {
        guard let a = allocations[id] else { return false }
        guard let pending = a.pending else { return true }  // a repeated confirmation
        let expiry = now + pending.lifetime
        var attributes: [STUNAttribute] = [
            .xorRelayedAddress(a.relay),
            .lifetime(seconds: UInt32(clamping: pending.lifetime.components.seconds)),
            .xorMappedAddress(a.tuple.client),
        ]
        if pending.addressErrorV6 {
            attributes.append(.addressErrorCode(family: .ipv6, error: .addressFamilyNotSupported))
        }
        let response = encodeResponse(method: .allocate, transactionID: pending.transactionID, error: nil,
                                      attributes: attributes, auth: pending.auth)
        allocations[id]?.pending = nil
        allocations[id]?.expiry = expiry
        allocations[id]?.successResponse = response
        allocations[id]?.bucket = TokenBucket(burst: bandwidthBurst, now: now)
        byRelay[a.relay] = id
        counters.allocationsCreated += 1
        noteDeadline(expiry)
        if let response { enqueue(.sendToClient(response, client: a.tuple.client, transport: a.tuple.transport)) }
        return true
    }

    /// The edge could not bind the port asked for: the engine asks for
    /// another one, or answers 508 Insufficient Capacity after
    /// `maxRelayBindAttempts`.
    public mutating func relayBindFailed(_ id: TURNAllocationID, now: Instant) {
        guard let a = allocations[id], var pending = a.pending else { return }
        usedPorts.remove(a.relay.port)
        pending.triedPorts.append(a.relay.port)
        if pending.triedPorts.count < configuration.maxRelayBindAttempts,
           let port = pickPort(even: pending.wantEvenPort, avoiding: pending.triedPorts) {
            usedPorts.insert(port)
            let relay = TransportAddress(ip: a.relay.ip, port: port)
            allocations[id]?.relay = relay
            allocations[id]?.pending = pending
            enqueue(.bindRelay(relay, id: id))
            return
        }
        removeAllocation(id, closeRelay: false)
        counters.insufficientCapacity508 += 1
        if let bytes = encodeResponse(method: .allocate, transactionID: pending.transactionID, error: .insufficientCapacity,
                                      attributes: [], auth: pending.auth) {
            enqueue(.sendToClient(bytes, client: a.tuple.client, transport: a.tuple.transport))
        }
    }

    // MARK: - Timers

    /// Expires allocations (RFC 8656 §6), permissions (§9), channel bindings
    /// and their reuse hold-off (§12), and forgets idle rate-limit buckets.
    public mutating func handleTimeout(now: Instant) {
        if let prune = nextRatePrune, now >= prune { pruneRateBuckets(now: now) }
        guard let deadline = nextDeadline, now >= deadline else { return }
        nextDeadline = nil
        let reuse = configuration.channelReuseDelay
        var dead: [TURNAllocationID] = []
        var unbound: [Allocation] = []
        for id in Array(allocations.keys) {
            guard var a = allocations[id] else { continue }
            if now >= a.expiry {
                if a.isActive { dead.append(id) } else { unbound.append(a) }
                continue
            }
            noteDeadline(a.expiry)
            var changed = false
            for (ip, expiry) in a.permissions {
                if now >= expiry { a.permissions[ip] = nil; changed = true } else { noteDeadline(expiry) }
            }
            for (number, binding) in a.channels {
                if now >= binding.expiry + reuse {
                    a.channels[number] = nil
                    if a.channelByPeer[binding.peer] == number { a.channelByPeer[binding.peer] = nil }
                    changed = true
                } else if now >= binding.expiry {
                    noteDeadline(binding.expiry + reuse)
                } else {
                    noteDeadline(binding.expiry)
                }
            }
            if changed { allocations[id] = a }
        }
        for id in dead { deleteAllocation(id, expired: true) }
        for a in unbound {
            // The edge never confirmed the relay socket.
            removeAllocation(a.id, closeRelay: true)
            counters.insufficientCapacity508 += 1
            if let pending = a.pending,
               let bytes = encodeResponse(method: .allocate, transactionID: pending.transactionID, error: .insufficientCapacity,
                                          attributes: [], auth: pending.auth) {
                enqueue(.sendToClient(bytes, client: a.tuple.client, transport: a.tuple.transport))
            }
        }
        // Sweep at most once a second: expiry may be up to 1 s late, and a
        // crowd of deadlines costs one pass, not one pass each.
        if let next = nextDeadline, next < now + .seconds(1) { nextDeadline = now + .seconds(1) }
    }

    // MARK: - STUN dispatch

    private mutating func handleSTUN(_ view: STUNMessageView, from client: TransportAddress,
                                     transport: TURNTransport, now: Instant) {
        switch view.type.messageClass {
        case .request:
            switch view.type.method {
            case .binding:
                handleBinding(view, from: client, transport: transport, now: now)
            case .allocate, .refresh, .createPermission, .channelBind:
                guard let auth = authenticate(view, from: client, transport: transport, now: now) else { return }
                let unknown = view.unknownComprehensionRequired(isKnown: TURNServer.isKnownAttribute)
                if !unknown.isEmpty {
                    // RFC 8489 §6.3.1.1.
                    reply(view, client, transport, error: .unknownAttribute, attributes: [.unknownAttributes(unknown)], auth: auth)
                    return
                }
                switch view.type.method {
                case .allocate: handleAllocate(view, client, transport, auth, now)
                case .refresh: handleRefresh(view, client, transport, auth, now)
                case .createPermission: handleCreatePermission(view, client, transport, auth, now)
                default: handleChannelBind(view, client, transport, auth, now)
                }
            default:
                // RFC 8489 §6.3.1: an unknown method in a request is a 400.
                guard allowUnauthenticated(client.ip, now: now) else { return }
                reply(view, client, transport, error: .badRequest, attributes: [], auth: nil)
            }
        case .indication:
            switch view.type.method {
            case .send: handleSend(view, client, transport, now)
            case .binding: break  // keepalive (RFC 8489 §6.3.2), nothing to do
            default: counters.unexpectedMessages += 1
            }
        case .successResponse, .errorResponse:
            counters.unexpectedMessages += 1
        }
    }

    /// Comprehension-required attributes a TURN server understands
    /// (RFC 8489 §18.3, RFC 8656 §18). ICE's attributes are not among them.
    static func isKnownAttribute(_ type: STUNAttributeType) -> Bool {
        switch type {
        case .mappedAddress, .username, .messageIntegrity, .errorCode, .unknownAttributes, .channelNumber,
             .lifetime, .xorPeerAddress, .data, .realm, .nonce, .xorRelayedAddress, .requestedAddressFamily,
             .evenPort, .requestedTransport, .dontFragment, .messageIntegritySHA256, .passwordAlgorithm,
             .userhash, .xorMappedAddress, .reservationToken:
            return true
        default:
            return false
        }
    }

    // MARK: - Binding

    /// STUN Binding on the TURN port (RFC 8489 §6.3.1): no authentication,
    /// so the answer is rate-limited per source IP and kept minimal (no
    /// SOFTWARE; FINGERPRINT only if the request had one) to limit reflection.
    private mutating func handleBinding(_ view: STUNMessageView, from client: TransportAddress,
                                        transport: TURNTransport, now: Instant) {
        guard allowUnauthenticated(client.ip, now: now) else { return }
        let unknown = view.unknownComprehensionRequired(isKnown: TURNServer.isKnownAttribute)
        if !unknown.isEmpty {
            reply(view, client, transport, error: .unknownAttribute, attributes: [.unknownAttributes(unknown)], auth: nil)
            return
        }
        var buffer = [UInt8](repeating: 0, count: TURNServer.bindingResponseCapacity)
        guard let count = buffer.withUnsafeMutableBytes({ TURNServer.writeBindingSuccess(view, client, into: $0) }) else { return }
        counters.bindingResponses += 1
        buffer.removeSubrange(count...)
        enqueue(.sendToClient(buffer, client: client, transport: transport))
    }

    /// Room a Binding success response needs: header, XOR-MAPPED-ADDRESS
    /// (IPv6), FINGERPRINT.
    public static let bindingResponseCapacity = stunHeaderSize + 24 + 8

    private static func writeBindingSuccess(_ view: STUNMessageView, _ client: TransportAddress,
                                            into out: UnsafeMutableRawBufferPointer) -> Int? {
        do throws(STUNError) {
            var w = try STUNMessageWriter(into: out, type: .bindingSuccess, transactionID: view.transactionID)
            try w.appendAddress(.xorMappedAddress, client)
            if view.fingerprintOffset != nil { try w.appendFingerprint() }
            return w.count
        } catch {
            return nil
        }
    }

    /// Fast path for the commonest request on a TURN port, a plain STUN
    /// Binding request (ICE connectivity checks, NAT discovery): answers
    /// straight into `out` (at least `bindingResponseCapacity` bytes), with
    /// the same checks and counters as `handleClientPacket`, and allocates
    /// nothing. `.notHandled`: anything else (including a Binding request
    /// that needs an error answer) — pass it to `handleClientPacket`.
    public mutating func answerBinding(_ bytes: UnsafeRawBufferPointer, from client: TransportAddress, now: Instant,
                                       into out: UnsafeMutableRawBufferPointer) -> TURNBindingAnswer {
        // Message type 0x0001 (Binding request) in the first two bytes.
        guard bytes.count >= stunHeaderSize, bytes.count <= configuration.maxMessageSize,
              bytes[0] == 0, bytes[1] == 1 else { return .notHandled }
        let view: STUNMessageView
        do {
            view = try STUNMessageView(bytes)
            if view.fingerprintOffset != nil { try view.verifyFingerprint() }
        } catch {
            return .notHandled
        }
        guard view.unknownComprehensionRequired(isKnown: TURNServer.isKnownAttribute).isEmpty else { return .notHandled }
        guard allowUnauthenticated(client.ip, now: now) else { return .dropped }
        guard let count = TURNServer.writeBindingSuccess(view, client, into: out) else { return .notHandled }
        counters.bindingResponses += 1
        return .answered(count)
    }

    /// One token from `ip`'s bucket (or the shared overflow bucket when the
    /// table is full); false means drop silently (counted).
    private mutating func allowUnauthenticated(_ ip: IPAddress, now: Instant) -> Bool {
        guard let rate = configuration.unauthenticatedRate else { return true }
        let burst = configuration.unauthenticatedBurst
        let ok: Bool
        if rateBuckets[ip] != nil {
            ok = rateBuckets[ip]?.take(1, rate: rate, burst: burst, now: now) ?? false
        } else if rateBuckets.count < configuration.rateLimiterCapacity {
            var bucket = TokenBucket(burst: burst, now: now)
            ok = bucket.take(1, rate: rate, burst: burst, now: now)
            rateBuckets[ip] = bucket
            if nextRatePrune == nil { nextRatePrune = now + .seconds(10) }
        } else {
            // Shared by every source beyond capacity; a bigger budget, since
            // honest clients may land here during a spoofed flood.
            if overflowBucket == nil { overflowBucket = TokenBucket(burst: burst * 10, now: now) }
            ok = overflowBucket?.take(1, rate: rate * 10, burst: burst * 10, now: now) ?? false
        }
        if !ok { counters.rateLimited += 1 }
        return ok
    }

    private mutating func pruneRateBuckets(now: Instant) {
        guard let rate = configuration.unauthenticatedRate else {
            rateBuckets = [:]
            nextRatePrune = nil
            return
        }
        let burst = configuration.unauthenticatedBurst
        rateBuckets = rateBuckets.filter { !$0.value.isFull(rate: rate, burst: burst, now: now) }
        nextRatePrune = rateBuckets.isEmpty ? nil : now + .seconds(10)
    }

    // MARK: - Authentication (RFC 8489 §9.2.4)

    /// The PASSWORD-ALGORITHMS value this server offers: MD5 then SHA-256,
    /// no parameters (RFC 8489 §14.11).
    static let offeredAlgorithms: [UInt8] = [0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00]
    /// RFC 8489 §9.2: "obMatJos2" then the 24-bit security feature set in
    /// base64; bit 0 (the most significant) is "Password algorithms".
    static let nonceCookie = "obMatJos2gAAA"

    private func makeNonce(for client: TransportAddress, now: Instant) -> String {
        let expiry = UInt64(bitPattern: (now + configuration.nonceLifetime).nanoseconds)
        let expiryHex = hex16(expiry)
        return TURNServer.nonceCookie + expiryHex + nonceMAC(expiryHex, client)
    }

    private func nonceMAC(_ expiryHex: String, _ client: TransportAddress) -> String {
        // Bound to the client's IP so a nonce cannot be handed around.
        let mac = nonceKey.hmacSHA1(Array((expiryHex + "|" + client.ip.description).utf8))
        var v: UInt64 = 0
        for i in 0..<8 { v = v << 8 | UInt64(mac[i]) }
        return hex16(v)
    }

    private enum NonceCheck { case valid, stale, foreign }

    private func checkNonce(_ nonce: UnsafeRawBufferPointer, client: TransportAddress, now: Instant) -> NonceCheck {
        let cookie = TURNServer.nonceCookie.utf8
        guard nonce.count == cookie.count + 32, let text = String(validating: nonce, as: UTF8.self),
              text.hasPrefix(TURNServer.nonceCookie) else { return .foreign }
        let body = text.dropFirst(cookie.count)
        let expiryHex = String(body.prefix(16))
        guard let expiry = UInt64(expiryHex, radix: 16), nonceMAC(expiryHex, client) == body.suffix(16) else { return .foreign }
        return now.nanoseconds < Int64(bitPattern: expiry) ? .valid : .stale
    }

    private func challengeAttributes(client: TransportAddress, now: Instant) -> [STUNAttribute] {
        [.realm(configuration.realm), .nonce(makeNonce(for: client, now: now)),
         .passwordAlgorithms([STUNPasswordAlgorithm(.md5), STUNPasswordAlgorithm(.sha256)])]
    }

    /// The password of `username`: a static user, or a REST credential that
    /// has not expired. `.expired` and `.unknown` both become 401.
    private enum PasswordLookup { case found(String), unknown, expired }

    private func lookupPassword(_ username: String, now: Instant) -> PasswordLookup {
        if let password = configuration.users[username] { return .found(password) }
        if let secret = configuration.restSecret, let expiry = TURNRESTCredential.expiry(ofUsername: username) {
            guard expiry >= configuration.wallClockSeconds(now) else { return .expired }
            return .found(TURNRESTCredential.password(username: username, secret: secret))
        }
        return .unknown
    }

    /// Runs the checks of RFC 8489 §9.2.4 in order and answers refusals
    /// itself (401/438/400, rate-limited since they are unauthenticated).
    private mutating func authenticate(_ view: STUNMessageView, from client: TransportAddress,
                                       transport: TURNTransport, now: Instant) -> AuthContext? {
        let hasMI = view.messageIntegrityOffset != nil, hasMI256 = view.messageIntegritySHA256Offset != nil
        guard hasMI || hasMI256 else {
            counters.unauthenticated401 += 1
            challenge(view, client, transport, .unauthorized, now)
            return nil
        }
        guard let usernameBytes = view.usernameBytes, let username = String(validating: usernameBytes, as: UTF8.self),
              view.contains(.realm), let nonce = view.first(.nonce)?.value else {
            refuseUnauthenticated(view, client, transport, .badRequest, now)
            return nil
        }
        // Password algorithm negotiation (§9.2.4 step on PASSWORD-ALGORITHMS):
        // both attributes or neither; the list must be exactly what we offered
        // (bid-down protection) and the choice one of its entries.
        var algorithm = STUNPasswordAlgorithmKind.md5
        let offered = view.first(.passwordAlgorithms), chosen = view.first(.passwordAlgorithm)
        if offered != nil || chosen != nil {
            guard let offered, let chosen, TURNServer.offeredAlgorithms.withUnsafeBytes({ offered.valueEquals($0) }),
                  chosen.value.count == 4, chosen.value[2] == 0, chosen.value[3] == 0,
                  let kind = STUNPasswordAlgorithmKind(rawValue: UInt16(chosen.value[0]) << 8 | UInt16(chosen.value[1])) else {
                refuseUnauthenticated(view, client, transport, .badRequest, now)
                return nil
            }
            algorithm = kind
        }
        switch checkNonce(nonce, client: client, now: now) {
        case .valid: break
        case .stale, .foreign:
            // A nonce we did not issue (another process, another client IP)
            // is treated as stale: the client retries with the fresh one.
            guard allowUnauthenticated(client.ip, now: now) else { return nil }
            reply(view, client, transport, error: .staleNonce, attributes: challengeAttributes(client: client, now: now), auth: nil)
            return nil
        }
        let password: String
        switch lookupPassword(username, now: now) {
        case .found(let p): password = p
        case .unknown, .expired:
            counters.unknownUser401 += 1
            challenge(view, client, transport, .unauthorized, now)
            return nil
        }
        let key = STUNIntegrityKey(username: username, realm: configuration.realm, password: password, algorithm: algorithm)
        do {
            // §9.2.4: MESSAGE-INTEGRITY-SHA256 wins when both are present.
            if hasMI256 { try view.verifyMessageIntegritySHA256(key: key) } else { try view.verifyMessageIntegrity(key: key) }
        } catch {
            counters.badIntegrity401 += 1
            challenge(view, client, transport, .unauthorized, now)
            return nil
        }
        return AuthContext(username: username, key: key, useSHA256: hasMI256, fingerprint: view.fingerprintOffset != nil)
    }

    private mutating func challenge(_ view: STUNMessageView, _ client: TransportAddress, _ transport: TURNTransport,
                                    _ error: STUNErrorCode, _ now: Instant) {
        guard allowUnauthenticated(client.ip, now: now) else { return }
        reply(view, client, transport, error: error, attributes: challengeAttributes(client: client, now: now), auth: nil)
    }

    private mutating func refuseUnauthenticated(_ view: STUNMessageView, _ client: TransportAddress, _ transport: TURNTransport,
                                                _ error: STUNErrorCode, _ now: Instant) {
        guard allowUnauthenticated(client.ip, now: now) else { return }
        reply(view, client, transport, error: error, attributes: [], auth: nil)
    }

    // MARK: - Responses

    private mutating func reply(_ view: STUNMessageView, _ client: TransportAddress, _ transport: TURNTransport,
                                error: STUNErrorCode?, attributes: [STUNAttribute], auth: AuthContext?) {
        if let error { counters.countError(error.code) }
        // Answers echo the request's use of FINGERPRINT, signed or not.
        guard let bytes = encodeResponse(method: view.type.method, transactionID: view.transactionID, error: error,
                                         attributes: attributes, auth: auth,
                                         fingerprint: view.fingerprintOffset != nil) else { return }
        enqueue(.sendToClient(bytes, client: client, transport: transport))
    }

    private func encodeResponse(method: STUNMethod, transactionID: STUNTransactionID, error: STUNErrorCode?,
                                attributes: [STUNAttribute], auth: AuthContext?, fingerprint: Bool = false) -> [UInt8]? {
        let type = STUNMessageType(method: method, messageClass: error == nil ? .successResponse : .errorResponse)
        var attrs: [STUNAttribute] = []
        if let error { attrs.append(.errorCode(error)) }
        attrs.append(contentsOf: attributes)
        let message = STUNMessage(type: type, transactionID: transactionID, attributes: attrs)
        let sha = auth?.useSHA256 ?? false
        return try? message.encoded(integrity: sha ? nil : auth?.key, integritySHA256: sha ? auth?.key : nil,
                                    fingerprint: fingerprint || (auth?.fingerprint ?? false))
    }

    // MARK: - Allocate (RFC 8656 §7.2)

    private mutating func handleAllocate(_ view: STUNMessageView, _ client: TransportAddress, _ transport: TURNTransport,
                                         _ auth: AuthContext, _ now: Instant) {
        let tuple = FiveTuple(client: client, transport: transport)
        if let id = byTuple[tuple], let existing = allocations[id] {
            if existing.createTransaction == view.transactionID {
                // A retransmission: replay the answer, or wait for the bind.
                if let response = existing.successResponse { enqueue(.sendToClient(response, client: client, transport: transport)) }
                return
            }
            reply(view, client, transport, error: .allocationMismatch, attributes: [], auth: auth)
            return
        }
        guard let transportAttr = view.first(.requestedTransport), transportAttr.value.count == 4 else {
            reply(view, client, transport, error: .badRequest, attributes: [], auth: auth)
            return
        }
        guard transportAttr.value[0] == 17 else {
            reply(view, client, transport, error: .unsupportedTransportProtocol, attributes: [], auth: auth)
            return
        }
        let evenPort = view.first(.evenPort)
        let requestedFamily = view.first(.requestedAddressFamily)
        let additionalFamily = view.first(.additionalAddressFamily)
        if view.contains(.reservationToken) {
            // This server never hands out reservation tokens (it refuses
            // EVEN-PORT with R set), so no token can be valid: 508.
            let conflict = evenPort != nil || requestedFamily != nil
            reply(view, client, transport, error: conflict ? .badRequest : .insufficientCapacity, attributes: [], auth: auth)
            return
        }
        var wantEven = false
        if let evenPort {
            guard evenPort.value.count == 1, additionalFamily == nil else {
                reply(view, client, transport, error: .badRequest, attributes: [], auth: auth)
                return
            }
            // R bit: reserve the next port too. Not supported → 508 (§7.2).
            if evenPort.value[0] & 0x80 != 0 {
                reply(view, client, transport, error: .insufficientCapacity, attributes: [], auth: auth)
                return
            }
            wantEven = true
        }
        if requestedFamily != nil, additionalFamily != nil {
            reply(view, client, transport, error: .badRequest, attributes: [], auth: auth)
            return
        }
        var relayIP = configuration.publicIP
        if let requestedFamily {
            guard requestedFamily.value.count == 4 else {
                reply(view, client, transport, error: .badRequest, attributes: [], auth: auth)
                return
            }
            switch requestedFamily.value[0] {
            case STUNAddressFamily.ipv4.rawValue:
                break
            case STUNAddressFamily.ipv6.rawValue:
                guard let v6 = configuration.publicIPv6 else {
                    reply(view, client, transport, error: .addressFamilyNotSupported, attributes: [], auth: auth)
                    return
                }
                relayIP = v6
            default:
                reply(view, client, transport, error: .addressFamilyNotSupported, attributes: [], auth: auth)
                return
            }
        }
        var addressErrorV6 = false
        if let additionalFamily {
            // Only IPv6 may be asked for in addition (RFC 8656 §7.2); dual
            // allocations are not offered, so report it per family.
            guard additionalFamily.value.count == 4, additionalFamily.value[0] == STUNAddressFamily.ipv6.rawValue else {
                reply(view, client, transport, error: .badRequest, attributes: [], auth: auth)
                return
            }
            addressErrorV6 = true
        }
        guard (perUser[auth.username] ?? 0) < configuration.maxAllocationsPerUser else {
            reply(view, client, transport, error: .allocationQuotaReached, attributes: [], auth: auth)
            return
        }
        guard allocations.count < configuration.maxAllocations,
              let port = pickPort(even: wantEven, avoiding: []) else {
            reply(view, client, transport, error: .insufficientCapacity, attributes: [], auth: auth)
            return
        }
        let id = TURNAllocationID(rawValue: nextID)
        nextID += 1
        let relay = TransportAddress(ip: relayIP, port: port)
        let pending = PendingBind(auth: auth, transactionID: view.transactionID, lifetime: requestedLifetime(view),
                                  wantEvenPort: wantEven, addressErrorV6: addressErrorV6)
        allocations[id] = Allocation(id: id, tuple: tuple, username: auth.username, relay: relay, pending: pending,
                                     createTransaction: view.transactionID, successResponse: nil,
                                     expiry: now + TURNServer.relayBindTimeout,
                                     bucket: TokenBucket(burst: bandwidthBurst, now: now))
        byTuple[tuple] = id
        perUser[auth.username, default: 0] += 1
        usedPorts.insert(port)
        noteDeadline(now + TURNServer.relayBindTimeout)
        enqueue(.bindRelay(relay, id: id))
    }

    /// How long the edge may take to confirm a relay socket; past it the
    /// Allocate is answered 508 (a client retransmits for about 39.5 s,
    /// RFC 8489 §6.2.1, so it still hears the answer).
    static let relayBindTimeout: Duration = .seconds(30)

    /// RFC 8656 §7.2/§7.3: min(requested, maximum), but never below the
    /// default; the default when LIFETIME is absent.
    private func requestedLifetime(_ view: STUNMessageView) -> Duration {
        guard let requested = try? view.first(.lifetime)?.uint32() else { return configuration.defaultLifetime }
        let desired = min(Duration.seconds(Int64(requested)), configuration.maxLifetime)
        return max(desired, configuration.defaultLifetime)
    }

    /// A free port of the range, starting at a random point (RFC 8656 §7.2).
    private mutating func pickPort(even: Bool, avoiding: [UInt16]) -> UInt16? {
        let low = Int(configuration.relayPorts.lowerBound), high = Int(configuration.relayPorts.upperBound)
        let span = high - low + 1
        let startOffset = Int(rng.next() % UInt64(span))
        for step in 0..<span {
            let port = UInt16(low + (startOffset + step) % span)
            if even && port % 2 != 0 { continue }
            if usedPorts.contains(port) || avoiding.contains(port) { continue }
            return port
        }
        return nil
    }

    /// The active allocation on this 5-tuple, checked against the
    /// authenticated user; answers 437/441 itself when there is none.
    private mutating func existingAllocation(_ view: STUNMessageView, _ client: TransportAddress, _ transport: TURNTransport,
                                             _ auth: AuthContext, _ now: Instant) -> TURNAllocationID? {
        guard let id = byTuple[FiveTuple(client: client, transport: transport)], let a = allocations[id],
              a.isActive, now < a.expiry else {
            reply(view, client, transport, error: .allocationMismatch, attributes: [], auth: auth)
            return nil
        }
        // RFC 8656 §5: later requests must use the credentials that made it.
        guard a.username == auth.username else {
            reply(view, client, transport, error: .wrongCredentials, attributes: [], auth: auth)
            return nil
        }
        return id
    }

    // MARK: - Refresh (RFC 8656 §7.3)

    private mutating func handleRefresh(_ view: STUNMessageView, _ client: TransportAddress, _ transport: TURNTransport,
                                        _ auth: AuthContext, _ now: Instant) {
        guard let id = existingAllocation(view, client, transport, auth, now), let a = allocations[id] else { return }
        if let family = view.first(.requestedAddressFamily) {
            let relayFamily = a.relay.ip.isIPv4 ? STUNAddressFamily.ipv4.rawValue : STUNAddressFamily.ipv6.rawValue
            guard family.value.count == 4, family.value[0] == relayFamily else {
                reply(view, client, transport, error: .peerAddressFamilyMismatch, attributes: [], auth: auth)
                return
            }
        }
        if let requested = try? view.first(.lifetime)?.uint32(), requested == 0 {
            deleteAllocation(id, expired: false)
            reply(view, client, transport, error: nil, attributes: [.lifetime(seconds: 0)], auth: auth)
            return
        }
        let lifetime = requestedLifetime(view)
        allocations[id]?.expiry = now + lifetime
        noteDeadline(now + lifetime)
        reply(view, client, transport, error: nil,
              attributes: [.lifetime(seconds: UInt32(clamping: lifetime.components.seconds))], auth: auth)
    }

    // MARK: - Permissions and channels (RFC 8656 §9, §10, §12)

    /// Refuses peers the server must not reach on clients' behalf: loopback,
    /// private, link-local, unspecified, multicast and broadcast addresses
    /// (RFC 8656 §21.3 leaves the policy to the server; these ranges would
    /// let a client probe the server's own network).
    public func isPeerAllowed(_ ip: IPAddress) -> Bool {
        let ip = ip.unmappedIPv4
        if configuration.deniedPeers.contains(where: { $0.contains(ip) }) { return false }
        if configuration.allowedPeers.contains(where: { $0.contains(ip) }) { return true }
        if ip.isLoopback { return configuration.allowLoopbackPeers }
        return !ip.isSpecialPurposeForRelay
    }

    /// Whether a relay may exchange data with `peer`: an allowed IP, or
    /// exactly one of the server's own `serverPeers`.
    public func isPeerAllowed(_ peer: TransportAddress) -> Bool {
        if !configuration.serverPeers.isEmpty, serverPeerOnlyIPs.contains(peer.ip.unmappedIPv4) {
            return configuration.serverPeers.contains(peer)
        }
        return isPeerAllowed(peer.ip)
    }

    /// A permission names an IP (RFC 8656 §9), but clients put the peer's
    /// whole address in XOR-PEER-ADDRESS: one for a server peer is installed
    /// when the address is exactly that peer, and data then flows only with
    /// the server peers themselves.
    private func isPermissionAllowed(_ peer: TransportAddress) -> Bool {
        isPeerAllowed(peer.ip) || configuration.serverPeers.contains(peer)
    }

    /// Nil if the client may reach `peer` from `relay`, else the error (443/403).
    private func checkPeer(_ peer: TransportAddress, relay: TransportAddress) -> STUNErrorCode? {
        guard peer.ip.isIPv4 == relay.ip.isIPv4 else { return .peerAddressFamilyMismatch }
        guard isPeerAllowed(peer) else { return .forbidden }
        return nil
    }

    /// As `checkPeer`, for a permission: only the IP counts.
    private func checkPermission(_ peer: TransportAddress, relay: TransportAddress) -> STUNErrorCode? {
        guard peer.ip.isIPv4 == relay.ip.isIPv4 else { return .peerAddressFamilyMismatch }
        guard isPermissionAllowed(peer) else { return .forbidden }
        return nil
    }

    private mutating func handleCreatePermission(_ view: STUNMessageView, _ client: TransportAddress, _ transport: TURNTransport,
                                                 _ auth: AuthContext, _ now: Instant) {
        guard let id = existingAllocation(view, client, transport, auth, now), let a = allocations[id] else { return }
        var peers: [IPAddress] = []
        for attribute in view.attributes where attribute.type == .xorPeerAddress {
            guard let peer = try? attribute.xorAddress(transactionID: view.transactionID) else {
                reply(view, client, transport, error: .badRequest, attributes: [], auth: auth)
                return
            }
            if let error = checkPermission(peer, relay: a.relay) {
                // All or nothing (RFC 8656 §10.2).
                reply(view, client, transport, error: error, attributes: [], auth: auth)
                return
            }
            peers.append(peer.ip)
        }
        guard !peers.isEmpty else {
            reply(view, client, transport, error: .badRequest, attributes: [], auth: auth)
            return
        }
        let expiry = now + configuration.permissionLifetime
        for ip in peers { allocations[id]?.permissions[ip] = expiry }
        noteDeadline(expiry)
        reply(view, client, transport, error: nil, attributes: [], auth: auth)
    }

    private mutating func handleChannelBind(_ view: STUNMessageView, _ client: TransportAddress, _ transport: TURNTransport,
                                            _ auth: AuthContext, _ now: Instant) {
        guard let id = existingAllocation(view, client, transport, auth, now), let a = allocations[id] else { return }
        guard let numberAttr = view.first(.channelNumber), numberAttr.value.count == 4,
              case let number = UInt16(numberAttr.value[0]) << 8 | UInt16(numberAttr.value[1]),
              TURNChannelData.channelRange.contains(number),
              let peerAttr = view.first(.xorPeerAddress),
              let peer = try? peerAttr.xorAddress(transactionID: view.transactionID) else {
            reply(view, client, transport, error: .badRequest, attributes: [], auth: auth)
            return
        }
        if let error = checkPeer(peer, relay: a.relay) {
            reply(view, client, transport, error: error, attributes: [], auth: auth)
            return
        }
        // RFC 8656 §11.2: the number must not be bound (or held after
        // expiry) to another peer, nor the peer to another number.
        if let existing = a.channels[number], existing.peer != peer {
            reply(view, client, transport, error: .badRequest, attributes: [], auth: auth)
            return
        }
        if let other = a.channelByPeer[peer], other != number {
            reply(view, client, transport, error: .badRequest, attributes: [], auth: auth)
            return
        }
        let expiry = now + configuration.channelLifetime
        let permissionExpiry = now + configuration.permissionLifetime
        allocations[id]?.channels[number] = ChannelBinding(peer: peer, expiry: expiry)
        allocations[id]?.channelByPeer[peer] = number
        // §12.2: binding a channel installs or refreshes the permission too.
        if (a.permissions[peer.ip] ?? now) < permissionExpiry {
            allocations[id]?.permissions[peer.ip] = permissionExpiry
        }
        noteDeadline(permissionExpiry)
        reply(view, client, transport, error: nil, attributes: [], auth: auth)
    }

    // MARK: - Send indication (RFC 8656 §11.2)

    private mutating func handleSend(_ view: STUNMessageView, _ client: TransportAddress, _ transport: TURNTransport,
                                     _ now: Instant) {
        guard let id = byTuple[FiveTuple(client: client, transport: transport)], let a = allocations[id],
              a.isActive, now < a.expiry else {
            counters.noAllocation += 1
            return
        }
        // RFC 8489 §6.3.2: an indication with unknown comprehension-required
        // attributes is discarded.
        guard let peerAttr = view.first(.xorPeerAddress), let peer = try? peerAttr.xorAddress(transactionID: view.transactionID),
              let data = view.first(.data)?.value,
              view.unknownComprehensionRequired(isKnown: TURNServer.isKnownAttribute).isEmpty else {
            counters.malformedPackets += 1
            return
        }
        guard peer.ip.isIPv4 == a.relay.ip.isIPv4, isPeerAllowed(peer) else {
            counters.forbiddenPeerDrops += 1
            return
        }
        guard a.hasPermission(peer.ip, now: now) else {
            counters.noPermission += 1
            return
        }
        guard consumeBandwidth(id, data.count, now: now) else { return }
        counters.packetsToPeers += 1
        counters.bytesToPeers += data.count
        enqueue(.sendToPeer(Array(data), relay: a.relay, peer: peer))
    }

    // MARK: - Deletion

    private mutating func deleteAllocation(_ id: TURNAllocationID, expired: Bool) {
        guard allocations[id] != nil else { return }
        if expired { counters.allocationsExpired += 1 } else { counters.allocationsDeleted += 1 }
        removeAllocation(id, closeRelay: true)
    }

    private mutating func removeAllocation(_ id: TURNAllocationID, closeRelay: Bool) {
        guard let a = allocations.removeValue(forKey: id) else { return }
        byTuple[a.tuple] = nil
        if byRelay[a.relay] == id { byRelay[a.relay] = nil }
        usedPorts.remove(a.relay.port)
        if let n = perUser[a.username] { perUser[a.username] = n > 1 ? n - 1 : nil }
        // A pending bind's socket is closed too: the edge may bind it later.
        if closeRelay { enqueue(.closeRelay(a.relay)) }
    }
}


@inline(__always)
func hex16(_ v: UInt64) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: 16 - s.count) + s
}

extension IPAddress {
    /// ::ffff:a.b.c.d as a.b.c.d, so mapped addresses get IPv4 policy.
    var unmappedIPv4: IPAddress {
        if case .v6(let high, let low) = self, high == 0, low >> 32 == 0xFFFF {
            return .v4(UInt32(truncatingIfNeeded: low))
        }
        return self
    }

    /// Ranges a relay must not reach by default: private, link-local,
    /// unspecified/"this network", multicast, broadcast, CGNAT shared space
    /// (RFC 6598) and, for IPv6, unique-local, link-local, multicast and the
    /// unspecified address. Loopback is handled separately.
    var isSpecialPurposeForRelay: Bool {
        if isPrivate || isLinkLocal || isLoopback { return true }
        switch self {
        case .v4(let a):
            return a >> 24 == 0            // 0.0.0.0/8
                || a >> 28 == 0xE          // 224.0.0.0/4 multicast
                || a >> 28 == 0xF          // 240.0.0.0/4 reserved, incl. broadcast
                || a >> 22 == 0x191        // 100.64.0.0/10
        case .v6(let high, let low):
            return (high == 0 && low == 0)  // ::
                || high >> 56 == 0xFF      // ff00::/8 multicast
        }
    }
}
