import RTCBase
import STUN

/// Identifies one TCP or TLS connection of the IO edge. The edge picks the
/// values (any unique number per live connection); the engine only compares them.
public struct TURNConnectionID: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    public var description: String { "conn#\(rawValue)" }
}

/// How a client reaches the server: the transport half of the 5-tuple that
/// identifies an allocation (RFC 8656 §2, §5). Over TCP and TLS the
/// connection id stands for the connection, whose remote address is `client`.
public enum TURNTransport: Hashable, Sendable {
    case udp
    case tcp(TURNConnectionID)
    case tls(TURNConnectionID)

    /// The connection, for stream transports.
    public var connectionID: TURNConnectionID? {
        switch self {
        case .udp: return nil
        case .tcp(let id), .tls(let id): return id
        }
    }

    /// True for TCP and TLS, where ChannelData must be padded to 4 bytes
    /// (RFC 8656 §12.5).
    public var isStream: Bool { connectionID != nil }
}

/// Names one allocation across the asynchronous relay-bind handshake
/// (`TURNAction.bindRelay` → `TURNServer.relayBound`/`relayBindFailed`).
public struct TURNAllocationID: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public var description: String { "alloc#\(rawValue)" }
}

/// Work the engine asks the IO edge to do. Drain with `TURNServer.pollAction()`
/// after every input until it returns nil.
public enum TURNAction: Hashable, Sendable {
    /// Write `bytes` (a whole STUN message or ChannelData message) to the
    /// client. For `.udp` it is one datagram from the TURN listening port; for
    /// `.tcp`/`.tls` append it to that connection's stream (already padded).
    case sendToClient([UInt8], client: TransportAddress, transport: TURNTransport)
    /// Send `bytes` as one UDP datagram from the relay socket whose public
    /// address is `relay` (the edge finds its socket by port) to `peer`.
    case sendToPeer([UInt8], relay: TransportAddress, peer: TransportAddress)
    /// Bind a UDP socket on `relay.port` (of `relay.ip`'s family; the edge
    /// may bind the wildcard or a private address behind a 1:1 NAT — the
    /// engine names relays by their public address). Answer with
    /// `relayBound(id, now:)` or `relayBindFailed(id, now:)`.
    case bindRelay(TransportAddress, id: TURNAllocationID)
    /// The allocation on this relay is gone: close its socket.
    case closeRelay(TransportAddress)
    /// Close this TCP/TLS connection (the stream cannot be resynchronised,
    /// e.g. it carried something that is neither STUN nor ChannelData).
    case closeConnection(TURNConnectionID)
}

/// The fast-path verdict for a datagram that arrived on a relay socket.
public enum TURNPeerRoute: Hashable, Sendable {
    /// Send to `client` over `transport`: the 4-byte ChannelData header
    /// (`TURNChannelData.writeHeader(channel:length:into:)`), then the
    /// peer's datagram unchanged, then `padding` zero bytes (non-zero only on
    /// stream transports, RFC 8656 §12.5).
    case channelData(channel: UInt16, client: TransportAddress, transport: TURNTransport, padding: Int)
    /// There is a permission but no channel, so the engine wrapped the data
    /// in a Data indication (RFC 8656 §11.5) and queued a `.sendToClient`
    /// action: drain `pollAction()`.
    case queued
}

/// What `routeChannelData` decided for a ChannelData message from a client.
/// What `TURNServer.answerBinding` did with a datagram.
public enum TURNBindingAnswer: Hashable, Sendable {
    /// A Binding success response of this many bytes is in the output buffer: send it to the client.
    case answered(Int)
    /// Refused by the per-source limit on unauthenticated answers (counted): send nothing.
    case dropped
    /// Not a plain Binding request: hand the datagram to `handleClientPacket`.
    case notHandled
}

public struct TURNChannelRoute: Hashable, Sendable {
    /// Public relayed address: send from this relay socket.
    public var relay: TransportAddress
    /// Destination peer.
    public var peer: TransportAddress
    /// The application data inside the input buffer (header and padding excluded).
    public var payload: Range<Int>
}

/// Every refusal and drop, by reason, plus a few volume counters. Plain
/// integers so the edge can export them as metrics without locking inside
/// the engine.
public struct TURNCounters: Hashable, Sendable {
    // Volume.
    public var allocationsCreated = 0
    public var allocationsDeleted = 0
    public var allocationsExpired = 0
    public var packetsToPeers = 0
    public var bytesToPeers = 0
    public var packetsToClients = 0
    public var bytesToClients = 0
    public var bindingResponses = 0

    // Malformed input.
    /// Neither STUN nor ChannelData, or a STUN message failing validation.
    public var malformedPackets = 0
    /// ChannelData whose length field claims more than the datagram holds
    /// (or too much trailing data).
    public var badChannelDataLength = 0
    /// STUN responses or unexpected indications from clients.
    public var unexpectedMessages = 0
    /// Stream framing errors (oversize or garbage on TCP/TLS).
    public var framingErrors = 0

    // Silent drops.
    /// ChannelData on a channel that is not bound (RFC 8656 §12.6).
    public var unboundChannel = 0
    /// Data for a 5-tuple or relay without an allocation.
    public var noAllocation = 0
    /// Peer data or Send/ChannelData without a permission (RFC 8656 §9).
    public var noPermission = 0
    /// Send indications to a forbidden peer address.
    public var forbiddenPeerDrops = 0
    /// Packets dropped by the per-allocation bandwidth cap.
    public var bandwidthDrops = 0
    /// Unauthenticated responses (Binding, 401, 438) not sent because the
    /// source IP exceeded its rate.
    public var rateLimited = 0

    // Error responses, by code.
    public var badRequest400 = 0
    public var unauthenticated401 = 0
    /// 401 because the username is unknown or a REST credential expired.
    public var unknownUser401 = 0
    /// 401 because MESSAGE-INTEGRITY(-SHA256) did not verify.
    public var badIntegrity401 = 0
    public var forbidden403 = 0
    public var unknownAttribute420 = 0
    public var allocationMismatch437 = 0
    public var staleNonce438 = 0
    public var addressFamily440 = 0
    public var wrongCredentials441 = 0
    public var unsupportedTransport442 = 0
    public var peerAddressFamilyMismatch443 = 0
    public var quota486 = 0
    public var insufficientCapacity508 = 0

    public init() {}

    mutating func countError(_ code: UInt16) {
        switch code {
        case 400: badRequest400 += 1
        case 403: forbidden403 += 1
        case 420: unknownAttribute420 += 1
        case 437: allocationMismatch437 += 1
        case 438: staleNonce438 += 1
        case 440: addressFamily440 += 1
        case 441: wrongCredentials441 += 1
        case 442: unsupportedTransport442 += 1
        case 443: peerAddressFamilyMismatch443 += 1
        case 486: quota486 += 1
        case 508: insufficientCapacity508 += 1
        default: break  // 401s are counted by cause where they are produced
        }
    }
}

/// An address prefix such as 203.0.113.0/24 or 2001:db8::/32, for the peer
/// allow list.
public struct IPAddressPrefix: Hashable, Sendable, CustomStringConvertible {
    public var address: IPAddress
    public var length: Int

    /// `length` is clamped to the family's width.
    public init(_ address: IPAddress, length: Int) {
        self.address = address
        self.length = max(0, min(length, address.isIPv4 ? 32 : 128))
    }

    /// "10.0.0.0/8", "::1/128", or a bare address (full length).
    public init?(_ text: String) {
        if let slash = text.firstIndex(of: "/") {
            guard let ip = IPAddress(text[..<slash]), let len = Int(text[text.index(after: slash)...]),
                  len >= 0, len <= (ip.isIPv4 ? 32 : 128) else { return nil }
            self.init(ip, length: len)
        } else {
            guard let ip = IPAddress(text) else { return nil }
            self.init(ip, length: ip.isIPv4 ? 32 : 128)
        }
    }

    public func contains(_ ip: IPAddress) -> Bool {
        switch (address, ip) {
        case (.v4(let a), .v4(let b)):
            if length == 0 { return true }
            let mask = UInt32.max << UInt32(32 - length)
            return a & mask == b & mask
        case (.v6(let ah, let al), .v6(let bh, let bl)):
            if length <= 64 {
                if length == 0 { return true }
                let mask = UInt64.max << UInt64(64 - length)
                return ah & mask == bh & mask
            }
            let mask = length == 128 ? UInt64.max : UInt64.max << UInt64(128 - length)
            return ah == bh && al & mask == bl & mask
        default:
            return false
        }
    }

    public var description: String { "\(address)/\(length)" }
}
