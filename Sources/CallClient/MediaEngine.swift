import DTLS
import Foundation
import ICE
import Logging
import NIOCore
import NIOPosix
import PeerSession
import RTCBase
import SDP

/// What the media side reports to the call's control flow.
enum MediaEvent: Sendable {
    case connected(publish: Bool)
    /// A transport failed or lost consent: the call cannot go on.
    case failed(publish: Bool, reason: String)
}

/// The IO edge of the call client: one NIO event loop owns both UDP
/// sockets, both `ClientTransport`s, the sender and the receiver, reads the
/// clock and drives every timer. The engines themselves are sans-IO.
///
/// Every stored property is touched only on `loop`; the public methods hop
/// there (hence `@unchecked Sendable`).
final class MediaEngine: @unchecked Sendable {
    enum LegID: Sendable { case publish, subscribe }

    /// One peer connection: its socket, ICE credentials, transport, timer.
    final class Leg {
        let id: LegID
        var channel: (any Channel)?
        var local: TransportAddress?
        let credentials: ICECredentials
        var transport: ClientTransport?
        var timer: Scheduled<Void>?
        var timerDeadline: NIODeadline?
        /// The last destination and its NIO form (one conversion per peer, not per packet).
        var cachedRemote: (TransportAddress, SocketAddress)?
        var stats = TransportStats()
        /// Binding requests in flight by transaction id (RFC 8489 §5): when
        /// sent, and whether it was sent more than once (Karn: a repeated
        /// request's answer says nothing about the RTT).
        var checks: [[UInt8]: (sentAt: Instant, repeated: Bool)] = [:]
        var iceRTT: Duration?

        init(id: LegID, credentials: ICECredentials) {
            self.id = id
            self.credentials = credentials
        }

        var name: String { id == .publish ? "publish" : "subscribe" }
    }

    let loop: any EventLoop
    let logger: Logger
    private let certificate: DTLSCertificate
    private let events: @Sendable (MediaEvent) -> Void
    private let publish: Leg
    private let subscribe: Leg
    let sender: MediaSender
    let receiver: MediaReceiver
    private var publishOffer: SessionDescription?
    private var subscribeVersion: UInt64 = 0
    private let sessionID: UInt64
    private var mediaTimer: Scheduled<Void>?
    private var rtcpTask: RepeatedTask?
    private var nextSenderReportAt: Instant?
    private var callStart: Instant?
    private var closed = false
    private(set) var subscribeOffers = 0
    /// Where media goes instead of the SFU's candidates (`mediaVia`).
    private let mediaVia: TransportAddress?

    private init(loop: any EventLoop, options: MediaOptions, mediaVia: TransportAddress?, logger: Logger,
                 events: @escaping @Sendable (MediaEvent) -> Void) throws {
        self.loop = loop
        self.mediaVia = mediaVia
        self.logger = logger
        self.events = events
        certificate = try DTLSCertificate(commonName: "parley-call")
        var rng = SystemRandomNumberGenerator()
        publish = Leg(id: .publish, credentials: ICECredentials.random(using: &rng))
        subscribe = Leg(id: .subscribe, credentials: ICECredentials.random(using: &rng))
        sessionID = UInt64.random(in: 1..<(1 << 62))
        let clock = NTPClock(ntpAtZero: Self.ntpAtZero())
        let cname = "parley-call-" + String(UInt32.random(in: 1...UInt32.max), radix: 16)
        sender = try MediaSender(options: options, cname: cname, clock: clock, seed: rng.next())
        receiver = MediaReceiver(rtcpSSRC: SSRC(UInt32.random(in: 1...UInt32.max)), cname: cname, clock: clock)
    }

    /// Binds the two media sockets on `localIP` (port 0 each) and returns
    /// the engine, ready to offer.
    static func start(loop: any EventLoop, localIP: String, options: MediaOptions,
                      mediaVia: TransportAddress? = nil, logger: Logger,
                      events: @escaping @Sendable (MediaEvent) -> Void) async throws -> MediaEngine {
        let engine = try MediaEngine(loop: loop, options: options, mediaVia: mediaVia, logger: logger, events: events)
        for id in [LegID.publish, .subscribe] {
            let channel = try await DatagramBootstrap(group: loop)
                .channelOption(.socketOption(.so_reuseaddr), value: 1)
                // A keyframe is a burst of ~50 datagrams; give the kernel room.
                .channelOption(.socketOption(.so_rcvbuf), value: 1 << 20)
                .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 2048))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(MediaDatagramHandler(engine: engine, leg: id))
                    }
                }
                .bind(host: localIP, port: 0).get()
            try await loop.submit { try engine.attach(channel, to: id) }.get()
        }
        try await loop.submit { engine.startRTCPTimer() }.get()
        return engine
    }

    /// The local address the kernel would use towards `host` (a connected
    /// UDP socket's name; nothing is sent).
    static func localAddress(towards host: String, port: Int, group: any EventLoopGroup) async throws -> String {
        let probe = try await DatagramBootstrap(group: group).connect(host: host, port: port).get()
        defer { probe.close(promise: nil) }
        guard let ip = probe.localAddress?.ipAddress else { throw CallClientError.media("no local address towards \(host)") }
        return ip
    }

    private func leg(_ id: LegID) -> Leg { id == .publish ? publish : subscribe }

    private func attach(_ channel: any Channel, to id: LegID) throws {
        let leg = leg(id)
        guard let address = channel.localAddress, let local = Self.transportAddress(address) else {
            throw CallClientError.media("socket has no local address")
        }
        leg.channel = channel
        leg.local = local
        logger.debug("media socket bound", metadata: ["leg": "\(leg.name)", "address": "\(local)"])
    }

    // MARK: Control (called from the call flow)

    func setCallStart(_ instant: Instant) async {
        try? await loop.submit { self.callStart = instant; self.receiver.callStartedAt = instant }.get()
    }

    /// The streams published, for `publish_track` labels.
    var publishedStreams: [PublishedStream] { sender.streams }

    func makePublishOffer() async throws -> String {
        try await loop.submit { try self.buildPublishOffer() }.get()
    }

    private func buildPublishOffer() throws -> String {
        let transport = try makeTransport(publish, dtlsClient: true)
        let local = localParameters(publish, transport: transport)
        let offer = PublishNegotiation.offer(streams: sender.streams, transport: local, cname: sender.cname,
                                             sessionID: sessionID)
        publishOffer = offer
        return offer.serialized()
    }

    func applyPublishAnswer(_ sdp: String) async throws {
        try await loop.submit { try self.publishAnswered(sdp) }.get()
    }

    private func publishAnswered(_ text: String) throws {
        guard let offer = publishOffer else { throw CallClientError.media("publish_answer without an offer") }
        let answer = try PublishNegotiation.readAnswer(SessionDescription(parsing: text), to: offer)
        if !answer.remote.weAreDTLSClient {
            // The SFU chose to be the DTLS client (we offered actpass):
            // nothing has been sent yet, so start over as the server.
            _ = try makeTransport(publish, dtlsClient: false)
        }
        guard let transport = publish.transport else { return }
        try apply(answer.remote, to: transport)
        sender.configure(answer)
        logger.info("publish answered", metadata: [
            "accepted": "\(answer.acceptedMids.map(\.rawValue))", "rtx": "\(answer.rtxMids.map(\.rawValue).sorted())",
            "candidates": "\(answer.remote.candidates.count)",
        ])
        drive(publish)
    }

    func answerSubscribeOffer(_ sdp: String) async throws -> String {
        try await loop.submit { try self.subscribeOffered(sdp) }.get()
    }

    private func subscribeOffered(_ text: String) throws -> String {
        let offer = try SessionDescription(parsing: text)
        subscribeVersion += 1
        subscribeOffers += 1
        let transport = try subscribe.transport ?? makeTransport(subscribe, dtlsClient: true)
        let negotiation = try SubscribeNegotiation(offer: offer, transport: localParameters(subscribe, transport: transport),
                                                   sessionID: sessionID &+ 1, sessionVersion: subscribeVersion)
        try apply(negotiation.remote, to: transport)
        receiver.configure(lines: negotiation.lines, now: Self.now())
        logger.info("subscribe offer answered", metadata: [
            "version": "\(subscribeVersion)",
            "active": "\(negotiation.lines.filter(\.isActive).map { "\($0.mid.rawValue):\($0.kind.rawValue)" })",
        ])
        drive(subscribe)
        return negotiation.answer.serialized()
    }

    func updateTracks(_ tracks: [TrackInfo]) async {
        try? await loop.submit { self.receiver.updateTracks(tracks) }.get()
    }

    private func makeTransport(_ leg: Leg, dtlsClient: Bool) throws -> ClientTransport {
        guard let local = leg.local else { throw CallClientError.media("\(leg.name) socket not bound") }
        let transport = try ClientTransport(configuration: PeerSessionConfiguration(
            iceRole: .client, dtlsRole: dtlsClient ? .client : .server, localCredentials: leg.credentials,
            localCandidates: [local], certificate: certificate))
        leg.transport = transport
        return transport
    }

    private func localParameters(_ leg: Leg, transport: ClientTransport) -> LocalTransportParameters {
        LocalTransportParameters(
            iceUfrag: leg.credentials.ufrag, icePassword: leg.credentials.password,
            fingerprint: Fingerprint(hashFunction: certificate.fingerprint.algorithm.rawValue,
                                     bytes: certificate.fingerprint.digest),
            candidates: LocalTransportParameters.candidateValues(transport.localCandidateDescriptions))
    }

    /// Remote credentials, fingerprint and candidates; a renegotiation with
    /// new credentials is an ICE restart (RFC 8445 §9), the rest is a no-op.
    private func apply(_ remote: RemoteTransportParameters, to transport: ClientTransport) throws {
        guard let algorithm = DTLSFingerprint.Algorithm(rawValue: remote.fingerprint.hashFunction) else {
            throw CallClientError.media("unsupported fingerprint hash \(remote.fingerprint.hashFunction)")
        }
        transport.setRemoteCredentials(remote.credentials)
        transport.setRemoteFingerprint(try DTLSFingerprint(algorithm: algorithm, digest: remote.fingerprint.bytes))
        if let mediaVia {
            transport.addRemoteCandidate(ICECandidate(foundation: "1", priority: ICECandidate.priority(type: .host),
                                                      address: mediaVia, type: .host))
            return
        }
        for c in remote.candidates { transport.addRemoteCandidate(c) }
    }

    // MARK: Datagrams

    func receive(_ envelope: AddressedEnvelope<ByteBuffer>, on id: LegID) {
        let leg = leg(id)
        guard let transport = leg.transport, let local = leg.local,
              let source = Self.transportAddress(envelope.remoteAddress) else { return }
        let now = Self.now()
        envelope.data.withUnsafeReadableBytes { bytes in
            if logger.logLevel <= .trace {
                logger.trace("in", metadata: ["leg": "\(leg.name)", "first": "\(bytes.first ?? 0)", "size": "\(bytes.count)"])
            }
            noteCheckResponse(bytes, leg: leg, now: now)
            transport.handleReceive(bytes, from: source, to: local, now: now)
        }
        drive(leg)
    }

    /// Drains a transport's events and datagrams, then re-arms its timer.
    private func drive(_ leg: Leg) {
        guard let transport = leg.transport, let channel = leg.channel, !closed else { return }
        let now = Self.now()
        while let event = transport.pollEvent() {
            switch event {
            case .rtp(let packet):
                if leg.id == .subscribe { receiver.handleRTP(packet, now: now) }
            case .rtcp(let packet):
                if leg.id == .publish {
                    for repair in sender.handleRTCP(packet, now: now) { try? transport.sendRTP(repair) }
                } else {
                    receiver.handleRTCP(packet, now: now)
                }
            case .iceConnected(let remote):
                leg.stats.iceConnectedMs = sinceStart(now)
                logger.info("ICE connected", metadata: ["leg": "\(leg.name)", "remote": "\(remote)"])
            case .connected(let profile):
                leg.stats.dtlsConnectedMs = sinceStart(now)
                logger.info("DTLS-SRTP connected", metadata: ["leg": "\(leg.name)", "profile": "\(profile)"])
                if leg.id == .publish {
                    sender.start(now: now)
                    nextSenderReportAt = now + .milliseconds(500)
                    scheduleMedia()
                }
                events(.connected(publish: leg.id == .publish))
            case .localCandidate:
                break  // no TURN servers configured: host candidates only
            case .disconnected(let reason):
                logger.warning("transport disconnected", metadata: ["leg": "\(leg.name)", "reason": "\(reason)"])
                events(.failed(publish: leg.id == .publish, reason: "\(reason)"))
            case .failed(let error):
                logger.error("transport failed", metadata: ["leg": "\(leg.name)", "error": "\(error)"])
                events(.failed(publish: leg.id == .publish, reason: "\(error)"))
            }
        }
        flush(leg, transport: transport, channel: channel, now: now)
        rearmTimer(leg)
    }

    private func flush(_ leg: Leg, transport: ClientTransport, channel: any Channel, now: Instant) {
        var wrote = false
        while let transmit = transport.pollTransmit() {
            guard let remote = socketAddress(leg, transmit.destination) else { continue }
            noteCheckRequest(transmit.payload, leg: leg, now: now)
            if logger.logLevel <= .trace {
                logger.trace("out", metadata: ["leg": "\(leg.name)", "first": "\(transmit.payload.first ?? 0)",
                                               "size": "\(transmit.payload.count)"])
            }
            channel.write(AddressedEnvelope(remoteAddress: remote, data: channel.allocator.buffer(bytes: transmit.payload)),
                          promise: nil)
            wrote = true
        }
        if wrote { channel.flush() }
    }

    private func rearmTimer(_ leg: Leg) {
        guard let transport = leg.transport, let deadline = transport.pollTimeout(), !closed else {
            leg.timer?.cancel()
            leg.timer = nil
            leg.timerDeadline = nil
            return
        }
        let nioDeadline = NIODeadline.uptimeNanoseconds(UInt64(max(deadline.nanoseconds, 0)))
        if let current = leg.timerDeadline, leg.timer != nil, current <= nioDeadline { return }
        leg.timer?.cancel()
        leg.timerDeadline = nioDeadline
        leg.timer = loop.scheduleTask(deadline: nioDeadline) { [weak self, weak leg] in
            guard let self, let leg else { return }
            leg.timer = nil
            leg.timerDeadline = nil
            leg.transport?.handleTimeout(now: Self.now())
            self.drive(leg)
        }
    }

    // MARK: Media and RTCP timers

    /// Encodes whatever is due, sends it, and sleeps until the next frame.
    ///
    /// Stops for good once the publish transport is no longer connected (a
    /// closed or failed transport never comes back): the sources' clocks
    /// stop with it, and a deadline left in the past would re-fire at once,
    /// forever, starving this loop's sockets (the signaling WebSocket too).
    private func scheduleMedia() {
        mediaTimer?.cancel()
        mediaTimer = nil
        guard !closed, publish.transport?.state == .connected, let next = sender.nextDeadline else { return }
        // Never in the past: a late loop catches up inside `produce`.
        let at = max(next, Self.now() + .microseconds(500))
        let deadline = NIODeadline.uptimeNanoseconds(UInt64(max(at.nanoseconds, 0)))
        mediaTimer = loop.scheduleTask(deadline: deadline) { [weak self] in
            guard let self, !self.closed, let transport = self.publish.transport, transport.state == .connected else {
                return
            }
            for packet in self.sender.produce(now: Self.now()) { try? transport.sendRTP(packet) }
            self.drive(self.publish)
            self.scheduleMedia()
        }
    }

    /// Every 20 ms: the receiver's NACK/PLI/RR, our SR once a second.
    private func startRTCPTimer() {
        rtcpTask = loop.scheduleRepeatedTask(initialDelay: .milliseconds(20), delay: .milliseconds(20)) { [weak self] _ in
            guard let self, !self.closed else { return }
            let now = Self.now()
            if let transport = self.subscribe.transport, transport.state == .connected {
                self.receiver.roundTrip = self.subscribe.iceRTT ?? self.sender.roundTrip
                if let rtcp = self.receiver.feedback(now: now) {
                    try? transport.sendRTCP(rtcp)
                    self.drive(self.subscribe)
                }
            }
            if let transport = self.publish.transport, transport.state == .connected,
               let due = self.nextSenderReportAt, now >= due {
                self.nextSenderReportAt = now + .seconds(1)
                if let sr = self.sender.senderReport(now: now) {
                    try? transport.sendRTCP(sr)
                    self.drive(self.publish)
                }
            }
        }
    }

    // MARK: ICE check RTT at the edge

    /// A Binding request (RFC 8489 §5: type 0x0001, magic cookie) leaving:
    /// its transaction id and time.
    private func noteCheckRequest(_ payload: [UInt8], leg: Leg, now: Instant) {
        guard payload.count >= 20, payload[0] == 0x00, payload[1] == 0x01, Self.hasMagicCookie(payload) else { return }
        let id = Array(payload[8..<20])
        if leg.checks[id] != nil {
            leg.checks[id]?.repeated = true
        } else {
            if leg.checks.count > 64 { leg.checks.removeAll() }
            leg.checks[id] = (now, false)
        }
    }

    /// A Binding success response (type 0x0101) arriving for a request we
    /// sent once: one RTT sample.
    private func noteCheckResponse(_ bytes: UnsafeRawBufferPointer, leg: Leg, now: Instant) {
        guard bytes.count >= 20, bytes[0] == 0x01, bytes[1] == 0x01,
              bytes[4] == 0x21, bytes[5] == 0x12, bytes[6] == 0xA4, bytes[7] == 0x42 else { return }
        let id = Array(bytes[8..<20])
        guard let check = leg.checks.removeValue(forKey: id), !check.repeated else { return }
        leg.iceRTT = now - check.sentAt
    }

    private static func hasMagicCookie(_ p: [UInt8]) -> Bool {
        p[4] == 0x21 && p[5] == 0x12 && p[6] == 0xA4 && p[7] == 0x42
    }

    // MARK: Reports and shutdown

    func report(user: String) async -> CallReport {
        (try? await loop.submit { self.snapshot(user: user) }.get()) ?? CallReport(user: user)
    }

    private func snapshot(user: String) -> CallReport {
        let now = Self.now()
        var r = CallReport(user: user)
        r.received = receiver.stats()
        r.receivedTotals = ReceiveTotals(r.received)
        r.sent = sender.stats(now: now)
        r.sentTotals = SendTotals(r.sent)
        r.publishTransport = transportStats(publish)
        r.subscribeTransport = transportStats(subscribe)
        let rtt = sender.roundTrip ?? publish.iceRTT ?? subscribe.iceRTT
        r.rttMs = rtt.map { Double($0.nanoseconds) / 1e6 }
        if let start = callStart {
            r.durationS = Double((now - start).nanoseconds) / 1e9
            r.timeToFirstFrameMs = receiver.firstFrame().map { Double(($0 - start).nanoseconds) / 1e6 }
            r.timeToFirstVideoFrameMs = receiver.firstFrame(kind: .video).map { Double(($0 - start).nanoseconds) / 1e6 }
            r.timeToFirstAudioFrameMs = receiver.firstFrame(kind: .audio).map { Double(($0 - start).nanoseconds) / 1e6 }
        }
        r.subscribeOffers = subscribeOffers
        return r
    }

    private func transportStats(_ leg: Leg) -> TransportStats {
        var s = leg.stats
        guard let t = leg.transport else { return s }
        switch t.state {
        case .checking: s.state = "checking"
        case .handshaking: s.state = "handshaking"
        case .connected: s.state = "connected"
        case .disconnected: s.state = "disconnected"
        case .failed: s.state = "failed"
        case .closed: s.state = "closed"
        }
        let c = t.counters
        s.packetsSent = c.rtpPacketsOut + c.rtcpPacketsOut
        s.packetsReceived = c.rtpPacketsIn + c.rtcpPacketsIn
        s.bytesSent = c.bytesOut
        s.bytesReceived = c.bytesIn
        s.srtpErrors = c.srtpAuthFailures + c.srtpReplays
        s.iceRTTMs = leg.iceRTT.map { Double($0.nanoseconds) / 1e6 }
        return s
    }

    /// DTLS close_notify on both transports (so the SFU need not wait for
    /// consent to expire, RFC 7675), then the sockets close.
    func close() async {
        try? await loop.submit { self.shutdown() }.get()
    }

    private func shutdown() {
        guard !closed else { return }
        let now = Self.now()
        for leg in [publish, subscribe] {
            if let transport = leg.transport, let channel = leg.channel {
                logger.debug("transport counters", metadata: ["leg": "\(leg.name)", "counters": "\(transport.counters)"])
                transport.close()
                flush(leg, transport: transport, channel: channel, now: now)
            }
        }
        closed = true
        mediaTimer?.cancel()
        rtcpTask?.cancel()
        for leg in [publish, subscribe] {
            leg.timer?.cancel()
            leg.channel?.close(promise: nil)
        }
    }

    private func sinceStart(_ now: Instant) -> Double? {
        callStart.map { Double((now - $0).nanoseconds) / 1e6 }
    }

    // MARK: Edge conversions

    /// The monotonic clock, as the engines see it.
    static func now() -> Instant {
        Instant(nanoseconds: Int64(clamping: NIODeadline.now().uptimeNanoseconds))
    }

    /// NTP (RFC 3550 §4) at `Instant.zero`: the wall clock now, minus the
    /// monotonic clock now, both in 32.32 fixed point.
    static func ntpAtZero() -> UInt64 {
        func fixed(_ ns: UInt64) -> UInt64 { (ns / 1_000_000_000) << 32 | (ns % 1_000_000_000) << 32 / 1_000_000_000 }
        let unixNs = UInt64(max(0, Date().timeIntervalSince1970) * 1e9)
        let ntpNs = unixNs + 2_208_988_800 * 1_000_000_000  // 1900 → 1970
        return fixed(ntpNs) &- fixed(NIODeadline.now().uptimeNanoseconds)
    }

    static func transportAddress(_ address: SocketAddress) -> TransportAddress? {
        guard let text = address.ipAddress, let ip = IPAddress(text), let port = address.port,
              let p = UInt16(exactly: port) else { return nil }
        return TransportAddress(ip: ip, port: p)
    }

    private func socketAddress(_ leg: Leg, _ address: TransportAddress) -> SocketAddress? {
        if let cached = leg.cachedRemote, cached.0 == address { return cached.1 }
        guard let s = try? SocketAddress(ipAddress: address.ip.description, port: Int(address.port)) else { return nil }
        leg.cachedRemote = (address, s)
        return s
    }
}

/// Hands each datagram of one media socket to the engine (on its loop).
final class MediaDatagramHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    let engine: MediaEngine
    let leg: MediaEngine.LegID

    init(engine: MediaEngine, leg: MediaEngine.LegID) {
        self.engine = engine
        self.leg = leg
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        engine.receive(unwrapInboundIn(data), on: leg)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // ICMP port unreachable and the like: UDP goes on.
        engine.logger.debug("media socket error: \(error)")
    }
}
