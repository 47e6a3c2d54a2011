import RTCBase
import STUN

/// The client side of an allocation's 5-tuple (RFC 8656 §2). The server side
/// (listening address and protocol) is the engine's own, so client address
/// plus transport identifies it.
struct FiveTuple: Hashable {
    var client: TransportAddress
    var transport: TURNTransport
}

/// A token bucket refilled continuously from `now` (no timers): `rate`
/// tokens per second up to `burst`.
struct TokenBucket {
    var tokens: Double
    var last: Instant

    init(burst: Double, now: Instant) {
        tokens = burst
        last = now
    }

    /// Takes `amount` tokens if there are enough; refills first.
    @inline(__always)
    mutating func take(_ amount: Double, rate: Double, burst: Double, now: Instant) -> Bool {
        if now > last {
            let elapsed = Double(now.nanoseconds &- last.nanoseconds) / 1e9
            tokens = min(burst, tokens + elapsed * rate)
            last = now
        }
        guard tokens >= amount else { return false }
        tokens -= amount
        return true
    }

    /// True when the bucket would be full at `now` (it can be forgotten).
    func isFull(rate: Double, burst: Double, now: Instant) -> Bool {
        tokens + Double(now.nanoseconds &- last.nanoseconds) / 1e9 * rate >= burst
    }
}

/// The per-allocation bandwidth limit as a token bucket's parameters.
struct BandwidthCap {
    var rate: Double
    var burst: Double
}

/// Who authenticated a request and how to sign the answer (RFC 8489 §9.2.4:
/// responses carry the same kind of MESSAGE-INTEGRITY as the request, keyed
/// with the same key).
struct AuthContext {
    var username: String
    var key: STUNIntegrityKey
    var useSHA256: Bool
    var fingerprint: Bool
}

/// A channel binding (RFC 8656 §12). After `expiry` it carries no data but
/// stays as a reservation until `expiry + channelReuseDelay`, so neither the
/// number nor the peer can be bound to something else in that time.
struct ChannelBinding {
    var peer: TransportAddress
    var expiry: Instant
}

/// The Allocate request waiting for the edge to bind a relay socket.
struct PendingBind {
    var auth: AuthContext
    var transactionID: STUNTransactionID
    var lifetime: Duration
    var wantEvenPort: Bool
    var addressErrorV6: Bool
    var triedPorts: [UInt16] = []
}

/// One allocation (RFC 8656 §2.2, §6).
struct Allocation {
    let id: TURNAllocationID
    let tuple: FiveTuple
    let username: String
    var relay: TransportAddress
    /// Non-nil until the edge confirmed the relay socket.
    var pending: PendingBind?
    /// The Allocate that created it and its answer, replayed to
    /// retransmissions (RFC 8656 §7.2: same transaction id → same response).
    let createTransaction: STUNTransactionID
    var successResponse: [UInt8]?
    var expiry: Instant
    /// Peer IP → expiry (RFC 8656 §9: permissions ignore the port).
    var permissions: [IPAddress: Instant] = [:]
    var channels: [UInt16: ChannelBinding] = [:]
    var channelByPeer: [TransportAddress: UInt16] = [:]
    var bucket: TokenBucket

    var isActive: Bool { pending == nil }

    /// Outcome of the per-packet checks, so the caller does one dictionary
    /// access (an in-place `allocations[id]?.route…` call) per packet.
    enum RouteCheck {
        case ok
        case expired
        case unboundChannel
        case noPermission
        case overBandwidth
    }

    /// Client → peer checks for ChannelData on `channel` (RFC 8656 §12.6).
    @inline(__always)
    mutating func checkChannelData(channel: UInt16, count: Int, now: Instant, cap: BandwidthCap?)
        -> (check: RouteCheck, peer: TransportAddress, relay: TransportAddress) {
        guard pending == nil, now < expiry else { return (.expired, relay, relay) }
        guard let binding = channels[channel], now < binding.expiry else { return (.unboundChannel, relay, relay) }
        guard hasPermission(binding.peer.ip, now: now) else { return (.noPermission, relay, relay) }
        if let cap, !bucket.take(Double(count), rate: cap.rate, burst: cap.burst, now: now) { return (.overBandwidth, relay, relay) }
        return (.ok, binding.peer, relay)
    }

    /// Peer → client checks (RFC 8656 §11.3, §12.6); on success the channel
    /// to use, if one is bound to that peer.
    @inline(__always)
    mutating func checkPeerData(peer: TransportAddress, count: Int, now: Instant, cap: BandwidthCap?)
        -> (check: RouteCheck, channel: UInt16?, tuple: FiveTuple) {
        guard pending == nil, now < expiry else { return (.expired, nil, tuple) }
        guard hasPermission(peer.ip, now: now) else { return (.noPermission, nil, tuple) }
        if let cap, !bucket.take(Double(count), rate: cap.rate, burst: cap.burst, now: now) { return (.overBandwidth, nil, tuple) }
        if let number = channelByPeer[peer], let binding = channels[number], now < binding.expiry { return (.ok, number, tuple) }
        return (.ok, nil, tuple)
    }

    @inline(__always)
    func hasPermission(_ ip: IPAddress, now: Instant) -> Bool {
        guard let expiry = permissions[ip] else { return false }
        return now < expiry
    }
}
