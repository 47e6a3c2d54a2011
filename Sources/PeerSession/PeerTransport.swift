import DTLS
import ICE
import RTCBase
import SRTP
import TURN

/// One WebRTC transport: ICE, then DTLS-SRTP keying, then SRTP/SRTCP over
/// the selected pair, all on one UDP 5-tuple (RFC 8834 §4.4, RFC 8843
/// BUNDLE with rtcp-mux). Sans-IO: the IO edge feeds datagrams with
/// `handleReceive`, fires `handleTimeout` at `pollTimeout()`, and drains
/// `pollTransmit()` and `pollEvent()` after each call.
///
/// Named `PeerTransport` because the module is `PeerSession`.
///
/// Security gates (RFC 8826 §4.2, RFC 7675 §4): DTLS and SRTP are accepted
/// only from addresses that passed an authenticated ICE check and still have
/// consent; nothing is sent to an address ICE has not selected.
///
/// Relayed candidates (client role, `turnServers`): the transport runs one
/// `TURNClientAllocation` per server, offers each relayed address to ICE as
/// a relay candidate (and as a `.localCandidate` event), sends whatever ICE,
/// DTLS or SRTP addresses from a relayed address through that allocation,
/// and unwraps what the server relays back before the usual demultiplexing.
/// The in-place `protectRTP(in:length:)` path leaves sending to the caller,
/// so it is for host pairs only: check `isRelayed` and use `sendRTP` otherwise.
public final class PeerTransport {
    public let configuration: PeerSessionConfiguration
    public private(set) var state: PeerSessionState = .checking
    public private(set) var counters = PeerSessionCounters()
    /// The SRTP profile, once `.connected`.
    public private(set) var profile: SRTPProfile?
    /// Where media goes: the remote address of the selected pair.
    public private(set) var selectedRemote: TransportAddress?
    /// The local side of the selected pair (client role; nil for the lite
    /// server, which has one socket).
    public private(set) var selectedLocal: TransportAddress?

    private var lite: ICELiteAgent?
    private var agent: ICEAgent?
    private let dtls: DTLSConnection
    private var dtlsStarted = false
    /// Where the last DTLS datagram came from: the reply address while no
    /// pair is selected yet (a DTLS client may speak right after its own
    /// check succeeded, before the nomination reaches us).
    private var lastDTLSSource: TransportAddress?

    private var outbound: SRTPContext?
    private var inbound: SRTPContext?

    /// The local address the last DTLS datagram arrived on (client role),
    /// so replies before selection leave the same way (maybe a relay).
    private var lastDTLSLocal: TransportAddress?

    /// One allocation per configured TURN server (client role).
    private var relays: [TURNClientAllocation] = []
    private var relaysStarted = false
    /// Relayed address → index in `relays`, once allocated.
    private var relayIndex: [TransportAddress: Int] = [:]
    /// The latest `now` seen, for sends that come without one (`sendRTP`).
    private var lastNow = Instant.zero

    private var transmits: [Transmit] = []
    private var transmitHead = 0
    private var events: [PeerSessionEvent] = []
    private var eventHead = 0
    /// Per-session buffer for decrypting in `handleReceive` and protecting
    /// in `sendRTP`, so neither allocates beyond the packet it hands out.
    private var scratch = [UInt8](repeating: 0, count: 1500)

    /// - Parameter rng: the full agent's tie-breaker, transaction ids and
    ///   consent jitter (tests pass a seeded generator).
    public init(configuration: PeerSessionConfiguration,
                rng: any RandomNumberGenerator & Sendable = SystemRandomNumberGenerator()) throws(PeerSessionError) {
        self.configuration = configuration
        do {
            dtls = try DTLSConnection(role: configuration.dtlsRole, certificate: configuration.certificate,
                                      remoteFingerprint: configuration.remoteFingerprint, mtu: configuration.mtu,
                                      configuration: configuration.dtls)
        } catch {
            throw .dtls(error)
        }
        switch configuration.iceRole {
        case .server:
            lite = ICELiteAgent(local: configuration.localCredentials, remote: configuration.remoteCredentials,
                                configuration: configuration.iceLite)
        case .client:
            let hostCandidates = configuration.iceTransportPolicy == .relay ? [] : configuration.localCandidates
            var a = ICEAgent(local: configuration.localCredentials, remote: configuration.remoteCredentials,
                             localCandidates: hostCandidates, configuration: configuration.ice, rng: rng)
            for c in configuration.remoteCandidates { a.addRemoteCandidate(c) }
            agent = a
            for var server in configuration.turnServers {
                if server.localAddress == nil { server.localAddress = configuration.localCandidates.first }
                relays.append(TURNClientAllocation(configuration: server, rng: rng))
            }
        }
    }

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
        guard !relaysStarted, isLive else { return }
        relaysStarted = true
        for i in relays.indices {
            relays[i].start(now: now)
            pumpRelay(i, now: now)
        }
    }

    // MARK: Signalling input

    /// The peer's `a=ice-ufrag`/`a=ice-pwd`.
    public func setRemoteCredentials(_ credentials: ICECredentials) {
        lite?.setRemoteCredentials(credentials)
        agent?.setRemoteCredentials(credentials)
    }

    /// The peer's `a=fingerprint`; keys are released only once it matches.
    public func setRemoteFingerprint(_ fingerprint: DTLSFingerprint) {
        dtls.setRemoteFingerprint(fingerprint)
        pumpDTLS(now: nil)
    }

    /// A remote candidate from SDP or trickle ICE (RFC 8838). A lite server
    /// needs none: it learns addresses from the checks it receives.
    public func addRemoteCandidate(_ candidate: ICECandidate) {
        agent?.addRemoteCandidate(candidate)
    }

    /// The client role's candidates (host, and relayed ones once allocated),
    /// for its SDP.
    public var localCandidateDescriptions: [ICECandidate] {
        agent?.localCandidateDescriptions ?? []
    }

    // MARK: Driving

    /// Handles one datagram that arrived on `local` from `source`,
    /// demultiplexed by its first byte (RFC 7983 §7).
    public func handleReceive(_ datagram: UnsafeRawBufferPointer, from source: TransportAddress,
                              to local: TransportAddress, now: Instant) {
        counters.bytesIn += datagram.count
        lastNow = now
        guard isLive else { return }
        if !relays.isEmpty, let i = relays.firstIndex(where: { $0.server == source }) {
            // From a TURN server: a response for the allocation, or a
            // peer's datagram that arrived on the relayed address.
            let relayed = relays[i].handleReceive(datagram, from: source, now: now)
            let relayedAddress = relays[i].relayedAddress
            pumpRelay(i, now: now)
            if let relayed, let relayedAddress, isLive {
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
            let consumed: Bool
            if lite != nil {
                consumed = lite!.handleReceive(datagram, from: source, now: now)
            } else {
                consumed = agent!.handleReceive(datagram, from: source, to: local, now: now)
            }
            if !consumed { counters.malformedDatagrams += 1 }
            pumpICE(now: now)
        case .dtls:
            guard isValidated(source) else {
                counters.unvalidatedSourceDrops += 1
                return
            }
            lastDTLSSource = source
            lastDTLSLocal = agent != nil ? local : nil
            if !dtlsStarted, configuration.dtlsRole == .server {
                // A ClientHello may beat the nomination; the server side
                // needs no start signal beyond it.
                dtlsStarted = true
                dtls.start(now: now)
            }
            dtls.handleReceive(datagram, now: now)
            pumpDTLS(now: now)
        case .rtp, .rtcp:
            receiveMedia(datagram, from: source)
        case .zrtp, .turnChannel, .unknown:
            counters.malformedDatagrams += 1
        }
    }

    public func handleReceive(_ datagram: [UInt8], from source: TransportAddress, to local: TransportAddress, now: Instant) {
        datagram.withUnsafeBytes { handleReceive($0, from: source, to: local, now: now) }
    }

    /// Runs whichever of ICE's and DTLS's timers are due.
    public func handleTimeout(now: Instant) {
        lastNow = now
        guard isLive else { return }
        if !relaysStarted { startGathering(now: now) }
        for i in relays.indices {
            relays[i].handleTimeout(now: now)
            pumpRelay(i, now: now)
        }
        guard isLive else { return }
        lite?.handleTimeout(now: now)
        agent?.handleTimeout(now: now)
        pumpICE(now: now)
        guard isLive else { return }
        dtls.handleTimeout(now: now)
        pumpDTLS(now: now)
    }

    /// The earliest of the ICE and DTLS deadlines; nil once the transport ended.
    public func pollTimeout() -> Instant? {
        guard isLive else { return nil }
        // Allocations not yet requested: as soon as possible.
        if !relays.isEmpty, !relaysStarted { return lastNow }
        var earliest = lite?.pollTimeout() ?? agent?.pollTimeout()
        func consider(_ t: Instant?) { if let t, earliest.map({ t < $0 }) ?? true { earliest = t } }
        consider(dtls.pollTimeout())
        for relay in relays { consider(relay.pollTimeout()) }
        return earliest
    }

    public func pollTransmit() -> Transmit? {
        guard transmitHead < transmits.count else { return nil }
        let t = transmits[transmitHead]
        transmits[transmitHead].payload = []
        transmitHead += 1
        if transmitHead == transmits.count {
            transmits.removeAll(keepingCapacity: true)
            transmitHead = 0
        }
        counters.bytesOut += t.payload.count
        return t
    }

    public func pollEvent() -> PeerSessionEvent? {
        guard eventHead < events.count else { return nil }
        let e = events[eventHead]
        eventHead += 1
        if eventHead == events.count {
            events.removeAll(keepingCapacity: true)
            eventHead = 0
        }
        return e
    }

    /// Sends DTLS close_notify to the peer and stops (no event for a local close).
    public func close() {
        guard isLive else { return }
        dtls.close()
        queueDTLSOutput()
        // Delete the allocations (Refresh with LIFETIME 0, RFC 8656 §8);
        // their answers are not awaited.
        for i in relays.indices {
            relays[i].close(now: lastNow)
            while let t = relays[i].pollTransmit() { transmits.append(t) }
        }
        state = .closed
        outbound = nil
        inbound = nil
    }

    // MARK: Media, allocating conveniences

    /// Protects one RTP packet and queues it to the selected address.
    public func sendRTP(_ packet: [UInt8]) throws(PeerSessionError) {
        try send(packet, rtcp: false)
    }

    /// Protects one RTCP compound packet and queues it to the selected address.
    public func sendRTCP(_ packet: [UInt8]) throws(PeerSessionError) {
        try send(packet, rtcp: true)
    }

    private func send(_ packet: [UInt8], rtcp: Bool) throws(PeerSessionError) {
        guard state == .connected, let outbound, let destination = selectedRemote else { throw .notConnected }
        let overhead = rtcp ? outbound.profile.rtcpOverhead : outbound.profile.rtpOverhead
        var out = [UInt8](repeating: 0, count: packet.count + overhead)
        var failure: SRTPError?
        let length = out.withUnsafeMutableBytes { buffer -> Int in
            packet.withUnsafeBytes { buffer.copyMemory(from: $0) }
            do throws(SRTPError) {
                return rtcp ? try outbound.protectRTCP(buffer, length: packet.count)
                    : try outbound.protectRTP(buffer, length: packet.count)
            } catch {
                failure = error
                return 0
            }
        }
        if let failure { throw .srtp(failure) }
        out.removeLast(out.count - length)
        if rtcp { counters.rtcpPacketsOut += 1 } else { counters.rtpPacketsOut += 1 }
        emit(Transmit(source: selectedLocal, destination: destination, payload: out))
    }

    // MARK: Media, in place (the SFU hot path)

    /// Decrypts an SRTP or SRTCP datagram in place, after the same source and
    /// key checks as `handleReceive`, without queueing an event. Returns the
    /// kind and plaintext length, or nil when the packet was dropped (and
    /// counted). Anything that is not RTP/RTCP returns nil untouched: pass it
    /// to `handleReceive`.
    public func unprotect(_ buffer: UnsafeMutableRawBufferPointer, length: Int,
                          from source: TransportAddress) -> (kind: PacketKind, length: Int)? {
        guard length >= 0, length <= buffer.count else {
            counters.malformedDatagrams += 1
            return nil
        }
        let packet = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<length])
        let kind = PacketKind.classify(UnsafeRawBufferPointer(packet))
        guard kind == .rtp || kind == .rtcp else { return nil }
        guard isLive, isValidated(source) else {
            counters.unvalidatedSourceDrops += 1
            return nil
        }
        guard let inbound else {
            counters.mediaBeforeKeys += 1
            return nil
        }
        do throws(SRTPError) {
            if kind == .rtp {
                let n = try inbound.unprotectRTP(packet, length: length)
                counters.rtpPacketsIn += 1
                return (kind, n)
            } else {
                let n = try inbound.unprotectRTCP(packet, length: length)
                counters.rtcpPacketsIn += 1
                return (kind, n)
            }
        } catch {
            count(error)
            return nil
        }
    }

    /// Protects the RTP packet in the first `length` bytes of `buffer` in
    /// place; `buffer` needs `profile.rtpOverhead` spare bytes. Returns the
    /// SRTP length; the caller sends it to `selectedRemote`.
    public func protectRTP(in buffer: UnsafeMutableRawBufferPointer, length: Int) throws(PeerSessionError) -> Int {
        try protect(in: buffer, length: length, rtcp: false)
    }

    /// As `protectRTP(in:length:)` for an RTCP compound packet
    /// (`profile.rtcpOverhead` spare bytes).
    public func protectRTCP(in buffer: UnsafeMutableRawBufferPointer, length: Int) throws(PeerSessionError) -> Int {
        try protect(in: buffer, length: length, rtcp: true)
    }

    private func protect(in buffer: UnsafeMutableRawBufferPointer, length: Int, rtcp: Bool) throws(PeerSessionError) -> Int {
        guard state == .connected, let outbound else { throw .notConnected }
        do throws(SRTPError) {
            let n = rtcp ? try outbound.protectRTCP(buffer, length: length) : try outbound.protectRTP(buffer, length: length)
            if rtcp { counters.rtcpPacketsOut += 1 } else { counters.rtpPacketsOut += 1 }
            counters.bytesOut += n
            return n
        } catch {
            throw .srtp(error)
        }
    }

    // MARK: Internals

    private var isLive: Bool {
        state == .checking || state == .handshaking || state == .connected
    }

    /// RFC 8445 §7.3 / RFC 7675: only an address that answered or sent an
    /// authenticated check, with consent still fresh, may deliver DTLS or media.
    @inline(__always)
    private func isValidated(_ address: TransportAddress) -> Bool {
        if let lite { return lite.isValidated(address) }
        if let agent { return agent.isValidated(address) }
        return false
    }

    private func receiveMedia(_ datagram: UnsafeRawBufferPointer, from source: TransportAddress) {
        if scratch.count < datagram.count { scratch = [UInt8](repeating: 0, count: datagram.count) }
        let result = scratch.withUnsafeMutableBytes { buffer -> (kind: PacketKind, length: Int)? in
            buffer.copyMemory(from: datagram)
            return unprotect(buffer, length: datagram.count, from: source)
        }
        guard let result else { return }
        let plain = Array(scratch[0..<result.length])
        events.append(result.kind == .rtp ? .rtp(plain) : .rtcp(plain))
    }

    private func count(_ error: SRTPError) {
        switch error {
        case .authenticationFailed: counters.srtpAuthFailures += 1
        case .replayed, .tooOld: counters.srtpReplays += 1
        default: counters.malformedDatagrams += 1
        }
    }

    private func pumpICE(now: Instant) {
        if lite != nil {
            while let t = lite!.pollTransmit() { emit(t) }
            while let e = lite!.pollEvent() { handleICEEvent(e, now: now) }
        } else if agent != nil {
            while let t = agent!.pollTransmit() { emit(t) }
            while let e = agent!.pollEvent() { handleICEEvent(e, now: now) }
        }
    }

    private func handleICEEvent(_ event: ICEEvent, now: Instant) {
        guard isLive else { return }
        switch event {
        case .selectedPair(let remote):
            select(local: nil, remote: remote, now: now)
        case .connected(let local, let remote):
            select(local: local, remote: remote, now: now)
        case .failed:
            fail(.iceFailed)
        case .consentExpired:
            // RFC 7675 §5.1: stop sending to the peer at once.
            state = .disconnected
            outbound = nil
            inbound = nil
            events.append(.disconnected(.consentExpired))
        case .roleChanged:
            break
        }
    }

    private func select(local: TransportAddress?, remote: TransportAddress, now: Instant) {
        guard selectedRemote != remote || selectedLocal != local else { return }
        selectedRemote = remote
        selectedLocal = local
        events.append(.iceConnected(remote: remote))
        if state == .checking { state = .handshaking }
        if !dtlsStarted {
            // The DTLS client speaks first once a pair is selected
            // (RFC 8842 §5.2, RFC 5763 §5); the server only waits.
            dtlsStarted = true
            dtls.start(now: now)
            pumpDTLS(now: now)
        }
        becomeConnectedIfReady()
    }

    private func queueDTLSOutput() {
        guard let destination = selectedRemote ?? lastDTLSSource else {
            while dtls.pollTransmit() != nil {}
            return
        }
        let source = selectedRemote != nil ? selectedLocal : lastDTLSLocal
        while let datagram = dtls.pollTransmit() {
            emit(Transmit(source: source, destination: destination, payload: datagram))
        }
    }

    /// Queues a datagram, through the TURN allocation when its source is a
    /// relayed address.
    private func emit(_ transmit: Transmit) {
        guard let source = transmit.source, let i = relayIndex[source] else {
            transmits.append(transmit)
            return
        }
        relays[i].send(transmit.payload, to: transmit.destination, now: lastNow)
        while let t = relays[i].pollTransmit() { transmits.append(t) }
    }

    private func pumpRelay(_ i: Int, now: Instant) {
        while let t = relays[i].pollTransmit() { transmits.append(t) }
        while let event = relays[i].pollEvent() {
            switch event {
            case .allocated(let relayed, let mapped):
                relayIndex[relayed] = i
                if let candidate = agent?.addLocalCandidate(relayed, type: .relay, related: mapped) {
                    events.append(.localCandidate(candidate))
                }
                pumpICE(now: now)
            case .failed(let error):
                // With the relay policy nothing else can carry the session.
                if configuration.iceTransportPolicy == .relay, relays.allSatisfy({ $0.state == .failed }) {
                    fail(.relayFailed(error))
                }
            case .refreshed, .permissionFailed, .closed:
                break
            }
        }
    }

    private func pumpDTLS(now: Instant?) {
        queueDTLSOutput()
        while let event = dtls.pollEvent() {
            guard isLive else { continue }
            switch event {
            case .connected(let keys):
                keyed(keys)
            case .applicationData:
                // No data channels yet (SCTP over DTLS, RFC 8261).
                break
            case .closed:
                state = .disconnected
                outbound = nil
                inbound = nil
                events.append(.disconnected(.closedByPeer))
            case .failed(let error):
                fail(error == .fingerprintMismatch ? .fingerprintMismatch : .dtls(error))
            }
        }
    }

    private func keyed(_ keys: DTLSSRTPKeys) {
        guard let srtpProfile = SRTPProfile(keys.profile) else {
            fail(.unsupportedProfile)
            return
        }
        do throws(SRTPError) {
            // RFC 5764 §4.2: each side protects with its own write key and
            // unprotects with the peer's.
            outbound = try SRTPContext(profile: srtpProfile,
                                       masterKey: SRTPMasterKey(key: keys.localMasterKey, salt: keys.localMasterSalt),
                                       replayWindowSize: configuration.replayWindowSize)
            inbound = try SRTPContext(profile: srtpProfile,
                                      masterKey: SRTPMasterKey(key: keys.remoteMasterKey, salt: keys.remoteMasterSalt),
                                      replayWindowSize: configuration.replayWindowSize)
        } catch {
            fail(.unsupportedProfile)
            return
        }
        profile = srtpProfile
        becomeConnectedIfReady()
    }

    /// Connected means both halves are done: keys exist and ICE selected a
    /// pair to send them to. A DTLS server can finish before the nomination
    /// answer reaches its own full agent (the answer was lost), so either
    /// can come last.
    private func becomeConnectedIfReady() {
        guard isLive, state != .connected, let profile, outbound != nil, selectedRemote != nil else { return }
        state = .connected
        events.append(.connected(profile: profile))
    }

    private func fail(_ error: PeerSessionError) {
        guard isLive else { return }
        state = .failed
        outbound = nil
        inbound = nil
        events.append(.failed(error))
    }
}

