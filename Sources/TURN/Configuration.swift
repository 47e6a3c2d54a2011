import RTCBase
import STUN

/// Settings of a `TURNServer`. Defaults follow RFC 8656 where it gives numbers.
public struct TURNServerConfiguration: Sendable {
    /// REALM of the long-term credential mechanism (RFC 8489 §9.2).
    public var realm: String
    /// The address clients see for relayed transport addresses
    /// (XOR-RELAYED-ADDRESS). Behind a 1:1 NAT this is the public address.
    public var publicIP: IPAddress
    /// An IPv6 relay address; when nil, REQUESTED-ADDRESS-FAMILY IPv6 gets 440
    /// (RFC 8656 §7.2).
    public var publicIPv6: IPAddress?
    /// Ports the engine picks relay ports from (RFC 8656 §7.2 asks for random
    /// choice, to make relayed addresses hard to guess).
    public var relayPorts: ClosedRange<UInt16>
    /// How many ports to try when the edge reports bind failures before
    /// answering 508.
    public var maxRelayBindAttempts = 5

    /// Static users: username → password (OpaqueString-prepared by the caller).
    public var users: [String: String] = [:]
    /// Shared secret for time-limited REST credentials (coturn's
    /// `use-auth-secret`): username `"<unix-expiry>:<user>"`,
    /// password `base64(HMAC-SHA1(secret, username))`. Nil disables them.
    public var restSecret: [UInt8]?
    /// Current Unix time in seconds, for REST credential expiry. The engine
    /// reads no clock: the edge passes one in (tests map the fake `now`).
    public var wallClockSeconds: @Sendable (Instant) -> Int64

    /// Key for the stateless nonces (HMAC). Pass random bytes; every server
    /// sharing this key accepts the others' nonces.
    public var nonceSecret: [UInt8]
    /// How long a nonce stays fresh before requests get 438 Stale Nonce.
    public var nonceLifetime: Duration = .seconds(600)

    /// RFC 8656 §7.2: default 600 s (10 min), requests may ask for more up to
    /// the maximum (3600 s recommended).
    public var defaultLifetime: Duration = .seconds(600)
    public var maxLifetime: Duration = .seconds(3600)
    /// RFC 8656 §9: 300 s, not negotiable.
    public var permissionLifetime: Duration = .seconds(300)
    /// RFC 8656 §12: 600 s (10 min).
    public var channelLifetime: Duration = .seconds(600)
    /// RFC 8656 §12: a channel number (and peer) may not be rebound to
    /// something else for 5 minutes after its binding expires.
    public var channelReuseDelay: Duration = .seconds(300)

    /// Quotas (RFC 8656 §7.2: 486 for the user, 508 for the server).
    public var maxAllocationsPerUser = 10
    public var maxAllocations = 10_000
    /// Relayed bytes per second per allocation, both directions together
    /// (payload bytes). Nil means no cap.
    public var bandwidthLimit: Int?
    /// Seconds of `bandwidthLimit` a burst may use.
    public var bandwidthBurstSeconds: Double = 1

    /// Unauthenticated answers (Binding responses, 401, 438, 400 before
    /// authentication) per second per source IP, and the burst allowed;
    /// beyond that requests are dropped silently so the server cannot be
    /// used as a reflector. nil: no limit (benchmarks on one source address).
    public var unauthenticatedRate: Double? = 10
    public var unauthenticatedBurst: Double = 20
    /// Distinct source IPs tracked by that limiter; past this, new sources
    /// share one bucket (a spoofed flood cannot grow memory).
    public var rateLimiterCapacity = 50_000

    /// Allow peers on loopback (tests only: a relay to 127.0.0.1 reaches the
    /// server's own services).
    public var allowLoopbackPeers = false
    /// Peer prefixes allowed even if loopback/private/link-local (e.g. a
    /// media server on the same private network).
    public var allowedPeers: [IPAddressPrefix] = []
    /// Peer prefixes always refused (checked before `allowedPeers`).
    public var deniedPeers: [IPAddressPrefix] = []
    /// This server's own services that clients may reach through a relay
    /// even where their addresses are private or loopback: the SFU's media
    /// ports, so a client behind a NAT reaches the SFU through TURN. Only
    /// these exact addresses, not the rest of their host.
    public var serverPeers: Set<TransportAddress> = []

    /// Largest STUN or ChannelData message accepted (and the TCP framer's limit).
    public var maxMessageSize = 65_535 + 4

    public init(realm: String, publicIP: IPAddress, relayPorts: ClosedRange<UInt16> = 49152...65535,
                nonceSecret: [UInt8], wallClockSeconds: @escaping @Sendable (Instant) -> Int64) {
        self.realm = realm
        self.publicIP = publicIP
        self.relayPorts = relayPorts
        self.nonceSecret = nonceSecret
        self.wallClockSeconds = wallClockSeconds
    }
}

/// Time-limited TURN credentials from a shared secret, in the scheme coturn
/// calls `use-auth-secret` ("TURN REST API"): the signaling server hands
/// these to clients in `iceServers`, and the TURN server checks them with
/// the same secret and no shared state.
public struct TURNRESTCredential: Hashable, Sendable {
    /// `"<unix-expiry>:<user>"`.
    public var username: String
    /// `base64(HMAC-SHA1(secret, username))`.
    public var password: String
    /// Unix time (seconds) after which the server refuses the username.
    public var expiresAt: Int64

    /// Credentials for `user` valid for `ttl` seconds from `unixTime`.
    public init(user: String, secret: [UInt8], unixTime: Int64, ttl: Int64 = 86_400) {
        expiresAt = unixTime + ttl
        username = "\(expiresAt):\(user)"
        password = TURNRESTCredential.password(username: username, secret: secret)
    }

    /// The password the server derives for `username`.
    public static func password(username: String, secret: [UInt8]) -> String {
        base64Encode(STUNIntegrityKey(key: secret).hmacSHA1(Array(username.utf8)))
    }

    /// The expiry in a REST username (the digits before the first ':', or the
    /// whole username if it has none), nil if it has no such number.
    public static func expiry(ofUsername username: String) -> Int64? {
        let head = username.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        guard !head.isEmpty, head.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return Int64(head)
    }
}

/// Standard base64 with padding (RFC 4648 §4).
func base64Encode(_ bytes: [UInt8]) -> String {
    let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    var out = [UInt8]()
    out.reserveCapacity((bytes.count + 2) / 3 * 4)
    var i = 0
    while i < bytes.count {
        let b0 = bytes[i]
        let b1 = i + 1 < bytes.count ? bytes[i + 1] : 0
        let b2 = i + 2 < bytes.count ? bytes[i + 2] : 0
        out.append(alphabet[Int(b0 >> 2)])
        out.append(alphabet[Int((b0 & 0x03) << 4 | b1 >> 4)])
        out.append(i + 1 < bytes.count ? alphabet[Int((b1 & 0x0F) << 2 | b2 >> 6)] : UInt8(ascii: "="))
        out.append(i + 2 < bytes.count ? alphabet[Int(b2 & 0x3F)] : UInt8(ascii: "="))
        i += 3
    }
    return String(decoding: out, as: UTF8.self)
}
