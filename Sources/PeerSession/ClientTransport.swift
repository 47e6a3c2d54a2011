import DTLS
import ICE
import RTCBase
import SRTP
import TURN

/// The client's side of one WebRTC transport: a full ICE agent in the
/// controlling role (RFC 8445) with its host candidates and, optionally,
/// relayed candidates from TURN servers, then DTLS-SRTP on the pair it
/// nominates. Sans-IO.
///
/// Relayed candidates (`turnServers`): the transport runs one
/// `TURNClientAllocation` per server, offers each relayed address to ICE as
/// a relay candidate (and as a `.localCandidate` event), sends whatever ICE,
/// DTLS or SRTP addresses from a relayed address through that allocation,
/// and unwraps what the server relays back before the usual demultiplexing.
/// The in-place `protectRTP(in:length:)` path leaves sending to the caller,
/// so it is for host pairs only: check `isRelayed` and use `sendRTP` otherwise.
public final class ClientTransport {
    public let configuration: PeerSessionConfiguration
    private var agent: ICEAgent
    private let channel: SecureChannel

    /// One allocation per configured TURN server.
    private var relays: [TURNClientAllocation] = []
    private var relaysStarted = false
    /// Relayed address → index in `relays`, once allocated.
    private var relayIndex: [TransportAddress: Int] = [:]
    /// The latest `now` seen, for sends that come without one (`sendRTP`).
    private var lastNow = Instant.zero

    /// - Parameter rng: the agent's tie-breaker, transaction ids and
    ///   consent jitter (tests pass a seeded generator).
    public init(configuration: PeerSessionConfiguration,
                rng: any RandomNumberGenerator & Sendable = SystemRandomNumberGenerator()) throws(PeerSessionError) {
        self.configuration = configuration
        channel = try SecureChannel(configuration: configuration)
        let hostCandidates = configuration.iceTransportPolicy == .relay ? [] : configuration.localCandidates
        agent = ICEAgent(local: configuration.localCredentials, remote: configuration.remoteCredentials,
                         localCandidates: hostCandidates, configuration: configuration.ice, rng: rng)
        for c in configuration.remoteCandidates { agent.addRemoteCandidate(c) }
        for var server in configuration.turnServers {
            if server.localAddress == nil { server.localAddress = configuration.localCandidates.first }
            relays.append(TURNClientAllocation(configuration: server, rng: rng))
        }
        channel.route = { [unowned self] transmit in routeThroughRelay(transmit) }
    }

    public var state: PeerSessionState { channel.state }
    public var counters: PeerSessionCounters { channel.counters }
    public var profile: SRTPProfile? { channel.profile }
    /// Where media goes: the remote address of the selected pair.
    public var selectedRemote: TransportAddress? { channel.selectedRemote }
    /// The local side of the selected pair.
    public var selectedLocal: TransportAddress? { channel.selectedLocal }

    /// True when the selected pair's local candidate is a relayed address.
    public var isRelayed: Bool {
        selectedLocal.map { relayIndex[$0] != nil } ?? false
    }

    /// The relayed addresses granted so far.
    public var relayedAddresses: [TransportAddress] {
        relays.compactMap { $0.state == .allocated ? $0.relayedAddress : nil }
    }

    /// Sends the Allocate requests to the configured TURN servers. Also done
    /// by the first `handleTimeout` (`pollTimeout()` asks for one at once).
    public func startGathering(now: Instant) {
        lastNow = now
        guard !relaysStarted, channel.isLive else { return }
        relaysStarted = true
        for i in relays.indices {
            relays[i].start(now: now)
            pumpRelay(i, now: now)
        }
    }

    // MARK: Signalling input

    public func setRemoteCredentials(_ credentials: ICECredentials) {
        agent.setRemoteCredentials(credentials)
    }

    public func setRemoteFingerprint(_ fingerprint: DTLSFingerprint) {
        channel.setRemoteFingerprint(fingerprint)
    }

    /// A remote candidate from SDP or trickle ICE (RFC 8838).
    public func addRemoteCandidate(_ candidate: ICECandidate) {
        agent.addRemoteCandidate(candidate)
    }

    /// Host candidates, and relayed ones once allocated, for the SDP.
    public var localCandidateDescriptions: [ICECandidate] { agent.localCandidateDescriptions }

    // MARK: Driving

    /// Handles one datagram that arrived on `local` from `source`,
    /// demultiplexed by its first byte (RFC 7983 §7).
    public func handleReceive(_ datagram: UnsafeRawBufferPointer, from source: TransportAddress,
                              to local: TransportAddress, now: Instant) {
        channel.counters.bytesIn += datagram.count
        lastNow = now
        guard channel.isLive else { return }
        if !relays.isEmpty, let i = relays.firstIndex(where: { $0.server == source }) {
            // From a TURN server: a response for the allocation, or a
            // peer's datagram that arrived on the relayed address.
            let relayed = relays[i].handleReceive(datagram, from: source, now: now)
            let relayedAddress = relays[i].relayedAddress
            pumpRelay(i, now: now)
            if let relayed, let relayedAddress, channel.isLive {
                demultiplex(UnsafeRawBufferPointer(rebasing: datagram[relayed.payload]), from: relayed.peer,
                            to: relayedAddress, now: now)
            }
            return
        }
        demultiplex(datagram, from: source, to: local, now: now)
    }

    private func demultiplex(_ datagram: UnsafeRawBufferPointer, from source: TransportAddress,
                             to local: TransportAddress, now: Instant) {
        switch PacketKind.classify(datagram) {
        case .stun:
            if !agent.handleReceive(datagram, from: source, to: local, now: now) {
                channel.counters.malformedDatagrams += 1
            }
            pumpICE(now: now)
        case .dtls:
            guard agent.isValidated(source) else {
                channel.counters.unvalidatedSourceDrops += 1
                return
            }
            channel.receiveDTLS(datagram, from: source, local: local, now: now)
        case .rtp, .rtcp:
            channel.receiveMedia(datagram, validated: agent.isValidated(source))
        case .zrtp, .turnChannel, .unknown:
            channel.counters.malformedDatagrams += 1
        }
    }

    /// Runs whichever of the ICE, TURN and DTLS timers are due.
    public func handleTimeout(now: Instant) {
        lastNow = now
        guard channel.isLive else { return }
        if !relaysStarted { startGathering(now: now) }
        for i in relays.indices {
            relays[i].handleTimeout(now: now)
            pumpRelay(i, now: now)
        }
        guard channel.isLive else { return }
        agent.handleTimeout(now: now)
        pumpICE(now: now)
        guard channel.isLive else { return }
        channel.handleTimeout(now: now)
    }

    /// The earliest of the ICE, TURN and DTLS deadlines; nil once ended.
    public func pollTimeout() -> Instant? {
        guard channel.isLive else { return nil }
        // Allocations not yet requested: as soon as possible.
        if !relays.isEmpty, !relaysStarted { return lastNow }
        var earliest = agent.pollTimeout()
        func consider(_ t: Instant?) { if let t, earliest.map({ t < $0 }) ?? true { earliest = t } }
        consider(channel.pollTimeout())
        for relay in relays { consider(relay.pollTimeout()) }
        return earliest
    }

    public func pollTransmit() -> Transmit? { channel.pollTransmit() }
    public func pollEvent() -> PeerSessionEvent? { channel.pollEvent() }

    /// Sends DTLS close_notify, deletes the allocations and stops.
    public func close() {
        guard channel.isLive else { return }
        channel.close()
        // Delete the allocations (Refresh with LIFETIME 0, RFC 8656 §8);
        // their answers are not awaited.
        for i in relays.indices {
            relays[i].close(now: lastNow)
            while let t = relays[i].pollTransmit() { channel.enqueue(t) }
        }
    }

    // MARK: Media

    /// Protects one RTP packet and queues it to the selected address.
    public func sendRTP(_ packet: [UInt8]) throws(PeerSessionError) { try channel.send(packet, rtcp: false) }

    /// Protects one RTCP compound packet and queues it to the selected address.
    public func sendRTCP(_ packet: [UInt8]) throws(PeerSessionError) { try channel.send(packet, rtcp: true) }

    /// Decrypts SRTP/SRTCP in place (see `ServerTransport.unprotect`).
    public func unprotect(_ buffer: UnsafeMutableRawBufferPointer, length: Int,
                          from source: TransportAddress) -> (kind: PacketKind, length: Int)? {
        channel.unprotect(buffer, length: length, validated: agent.isValidated(source))
    }

    /// Protects RTP in place; the caller sends it to `selectedRemote` (host pairs only).
    public func protectRTP(in buffer: UnsafeMutableRawBufferPointer, length: Int) throws(PeerSessionError) -> Int {
        try channel.protect(in: buffer, length: length, rtcp: false)
    }

    public func protectRTCP(in buffer: UnsafeMutableRawBufferPointer, length: Int) throws(PeerSessionError) -> Int {
        try channel.protect(in: buffer, length: length, rtcp: true)
    }

    // MARK: Internals

    private func pumpICE(now: Instant) {
        while let t = agent.pollTransmit() { channel.emit(t) }
        while let e = agent.pollEvent() { channel.handle(e, now: now) }
    }

    /// Queues a datagram, through the TURN allocation when its source is a
    /// relayed address.
    private func routeThroughRelay(_ transmit: Transmit) {
        guard let source = transmit.source, let i = relayIndex[source] else {
            channel.enqueue(transmit)
            return
        }
        relays[i].send(transmit.payload, to: transmit.destination, now: lastNow)
        while let t = relays[i].pollTransmit() { channel.enqueue(t) }
    }

    private func pumpRelay(_ i: Int, now: Instant) {
        while let t = relays[i].pollTransmit() { channel.enqueue(t) }
        while let event = relays[i].pollEvent() {
            switch event {
            case .allocated(let relayed, let mapped):
                relayIndex[relayed] = i
                if let candidate = agent.addLocalCandidate(relayed, type: .relay, related: mapped) {
                    channel.emitEvent(.localCandidate(candidate))
                }
                pumpICE(now: now)
            case .failed(let error):
                // With the relay policy nothing else can carry the session.
                if configuration.iceTransportPolicy == .relay, relays.allSatisfy({ $0.state == .failed }) {
                    channel.fail(.relayFailed(error))
                }
            case .refreshed, .permissionFailed, .closed:
                break
            }
        }
    }
}
