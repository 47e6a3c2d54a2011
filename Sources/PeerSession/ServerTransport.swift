import DTLS
import ICE
import RTCBase
import SRTP
import STUN

/// The server's side of one WebRTC transport (the SFU's role): an ICE-lite
/// agent (RFC 8445 §2.5) that answers the peer's checks and follows its
/// nomination, then DTLS-SRTP on the selected address. Sans-IO, like
/// everything here.
///
/// The hot path allocates nothing: `answerBinding` writes the Binding
/// success into the caller's send buffer, `unprotect` decrypts SRTP/SRTCP
/// where it was received, `protectRTP`/`protectRTCP` encrypt in the
/// caller's buffer. DTLS handshakes, error answers and events go through the
/// queues (`pollTransmit`, `pollEvent`), which allocate but are rare.
///
/// Security gates (RFC 8826 §4.2, RFC 7675 §4): DTLS and SRTP are accepted
/// only from addresses that passed an authenticated check and still have
/// consent; media goes only to the address the peer nominated.
public final class ServerTransport {
    public let configuration: PeerSessionConfiguration
    private var lite: ICELiteAgent
    private let channel: SecureChannel

    public init(configuration: PeerSessionConfiguration) throws(PeerSessionError) {
        self.configuration = configuration
        channel = try SecureChannel(configuration: configuration)
        lite = ICELiteAgent(local: configuration.localCredentials, remote: configuration.remoteCredentials,
                            configuration: configuration.iceLite)
    }

    public var state: PeerSessionState { channel.state }
    public var counters: PeerSessionCounters { channel.counters }
    /// The SRTP profile, once `.connected`.
    public var profile: SRTPProfile? { channel.profile }
    /// The address the peer nominated: where media goes.
    public var selectedRemote: TransportAddress? { channel.selectedRemote }
    public var localCredentials: ICECredentials { lite.localCredentials }

    // MARK: Signalling input

    /// The peer's `a=ice-ufrag`/`a=ice-pwd`.
    public func setRemoteCredentials(_ credentials: ICECredentials) {
        lite.setRemoteCredentials(credentials)
    }

    /// The peer's `a=fingerprint`; keys are released only once it matches.
    public func setRemoteFingerprint(_ fingerprint: DTLSFingerprint) {
        channel.setRemoteFingerprint(fingerprint)
    }

    /// ICE restart (RFC 8445 §9): new credentials on both sides; DTLS and
    /// SRTP carry on. Media keeps going to the old address until the peer
    /// nominates over the new credentials.
    public func restartICE(local: ICECredentials, remote: ICECredentials) {
        lite.restart(local: local, remote: remote)
    }

    /// True when `address` passed a check and consent is fresh.
    @inline(__always)
    public func isValidated(_ address: TransportAddress) -> Bool { lite.isValidated(address) }

    // MARK: The hot path

    /// What `answerBinding` did.
    public enum BindingOutcome: Sendable, Equatable {
        /// A success response of this many bytes is in the caller's buffer.
        case answered(Int)
        /// Nothing to send now (an indication, a stray response, a request
        /// to drop); an error answer, if one is due, is in `pollTransmit()`.
        case none
        /// Not STUN at all.
        case notSTUN
    }

    /// Handles a STUN datagram from `source`: a valid Binding request is
    /// answered into `reply` (at least 128 bytes) without allocating, and
    /// updates validation, nomination and consent. `mapped` is what
    /// XOR-MAPPED-ADDRESS reports, when the edge names the peer by another
    /// address than its real one (ICE-TCP connections).
    public func answerBinding(_ packet: UnsafeRawBufferPointer, from source: TransportAddress,
                              mapped: TransportAddress? = nil, now: Instant,
                              into reply: UnsafeMutableRawBufferPointer) -> BindingOutcome {
        channel.counters.bytesIn += packet.count
        guard channel.isLive else { return .none }
        guard let view = try? STUNMessageView(packet) else {
            if STUNMessageType.looksLikeSTUN(packet) {
                channel.counters.malformedDatagrams += 1
                return .none
            }
            return .notSTUN
        }
        guard view.type == .bindingRequest else { return .none }
        let outcome: BindingOutcome
        switch lite.respond(to: view, from: source, mapped: mapped, now: now, into: reply) {
        case .drop:
            outcome = .none
        case .success(let n):
            outcome = .answered(n)
        case .error(let bytes):
            channel.emit(Transmit(destination: source, payload: bytes))
            outcome = .none
        }
        pumpICE(now: now)
        return outcome
    }

    /// A DTLS record from `source` (dropped and counted unless validated).
    public func receiveDTLS(_ datagram: UnsafeRawBufferPointer, from source: TransportAddress, now: Instant) {
        channel.counters.bytesIn += datagram.count
        guard channel.isLive else { return }
        guard lite.isValidated(source) else {
            channel.counters.unvalidatedSourceDrops += 1
            return
        }
        channel.receiveDTLS(datagram, from: source, local: nil, now: now)
    }

    /// Decrypts an SRTP or SRTCP datagram in place, after the source and key
    /// checks, without queueing an event. Returns the kind and plaintext
    /// length, or nil when the packet was dropped (and counted). Anything
    /// that is not RTP/RTCP returns nil untouched.
    @inline(__always)
    public func unprotect(_ buffer: UnsafeMutableRawBufferPointer, length: Int,
                          from source: TransportAddress) -> (kind: PacketKind, length: Int)? {
        channel.counters.bytesIn += length
        return channel.unprotect(buffer, length: length, validated: lite.isValidated(source))
    }

    /// Protects the RTP packet in the first `length` bytes of `buffer` in
    /// place; `buffer` needs `profile.rtpOverhead` spare bytes. Returns the
    /// SRTP length; the caller sends it to `selectedRemote`.
    @inline(__always)
    public func protectRTP(in buffer: UnsafeMutableRawBufferPointer, length: Int) throws(PeerSessionError) -> Int {
        try channel.protect(in: buffer, length: length, rtcp: false)
    }

    /// As `protectRTP(in:length:)` for an RTCP compound packet
    /// (`profile.rtcpOverhead` spare bytes).
    @inline(__always)
    public func protectRTCP(in buffer: UnsafeMutableRawBufferPointer, length: Int) throws(PeerSessionError) -> Int {
        try channel.protect(in: buffer, length: length, rtcp: true)
    }

    // MARK: Driving

    /// Handles any datagram (the allocating path for samples): STUN is
    /// answered through `pollTransmit()`, RTP/RTCP come out as events.
    public func handleReceive(_ datagram: UnsafeRawBufferPointer, from source: TransportAddress, now: Instant) {
        switch PacketKind.classify(datagram) {
        case .stun:
            channel.counters.bytesIn += datagram.count
            guard channel.isLive else { return }
            if !lite.handleReceive(datagram, from: source, now: now) { channel.counters.malformedDatagrams += 1 }
            pumpICE(now: now)
        case .dtls:
            receiveDTLS(datagram, from: source, now: now)
        case .rtp, .rtcp:
            channel.counters.bytesIn += datagram.count
            guard channel.isLive else { return }
            channel.receiveMedia(datagram, validated: lite.isValidated(source))
        case .zrtp, .turnChannel, .unknown:
            channel.counters.bytesIn += datagram.count
            guard channel.isLive else { return }
            channel.counters.malformedDatagrams += 1
        }
    }

    /// Runs whichever of the consent and DTLS timers are due.
    public func handleTimeout(now: Instant) {
        guard channel.isLive else { return }
        lite.handleTimeout(now: now)
        pumpICE(now: now)
        guard channel.isLive else { return }
        channel.handleTimeout(now: now)
    }

    /// The earliest of the consent and DTLS deadlines; nil once ended.
    public func pollTimeout() -> Instant? {
        guard channel.isLive else { return nil }
        let a = lite.pollTimeout()
        let b = channel.pollTimeout()
        switch (a, b) {
        case let (a?, b?): return min(a, b)
        default: return a ?? b
        }
    }

    public func pollTransmit() -> Transmit? { channel.pollTransmit() }
    public func pollEvent() -> PeerSessionEvent? { channel.pollEvent() }

    /// Sends DTLS close_notify to the peer and stops (no event for a local close).
    public func close() { channel.close() }

    /// Protects one RTP packet and queues it to the selected address (allocates).
    public func sendRTP(_ packet: [UInt8]) throws(PeerSessionError) { try channel.send(packet, rtcp: false) }

    /// Protects one RTCP compound packet and queues it (allocates).
    public func sendRTCP(_ packet: [UInt8]) throws(PeerSessionError) { try channel.send(packet, rtcp: true) }

    private func pumpICE(now: Instant) {
        while let t = lite.pollTransmit() { channel.emit(t) }
        while let e = lite.pollEvent() { channel.handle(e, now: now) }
    }
}
