import DTLS
import ICE
import RTCBase
import SRTP

/// What both roles of a transport share once ICE has a pair: the DTLS
/// handshake, SRTP/SRTCP keyed from it (RFC 5764), the state machine that
/// says when media may flow, counters, and the queues of datagrams and
/// events for the IO edge. The ICE side (`ServerTransport`'s lite agent,
/// `ClientTransport`'s full agent) decides which addresses are validated
/// and feeds this channel only what passed.
final class SecureChannel {
    var state: PeerSessionState = .checking
    var counters = PeerSessionCounters()
    /// The SRTP profile, once `.connected`.
    private(set) var profile: SRTPProfile?
    /// Where media goes: the remote address of the selected pair.
    private(set) var selectedRemote: TransportAddress?
    /// The local side of the selected pair (client role; nil for the lite
    /// server, which has one socket).
    private(set) var selectedLocal: TransportAddress?

    let dtlsRole: DTLSRole
    private let replayWindowSize: Int
    private let dtls: DTLSConnection
    private var dtlsStarted = false
    /// Where the last DTLS datagram came from: the reply address while no
    /// pair is selected yet (a DTLS client may speak right after its own
    /// check succeeded, before the nomination reaches us).
    private var lastDTLSSource: TransportAddress?
    /// The local address the last DTLS datagram arrived on (client role),
    /// so replies before selection leave the same way (maybe a relay).
    private var lastDTLSLocal: TransportAddress?
    private var outbound: SRTPContext?
    private var inbound: SRTPContext?

    private var transmits = PollQueue<Transmit>()
    private var events = PollQueue<PeerSessionEvent>()
    /// Per-session buffer for decrypting in `receiveMedia` and protecting in
    /// `send`, so neither allocates beyond the packet it hands out.
    private var scratch = [UInt8](repeating: 0, count: 1500)

    /// Where a transmit goes instead of the queue (the client routes those
    /// from a relayed address through its TURN allocation); nil: the queue.
    var route: ((Transmit) -> Void)?

    init(configuration: PeerSessionConfiguration) throws(PeerSessionError) {
        dtlsRole = configuration.dtlsRole
        replayWindowSize = configuration.replayWindowSize
        do {
            dtls = try DTLSConnection(role: configuration.dtlsRole, certificate: configuration.certificate,
                                      remoteFingerprint: configuration.remoteFingerprint, mtu: configuration.mtu,
                                      configuration: configuration.dtls)
        } catch {
            throw .dtls(error)
        }
    }

    var isLive: Bool {
        state == .checking || state == .handshaking || state == .connected
    }

    // MARK: Queues

    func emit(_ transmit: Transmit) {
        if let route { route(transmit) } else { transmits.append(transmit) }
    }

    /// Queues without routing (what a TURN allocation already wrapped).
    func enqueue(_ transmit: Transmit) { transmits.append(transmit) }

    func emitEvent(_ event: PeerSessionEvent) { events.append(event) }

    func pollTransmit() -> Transmit? {
        guard let t = transmits.poll() else { return nil }
        counters.bytesOut += t.payload.count
        return t
    }

    func pollEvent() -> PeerSessionEvent? { events.poll() }

    // MARK: DTLS

    func setRemoteFingerprint(_ fingerprint: DTLSFingerprint) {
        dtls.setRemoteFingerprint(fingerprint)
        pumpDTLS()
    }

    /// A DTLS datagram from `source`, which ICE validated; `local` is the
    /// address it arrived on (client role) or nil.
    func receiveDTLS(_ datagram: UnsafeRawBufferPointer, from source: TransportAddress, local: TransportAddress?,
                     now: Instant) {
        lastDTLSSource = source
        lastDTLSLocal = local
        if !dtlsStarted, dtlsRole == .server {
            // A ClientHello may beat the nomination; the server side
            // needs no start signal beyond it.
            dtlsStarted = true
            dtls.start(now: now)
        }
        dtls.handleReceive(datagram, now: now)
        pumpDTLS()
    }

    func handleTimeout(now: Instant) {
        dtls.handleTimeout(now: now)
        pumpDTLS()
    }

    func pollTimeout() -> Instant? { dtls.pollTimeout() }

    /// ICE selected (or switched) the pair media uses.
    func select(local: TransportAddress?, remote: TransportAddress, now: Instant) {
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
            pumpDTLS()
        }
        becomeConnectedIfReady()
    }

    /// What either role's ICE agent reported.
    func handle(_ event: ICEEvent, now: Instant) {
        guard isLive else { return }
        switch event {
        case .selectedPair(let remote):
            select(local: nil, remote: remote, now: now)
        case .connected(let local, let remote):
            select(local: local, remote: remote, now: now)
        case .failed:
            fail(.iceFailed)
        case .consentExpired:
            consentExpired()
        case .roleChanged:
            break
        }
    }

    /// RFC 7675 §5.1: stop sending to the peer at once.
    func consentExpired() {
        guard isLive else { return }
        state = .disconnected
        outbound = nil
        inbound = nil
        events.append(.disconnected(.consentExpired))
    }

    /// Sends DTLS close_notify and stops (no event for a local close).
    func close() {
        guard isLive else { return }
        dtls.close()
        queueDTLSOutput()
        state = .closed
        outbound = nil
        inbound = nil
    }

    func fail(_ error: PeerSessionError) {
        guard isLive else { return }
        state = .failed
        outbound = nil
        inbound = nil
        events.append(.failed(error))
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

    private func pumpDTLS() {
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
                                       replayWindowSize: replayWindowSize)
            inbound = try SRTPContext(profile: srtpProfile,
                                      masterKey: SRTPMasterKey(key: keys.remoteMasterKey, salt: keys.remoteMasterSalt),
                                      replayWindowSize: replayWindowSize)
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

    // MARK: SRTP

    /// Decrypts SRTP or SRTCP in place. `validated`: ICE accepted the
    /// source. Nil (counted) when dropped; nil untouched for non-media.
    @inline(__always)
    func unprotect(_ buffer: UnsafeMutableRawBufferPointer, length: Int,
                   validated: Bool) -> (kind: PacketKind, length: Int)? {
        guard length >= 0, length <= buffer.count else {
            counters.malformedDatagrams += 1
            return nil
        }
        let packet = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<length])
        let kind = PacketKind.classify(UnsafeRawBufferPointer(packet))
        guard kind == .rtp || kind == .rtcp else { return nil }
        guard isLive, validated else {
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

    /// Protects RTP or RTCP in place; `buffer` has the profile's overhead spare.
    @inline(__always)
    func protect(in buffer: UnsafeMutableRawBufferPointer, length: Int, rtcp: Bool) throws(PeerSessionError) -> Int {
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

    /// Protects a copy of `packet` and queues it to the selected address.
    func send(_ packet: [UInt8], rtcp: Bool) throws(PeerSessionError) {
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

    /// Decrypts a copy of `datagram` and queues it as an `.rtp`/`.rtcp` event.
    func receiveMedia(_ datagram: UnsafeRawBufferPointer, validated: Bool) {
        if scratch.count < datagram.count { scratch = [UInt8](repeating: 0, count: datagram.count) }
        let result = scratch.withUnsafeMutableBytes { buffer -> (kind: PacketKind, length: Int)? in
            buffer.copyMemory(from: datagram)
            return unprotect(buffer, length: datagram.count, validated: validated)
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
}
