import DTLS
import ICE
import RTCBase
import SRTP
import TURN

/// One WebRTC transport for either role: ICE, then DTLS-SRTP keying, then
/// SRTP/SRTCP over the selected pair, all on one UDP 5-tuple (RFC 8834 §4.4,
/// RFC 8843 BUNDLE with rtcp-mux). Sans-IO: the IO edge feeds datagrams with
/// `handleReceive`, fires `handleTimeout` at `pollTimeout()`, and drains
/// `pollTransmit()` and `pollEvent()` after each call.
///
/// This is the convenience front of the two role-specific transports,
/// chosen by `configuration.iceRole`: `ServerTransport` (ICE-lite, the SFU's
/// side, with a non-allocating hot path) and `ClientTransport` (the full
/// controlling agent, with TURN relays). Samples and tests that want one
/// API for both use this; the media server uses `ServerTransport` directly.
///
/// Named `PeerTransport` because the module is `PeerSession`.
public final class PeerTransport {
    private enum Role {
        case server(ServerTransport)
        case client(ClientTransport)
    }

    public let configuration: PeerSessionConfiguration
    private let role: Role

    /// - Parameter rng: the full agent's tie-breaker, transaction ids and
    ///   consent jitter (tests pass a seeded generator).
    public init(configuration: PeerSessionConfiguration,
                rng: any RandomNumberGenerator & Sendable = SystemRandomNumberGenerator()) throws(PeerSessionError) {
        self.configuration = configuration
        switch configuration.iceRole {
        case .server: role = .server(try ServerTransport(configuration: configuration))
        case .client: role = .client(try ClientTransport(configuration: configuration, rng: rng))
        }
    }

    /// The server-role transport, if this is one.
    public var server: ServerTransport? { if case .server(let s) = role { s } else { nil } }
    /// The client-role transport, if this is one.
    public var client: ClientTransport? { if case .client(let c) = role { c } else { nil } }

    public var state: PeerSessionState {
        switch role { case .server(let s): s.state; case .client(let c): c.state }
    }
    public var counters: PeerSessionCounters {
        switch role { case .server(let s): s.counters; case .client(let c): c.counters }
    }
    /// The SRTP profile, once `.connected`.
    public var profile: SRTPProfile? {
        switch role { case .server(let s): s.profile; case .client(let c): c.profile }
    }
    /// Where media goes: the remote address of the selected pair.
    public var selectedRemote: TransportAddress? {
        switch role { case .server(let s): s.selectedRemote; case .client(let c): c.selectedRemote }
    }
    /// The local side of the selected pair (client role; nil for the lite
    /// server, which has one socket).
    public var selectedLocal: TransportAddress? { client?.selectedLocal }

    /// True when the selected pair's local candidate is a relayed address.
    public var isRelayed: Bool { client?.isRelayed ?? false }

    /// The relayed addresses granted so far.
    public var relayedAddresses: [TransportAddress] { client?.relayedAddresses ?? [] }

    /// Sends the Allocate requests to the configured TURN servers. Also done
    /// by the first `handleTimeout` (`pollTimeout()` asks for one at once).
    public func startGathering(now: Instant) { client?.startGathering(now: now) }

    // MARK: Signalling input

    /// The peer's `a=ice-ufrag`/`a=ice-pwd`.
    public func setRemoteCredentials(_ credentials: ICECredentials) {
        switch role {
        case .server(let s): s.setRemoteCredentials(credentials)
        case .client(let c): c.setRemoteCredentials(credentials)
        }
    }

    /// The peer's `a=fingerprint`; keys are released only once it matches.
    public func setRemoteFingerprint(_ fingerprint: DTLSFingerprint) {
        switch role {
        case .server(let s): s.setRemoteFingerprint(fingerprint)
        case .client(let c): c.setRemoteFingerprint(fingerprint)
        }
    }

    /// A remote candidate from SDP or trickle ICE (RFC 8838). A lite server
    /// needs none: it learns addresses from the checks it receives.
    public func addRemoteCandidate(_ candidate: ICECandidate) { client?.addRemoteCandidate(candidate) }

    /// The client role's candidates (host, and relayed ones once allocated),
    /// for its SDP.
    public var localCandidateDescriptions: [ICECandidate] { client?.localCandidateDescriptions ?? [] }

    // MARK: Driving

    /// Handles one datagram that arrived on `local` from `source`,
    /// demultiplexed by its first byte (RFC 7983 §7).
    public func handleReceive(_ datagram: UnsafeRawBufferPointer, from source: TransportAddress,
                              to local: TransportAddress, now: Instant) {
        switch role {
        case .server(let s): s.handleReceive(datagram, from: source, now: now)
        case .client(let c): c.handleReceive(datagram, from: source, to: local, now: now)
        }
    }

    public func handleReceive(_ datagram: [UInt8], from source: TransportAddress, to local: TransportAddress, now: Instant) {
        datagram.withUnsafeBytes { handleReceive($0, from: source, to: local, now: now) }
    }

    /// Runs whichever of ICE's and DTLS's timers are due.
    public func handleTimeout(now: Instant) {
        switch role {
        case .server(let s): s.handleTimeout(now: now)
        case .client(let c): c.handleTimeout(now: now)
        }
    }

    /// The earliest of the ICE and DTLS deadlines; nil once the transport ended.
    public func pollTimeout() -> Instant? {
        switch role { case .server(let s): s.pollTimeout(); case .client(let c): c.pollTimeout() }
    }

    public func pollTransmit() -> Transmit? {
        switch role { case .server(let s): s.pollTransmit(); case .client(let c): c.pollTransmit() }
    }

    public func pollEvent() -> PeerSessionEvent? {
        switch role { case .server(let s): s.pollEvent(); case .client(let c): c.pollEvent() }
    }

    /// Sends DTLS close_notify to the peer and stops (no event for a local close).
    public func close() {
        switch role { case .server(let s): s.close(); case .client(let c): c.close() }
    }

    // MARK: Media, allocating conveniences

    /// Protects one RTP packet and queues it to the selected address.
    public func sendRTP(_ packet: [UInt8]) throws(PeerSessionError) {
        switch role { case .server(let s): try s.sendRTP(packet); case .client(let c): try c.sendRTP(packet) }
    }

    /// Protects one RTCP compound packet and queues it to the selected address.
    public func sendRTCP(_ packet: [UInt8]) throws(PeerSessionError) {
        switch role { case .server(let s): try s.sendRTCP(packet); case .client(let c): try c.sendRTCP(packet) }
    }

    // MARK: Media, in place

    /// Decrypts an SRTP or SRTCP datagram in place, after the same source and
    /// key checks as `handleReceive`, without queueing an event. Returns the
    /// kind and plaintext length, or nil when the packet was dropped (and
    /// counted). Anything that is not RTP/RTCP returns nil untouched: pass it
    /// to `handleReceive`.
    public func unprotect(_ buffer: UnsafeMutableRawBufferPointer, length: Int,
                          from source: TransportAddress) -> (kind: PacketKind, length: Int)? {
        switch role {
        case .server(let s): s.unprotect(buffer, length: length, from: source)
        case .client(let c): c.unprotect(buffer, length: length, from: source)
        }
    }

    /// Protects the RTP packet in the first `length` bytes of `buffer` in
    /// place; `buffer` needs `profile.rtpOverhead` spare bytes. Returns the
    /// SRTP length; the caller sends it to `selectedRemote`.
    public func protectRTP(in buffer: UnsafeMutableRawBufferPointer, length: Int) throws(PeerSessionError) -> Int {
        switch role {
        case .server(let s): try s.protectRTP(in: buffer, length: length)
        case .client(let c): try c.protectRTP(in: buffer, length: length)
        }
    }

    /// As `protectRTP(in:length:)` for an RTCP compound packet
    /// (`profile.rtcpOverhead` spare bytes).
    public func protectRTCP(in buffer: UnsafeMutableRawBufferPointer, length: Int) throws(PeerSessionError) -> Int {
        switch role {
        case .server(let s): try s.protectRTCP(in: buffer, length: length)
        case .client(let c): try c.protectRTCP(in: buffer, length: length)
        }
    }
}
