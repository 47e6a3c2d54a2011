import COpenSSL
import RTCBase

/// One DTLS 1.2 association carrying DTLS-SRTP keying (RFC 6347, RFC 5764),
/// sans-IO: datagrams in through `handleReceive`, out through `pollTransmit`,
/// time in as `now`.
///
/// OpenSSL does the protocol over two memory BIOs. Two things are the
/// engine's own:
///
/// * **Datagram boundaries.** OpenSSL 3.0 has no datagram memory BIO, so the
///   engine feeds one datagram at a time and cuts OpenSSL's output back into
///   datagrams of at most `mtu` bytes on record boundaries.
/// * **Retransmission timing.** OpenSSL's DTLS timer reads the real clock, but
///   engines run on `now`. A timer callback that always expires makes OpenSSL
///   retransmit on every read attempt until it gives up ("read timeout
///   expired"), so instead the callback lets the timer expire right after each
///   new flight only long enough for OpenSSL to produce `maximumRetransmissions`
///   copies of the flight (each with fresh record sequence numbers, RFC 6347
///   §4.2.4), then parks it an hour out. The engine holds those copies back and
///   sends one each time its own RFC 6347 §4.2.4.1 schedule fires (1 s,
///   doubling to 60 s). Responding to a peer's retransmitted final flight stays
///   with OpenSSL, which does it on receipt, not on a timer.
public final class DTLSConnection {
    public let role: DTLSRole
    public let mtu: Int
    public let configuration: DTLSConfiguration
    /// The peer's `a=fingerprint`, when signalling has delivered it.
    public private(set) var remoteFingerprint: DTLSFingerprint?
    /// Datagrams dropped before OpenSSL because they were not whole DTLS records.
    public private(set) var malformedDatagrams = 0
    /// The SRTP keys, once `.connected` has been emitted.
    public private(set) var srtpKeys: DTLSSRTPKeys?

    enum Phase { case idle, handshaking, awaitingFingerprint, connected, closed, failed }
    private(set) var phase: Phase = .idle

    public var isConnected: Bool { phase == .connected }
    /// True once the handshake ended in any way (closed or failed).
    public var isTerminated: Bool { phase == .closed || phase == .failed }

    private let certificate: DTLSCertificate
    private let ssl: OpaquePointer
    private let readBIO: OpaquePointer
    private let writeBIO: OpaquePointer
    private let hook: RetransmitHook

    private var outgoing: [[UInt8]] = []
    private var outgoingHead = 0
    private var events: [DTLSEvent] = []
    private var eventsHead = 0

    /// Held-back retransmissions of the current flight, oldest first.
    private var spareFlights: [[[UInt8]]] = []
    private var retransmitDeadline: Instant?
    private var retransmitTimeout: Duration
    private var retransmissions = 0

    /// Application data that arrived before the fingerprint was checked.
    private var earlyApplicationData: [[UInt8]] = []
    private var earlyApplicationDataBytes = 0
    private static let earlyApplicationDataLimit = 65_536

    private var scratch = [UInt8](repeating: 0, count: 16_384 + 2_048)

    public init(
        role: DTLSRole,
        certificate: DTLSCertificate,
        remoteFingerprint: DTLSFingerprint? = nil,
        mtu: Int = 1200,
        configuration: DTLSConfiguration = DTLSConfiguration()
    ) throws(DTLSError) {
        // OpenSSL refuses link MTUs below 256 (dtls1_link_min_mtu).
        guard mtu >= 256, mtu <= 65_507 else { throw .invalidInput }
        let context = try certificate.context(srtpProfiles: configuration.srtpProfiles)
        guard let ssl = SSL_new(context) else { throw .certificateGenerationFailed }
        guard let readBIO = BIO_new(BIO_s_mem()), let writeBIO = BIO_new(BIO_s_mem()) else {
            SSL_free(ssl)
            throw .certificateGenerationFailed
        }
        SSL_set_bio(ssl, readBIO, writeBIO) // the SSL owns both BIOs from here
        _ = SSL_set_options(ssl, shim_SSL_OP_NO_QUERY_MTU)
        guard shim_DTLS_set_link_mtu(ssl, mtu) == 1 else {
            SSL_free(ssl)
            throw .invalidInput
        }
        self.role = role
        self.mtu = mtu
        self.configuration = configuration
        self.remoteFingerprint = remoteFingerprint
        self.certificate = certificate
        self.ssl = ssl
        self.readBIO = readBIO
        self.writeBIO = writeBIO
        self.hook = RetransmitHook(spareTarget: min(max(configuration.maximumRetransmissions, 0), 10))
        self.retransmitTimeout = configuration.initialRetransmitTimeout
        SSL_set_ex_data(ssl, 0, Unmanaged.passUnretained(hook).toOpaque())
        DTLS_set_timer_cb(ssl, dtlsTimerCallback)
        switch role {
        case .client: SSL_set_connect_state(ssl)
        case .server: SSL_set_accept_state(ssl)
        }
    }

    deinit {
        SSL_set_ex_data(ssl, 0, nil)
        SSL_free(ssl) // frees both BIOs and drops its reference on the SSL_CTX
    }

    // MARK: Driving

    /// Begins the handshake. The client sends its ClientHello (flight 1,
    /// RFC 6347 §4.2.4); for the server this only marks it ready, as it
    /// waits for the client.
    public func start(now: Instant) {
        guard phase == .idle else { return }
        phase = .handshaking
        if role == .client { advance(now: now) }
    }

    public func handleReceive(_ datagram: [UInt8], now: Instant) {
        datagram.withUnsafeBytes { handleReceive($0, now: now) }
    }

    public func handleReceive(_ datagram: UnsafeRawBufferPointer, now: Instant) {
        switch phase {
        case .closed, .failed: return
        case .idle:
            // A client speaks first (RFC 6347 §4.2.1); a server starts on the ClientHello.
            guard role == .server else { return }
        case .handshaking, .awaitingFingerprint, .connected: break
        }
        guard DTLSRecordFraming.isWellFormed(datagram), let base = datagram.baseAddress else {
            malformedDatagrams += 1
            return
        }
        if phase == .idle { phase = .handshaking }
        // One datagram at a time, so OpenSSL's record layer sees exactly one.
        guard BIO_write(readBIO, base, Int32(datagram.count)) == Int32(datagram.count) else { return }
        advance(now: now)
        // Whatever OpenSSL did not consume must not glue onto the next datagram.
        if shim_BIO_ctrl_pending(readBIO) > 0 { _ = BIO_ctrl(readBIO, BIO_CTRL_RESET, 0, nil) }
    }

    /// Retransmits the current flight when the engine's own timer expires.
    public func handleTimeout(now: Instant) {
        guard phase == .handshaking, let deadline = retransmitDeadline, now >= deadline else { return }
        // No timer running in OpenSSL: the peer's flight answered ours.
        guard shim_DTLS_get_timeout_ms(ssl) >= 0 else {
            retransmitDeadline = nil
            spareFlights.removeAll()
            return
        }
        guard retransmissions < configuration.maximumRetransmissions else {
            fail(.handshakeTimeout)
            return
        }
        if !spareFlights.isEmpty {
            let copy = spareFlights.removeFirst()
            for datagram in copy { outgoing.append(datagram) }
        }
        retransmissions += 1
        // RFC 6347 §4.2.4.1: double the timer on each retransmission, up to the ceiling.
        retransmitTimeout = min(retransmitTimeout * 2, configuration.maximumRetransmitTimeout)
        retransmitDeadline = now + retransmitTimeout
    }

    public func pollTransmit() -> [UInt8]? {
        guard outgoingHead < outgoing.count else { return nil }
        let datagram = outgoing[outgoingHead]
        outgoing[outgoingHead] = []
        outgoingHead += 1
        if outgoingHead == outgoing.count {
            outgoing.removeAll(keepingCapacity: true)
            outgoingHead = 0
        }
        return datagram
    }

    public func pollEvent() -> DTLSEvent? {
        guard eventsHead < events.count else { return nil }
        let event = events[eventsHead]
        eventsHead += 1
        if eventsHead == events.count {
            events.removeAll(keepingCapacity: true)
            eventsHead = 0
        }
        return event
    }

    public func pollTimeout() -> Instant? {
        phase == .handshaking ? retransmitDeadline : nil
    }

    /// Supplies the peer's fingerprint from SDP; may come before or after the
    /// handshake completes. Keys are emitted only once it is known and matches.
    public func setRemoteFingerprint(_ fingerprint: DTLSFingerprint) {
        guard phase != .connected, !isTerminated else { return }
        remoteFingerprint = fingerprint
        verifyPeerIfPossible()
    }

    /// Sends application data (for data channels: SCTP packets, RFC 8261)
    /// as one record; it must fit one datagram.
    public func send(applicationData: [UInt8]) throws(DTLSError) {
        guard phase == .connected else { throw .notConnected }
        guard !applicationData.isEmpty else { return }
        guard applicationData.count <= maximumApplicationDataSize else { throw .invalidInput }
        ERR_clear_error()
        let written = applicationData.withUnsafeBytes { SSL_write(ssl, $0.baseAddress, Int32($0.count)) }
        if written <= 0 {
            let error = DTLSError.connectionFailed(reason: Self.openSSLReason(SSL_get_error(ssl, written)))
            fail(error)
            drainOutput(now: nil)
            throw error
        }
        drainOutput(now: nil)
    }

    /// The largest `send(applicationData:)` that fits one datagram.
    public var maximumApplicationDataSize: Int {
        let size = Int(DTLS_get_data_mtu(ssl))
        return size > 0 ? size : mtu - 64
    }

    /// Sends close_notify (RFC 5246 §7.2.1) and stops. No event is emitted
    /// for a close the owner asked for.
    public func close() {
        guard !isTerminated else { return }
        if phase != .idle {
            ERR_clear_error()
            _ = SSL_shutdown(ssl)
            ERR_clear_error()
            drainOutput(now: nil)
        }
        phase = .closed
        retransmitDeadline = nil
        spareFlights.removeAll()
    }

    /// The SHA-256 fingerprint of the certificate the peer presented, once
    /// the handshake has completed.
    public var peerCertificateFingerprint: DTLSFingerprint? {
        guard phase == .awaitingFingerprint || phase == .connected,
              let peer = SSL_get1_peer_certificate(ssl) else { return nil }
        defer { X509_free(peer) }
        return DTLSFingerprint.of(x509: peer, algorithm: .sha256)
    }

    // MARK: Internals

    private func advance(now: Instant) {
        ERR_clear_error()
        if phase == .handshaking {
            let result = SSL_do_handshake(ssl)
            if result == 1 {
                handshakeCompleted()
            } else {
                let code = SSL_get_error(ssl, result)
                if code != SSL_ERROR_WANT_READ, code != SSL_ERROR_WANT_WRITE {
                    fail(.handshakeFailed(reason: Self.openSSLReason(code)))
                }
            }
        }
        // Also right after completion: the side that sent the last flight
        // must keep reading to answer a retransmitted final flight from the
        // peer (RFC 6347 §4.2.4), and a first read lets OpenSSL's parked timer
        // settle while no other output is pending.
        if phase == .awaitingFingerprint || phase == .connected { readApplicationData() }
        drainOutput(now: now)
    }

    private func handshakeCompleted() {
        phase = .awaitingFingerprint
        retransmitDeadline = nil
        spareFlights.removeAll()
        // RFC 5764 §4.1.2: without an agreed profile there is nothing to key.
        guard let selected = SSL_get_selected_srtp_profile(ssl),
              let profile = DTLSSRTPProfile(id: UInt16(truncatingIfNeeded: selected.pointee.id)),
              configuration.srtpProfiles.contains(profile)
        else {
            fail(.srtpNegotiationFailed)
            return
        }
        verifyPeerIfPossible()
    }

    private func verifyPeerIfPossible() {
        guard phase == .awaitingFingerprint, let expected = remoteFingerprint else { return }
        guard let peer = SSL_get1_peer_certificate(ssl) else {
            fail(.peerCertificateMissing)
            return
        }
        let actual = DTLSFingerprint.of(x509: peer, algorithm: expected.algorithm)
        X509_free(peer)
        // RFC 8122 §5 / RFC 5763 §5: the certificate must match the signalled fingerprint.
        guard let actual, actual == expected else {
            fail(.fingerprintMismatch)
            return
        }
        guard let keys = exportSRTPKeys() else {
            fail(.srtpNegotiationFailed)
            return
        }
        srtpKeys = keys
        phase = .connected
        events.append(.connected(keys))
        for data in earlyApplicationData { events.append(.applicationData(data)) }
        earlyApplicationData.removeAll()
        earlyApplicationDataBytes = 0
    }

    /// RFC 5764 §4.2: the exporter (RFC 5705) with label "EXTRACTOR-dtls_srtp"
    /// and no context yields client key | server key | client salt | server salt.
    private func exportSRTPKeys() -> DTLSSRTPKeys? {
        guard let selected = SSL_get_selected_srtp_profile(ssl),
              let profile = DTLSSRTPProfile(id: UInt16(truncatingIfNeeded: selected.pointee.id))
        else { return nil }
        let keyLength = profile.masterKeyLength
        let saltLength = profile.masterSaltLength
        let total = 2 * (keyLength + saltLength)
        var material = [UInt8](repeating: 0, count: total)
        let label = "EXTRACTOR-dtls_srtp"
        let ok = SSL_export_keying_material(ssl, &material, total, label, label.utf8.count, nil, 0, 0)
        guard ok == 1 else {
            ERR_clear_error()
            return nil
        }
        let clientKey = Array(material[0..<keyLength])
        let serverKey = Array(material[keyLength..<2 * keyLength])
        let clientSalt = Array(material[2 * keyLength..<2 * keyLength + saltLength])
        let serverSalt = Array(material[2 * keyLength + saltLength..<total])
        // Wipe the local copy; the keys live on in the returned struct only.
        for i in material.indices { material[i] = 0 }
        switch role {
        case .client:
            return DTLSSRTPKeys(profile: profile, localMasterKey: clientKey, localMasterSalt: clientSalt,
                                remoteMasterKey: serverKey, remoteMasterSalt: serverSalt)
        case .server:
            return DTLSSRTPKeys(profile: profile, localMasterKey: serverKey, localMasterSalt: serverSalt,
                                remoteMasterKey: clientKey, remoteMasterSalt: clientSalt)
        }
    }

    private func readApplicationData() {
        while phase == .awaitingFingerprint || phase == .connected {
            let count = scratch.withUnsafeMutableBytes { SSL_read(ssl, $0.baseAddress, Int32($0.count)) }
            if count > 0 {
                let data = Array(scratch[0..<Int(count)])
                if phase == .connected {
                    events.append(.applicationData(data))
                } else if earlyApplicationDataBytes + data.count <= Self.earlyApplicationDataLimit {
                    earlyApplicationDataBytes += data.count
                    earlyApplicationData.append(data)
                }
                continue
            }
            let code = SSL_get_error(ssl, count)
            switch code {
            case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
                return
            case SSL_ERROR_ZERO_RETURN:
                // close_notify from the peer.
                phase = .closed
                events.append(.closed)
                return
            default:
                fail(.connectionFailed(reason: Self.openSSLReason(code)))
                return
            }
        }
    }

    /// Moves everything OpenSSL wrote into datagrams. Output after a spare
    /// mark (see `RetransmitHook`) is a held-back retransmission copy;
    /// a flight mark restarts the retransmission schedule.
    private func drainOutput(now: Instant?) {
        var output: [UInt8] = []
        while shim_BIO_ctrl_pending(writeBIO) > 0 {
            let count = scratch.withUnsafeMutableBytes { BIO_read(writeBIO, $0.baseAddress, Int32($0.count)) }
            if count <= 0 { break }
            output.append(contentsOf: scratch[0..<Int(count)])
        }
        let marks = hook.marks
        hook.marks.removeAll(keepingCapacity: true)
        guard !output.isEmpty || !marks.isEmpty else { return }

        var cursor = 0
        var segmentIsSpare = false
        func emit(upTo end: Int) {
            let end = min(max(end, cursor), output.count)
            if end > cursor {
                if segmentIsSpare {
                    if phase == .handshaking {
                        var copy: [[UInt8]] = []
                        DTLSRecordFraming.pack(output, cursor..<end, mtu: mtu, into: &copy)
                        spareFlights.append(copy)
                    }
                } else {
                    DTLSRecordFraming.pack(output, cursor..<end, mtu: mtu, into: &outgoing)
                }
            }
            cursor = end
        }
        for mark in marks {
            emit(upTo: mark.offset)
            segmentIsSpare = mark.isSpare
            if !mark.isSpare, phase == .handshaking, let now {
                // A new flight: its retransmission schedule starts now (RFC 6347 §4.2.4.1).
                spareFlights.removeAll()
                retransmissions = 0
                retransmitTimeout = configuration.initialRetransmitTimeout
                retransmitDeadline = now + retransmitTimeout
            }
        }
        emit(upTo: output.count)
    }

    private func fail(_ error: DTLSError) {
        guard !isTerminated else { return }
        phase = .failed
        retransmitDeadline = nil
        spareFlights.removeAll()
        earlyApplicationData.removeAll()
        events.append(.failed(error))
    }

    /// The first OpenSSL error on the queue as text, captured once at failure.
    private static func openSSLReason(_ sslError: Int32) -> String {
        let code = ERR_get_error()
        ERR_clear_error()
        if code != 0, let text = ERR_reason_error_string(code) {
            return String(cString: text)
        }
        return "SSL error \(sslError)"
    }
}

/// State OpenSSL's timer callback shares with the engine (through SSL ex_data
/// slot 0): where in the write BIO each new flight and each retransmitted copy
/// begins, and how many copies this flight has produced.
final class RetransmitHook {
    struct Mark {
        var offset: Int
        var isSpare: Bool
    }

    var marks: [Mark] = []
    var sparesThisFlight = 0
    let spareTarget: Int

    init(spareTarget: Int) { self.spareTarget = spareTarget }
}

/// An hour, in microseconds: a timer parked so far out it never expires during a handshake.
private let parkedTimerMicroseconds: UInt32 = 3_600_000_000
/// Already expired by the time OpenSSL looks (it treats < 15 ms left as expired).
private let expiredTimerMicroseconds: UInt32 = 1

/// OpenSSL calls this with 0 when it starts the timer for a new flight, and
/// with the previous value each time the timer has expired and it is about to
/// retransmit. The return value is the timer's next duration.
private func dtlsTimerCallback(_ ssl: OpaquePointer?, _ previous: UInt32) -> UInt32 {
    guard let ssl, let raw = SSL_get_ex_data(ssl, 0) else { return parkedTimerMicroseconds }
    let hook = Unmanaged<RetransmitHook>.fromOpaque(raw).takeUnretainedValue()
    let offset = Int(shim_BIO_ctrl_pending(SSL_get_wbio(ssl)))
    if previous == 0 {
        hook.marks.append(.init(offset: offset, isSpare: false))
        hook.sparesThisFlight = 0
        return hook.spareTarget == 0 ? parkedTimerMicroseconds : expiredTimerMicroseconds
    }
    hook.marks.append(.init(offset: offset, isSpare: true))
    hook.sparesThisFlight += 1
    // After the handshake the side with the last flight only answers the
    // peer's retransmissions (OpenSSL does that on receipt), so one copy ends it.
    if hook.sparesThisFlight >= hook.spareTarget || SSL_is_init_finished(ssl) == 1 {
        return parkedTimerMicroseconds
    }
    return expiredTimerMicroseconds
}
