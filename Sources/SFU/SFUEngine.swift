import DTLS
import ICE
import PeerSession
import RTCBase
import RTP
import SDP
import SRTP
import STUN

/// The selective forwarding unit of one media worker, sans-IO.
///
/// Signaling drives rooms with `join`, `publish`, `subscribeAnswer`,
/// `updateTrack` and `leave`, and drains `pollEvent()` for subscribe offers,
/// track lists and transport state. The IO edge feeds every datagram of the
/// media port to `handleDatagram` (in its receive buffer, which the engine
/// decrypts in place), calls `handleTimeout` at `pollTimeout()`, and gives
/// both an `SFUOutput` that writes straight into its send queue.
///
/// Demultiplexing (RFC 7983): a datagram from a known address goes to the
/// session that address reached; STUN from a new address is matched by the
/// first half of its USERNAME (our ufrag, RFC 8445 §7.2.2), and the address
/// is learned once the check validates. Forwarding rewrites each packet for
/// each subscriber into the send queue and protects it there: no allocation
/// per forwarded packet.
public final class SFUEngine {
    public let configuration: SFUConfiguration
    public internal(set) var counters = SFUCounters()

    var rooms: [RoomID: Room] = [:]
    private var sessionsByUfrag: [String: Session] = [:]
    private var sessionsByAddress: [TransportAddress: Session] = [:]
    var rng: SplitMix64
    private var events = PollQueue<SFUEvent>()
    private var nextTrackNumber = 1
    let fingerprint: Fingerprint
    /// Rebuilds an RTX packet as its original here (no allocation).
    private let scratch: UnsafeMutableRawBufferPointer
    /// Receives the media of recorded rooms (set by the IO edge).
    public var recorder: (any SFURecordingSink)?
    private var recordingRooms: Set<RoomID> = []
    /// When the periodic work (NACKs, feedback, reports) runs next.
    private var nextTick: Instant?
    static let tick: Duration = .milliseconds(20)

    public init(configuration: SFUConfiguration) {
        self.configuration = configuration
        rng = SplitMix64(seed: configuration.seed)
        let fp = configuration.certificate.fingerprint
        fingerprint = Fingerprint(hashFunction: fp.algorithm.rawValue, bytes: fp.digest)
        scratch = .allocate(byteCount: 2048, alignment: 16)
    }

    deinit { scratch.deallocate() }

    // MARK: - Events

    public func pollEvent() -> SFUEvent? { events.poll() }

    func emit(_ event: SFUEvent) { events.append(event) }

    // MARK: - Rooms

    /// Adds a participant to a room (made on first join). Joining again is a no-op.
    public func join(room id: RoomID, participant: ParticipantID, user: String) {
        let room = rooms[id] ?? Room(id: id)
        rooms[id] = room
        guard room.participant(participant) == nil else { return }
        let p = Participant(id: participant, user: user, room: id)
        room.participants.append(p)
        // Everything already published is for the newcomer to receive.
        p.needsOffer = true
        offerIfNeeded(p, in: room)
    }

    /// Removes a participant: its transports close (DTLS close_notify), its
    /// tracks leave every other subscriber's offer, and they get new offers.
    public func leave(room id: RoomID, participant: ParticipantID, output: inout some SFUOutput) {
        guard let room = rooms[id], let p = room.participant(participant) else { return }
        room.participants.removeAll { $0 === p }
        for s in p.sessions { endSession(s, output: &output) }
        // Streams this participant received: detach from their tracks.
        for case let stream? in p.lineStreams { stream.track.streams.removeAll { $0 === stream } }
        p.lineStreams = []
        p.streamBySSRC = [:]
        let tracks = p.tracks
        p.tracks = []
        p.sourceBySSRC = [:]
        for t in tracks { detach(t, in: room) }
        if room.participants.isEmpty {
            rooms[id] = nil
        } else if !tracks.isEmpty {
            for other in room.participants { offerIfNeeded(other, in: room) }
        }
    }

    /// Ends a room: every participant leaves.
    public func closeRoom(_ id: RoomID, output: inout some SFUOutput) {
        if recordingRooms.remove(id) != nil { recorder?.finish(room: id) }
        guard let room = rooms[id] else { return }
        for p in room.participants { leave(room: id, participant: p.id, output: &output) }
        rooms[id] = nil
    }

    /// Starts or stops handing the room's media to `recorder`. The room
    /// need not exist yet (a call recorded from its start).
    public func setRecording(room id: RoomID, enabled: Bool, output: inout some SFUOutput) throws(SFUError) {
        guard let recorder else { throw .recording("no recorder is configured (--record-dir)") }
        if enabled {
            guard recordingRooms.insert(id).inserted else { return }
            // Video files start at a keyframe: the cached last one when it is
            // there, and a fresh one asked for either way (publishers send
            // keyframes only when asked).
            for p in rooms[id]?.participants ?? [] {
                for t in p.tracks where t.kind == .video {
                    recordFromCache(t)
                    requestKeyframe(t, layer: t.preferredLayer, now: nil, output: &output)
                }
            }
        } else if recordingRooms.remove(id) != nil {
            recorder.finish(room: id)
        }
    }

    /// Hands the recorder a video track's packets from its last keyframe on, from the cache.
    private func recordFromCache(_ track: PublishedTrack) {
        let layer = track.layers[track.preferredLayer]
        guard let recorder, let (cache, first, count) = layer.runSinceKeyframe(), let at = layer.lastPacketAt else { return }
        for i in 0..<count {
            guard let packet = cache.packet(first &+ UInt16(i)) else { continue }
            recorder.packet(room: track.owner.room, track: track.id, kind: track.kind.rawValue, user: track.owner.user,
                            source: track.source, bytes: packet, arrival: at)
        }
    }

    public func isRecording(_ room: RoomID) -> Bool { recordingRooms.contains(room) }

    /// Takes a track that ends off every subscriber: its lines go inactive
    /// at the next offer, which each subscriber now needs.
    func detach(_ track: PublishedTrack, in room: Room) {
        for stream in track.streams { stream.negotiated = false }
        track.streams = []
        for p in room.participants {
            for (i, stream) in p.lineStreams.enumerated() where stream?.track === track {
                p.lineStreams[i] = nil
                p.layout.remove(track.id)
                if let stream {
                    p.streamBySSRC[stream.ssrc.rawValue] = nil
                    p.streamBySSRC[stream.rtxSSRC.rawValue] = nil
                }
                p.needsOffer = true
            }
        }
    }

    public var roomCount: Int { rooms.count }
    public var sessionCount: Int { sessionsByUfrag.count }

    func participant(_ room: RoomID, _ id: ParticipantID) throws(SFUError) -> (Room, Participant) {
        guard let r = rooms[room] else { throw .unknownRoom }
        guard let p = r.participant(id) else { throw .unknownParticipant }
        return (r, p)
    }

    /// Tracks `participant` receives: everyone else's, with their mids.
    public func tracks(room: RoomID, participant: ParticipantID) -> [TrackInfo] {
        guard let r = rooms[room], let p = r.participant(participant) else { return [] }
        return trackInfos(for: p)
    }

    func trackInfos(for p: Participant) -> [TrackInfo] {
        p.lineStreams.compactMap { stream -> TrackInfo? in
            guard let s = stream else { return nil }
            let t = s.track
            return TrackInfo(trackID: t.id, user: t.owner.user, participant: t.owner.id, kind: t.kind.rawValue,
                             source: t.source, muted: t.muted, mid: s.mid.rawValue, streamID: t.streamID,
                             msidTrackID: t.id)
        }
    }

    func makeTrackID() -> String {
        defer { nextTrackNumber += 1 }
        return "t\(nextTrackNumber)"
    }

    // MARK: - Sessions

    func makeSession(role: TransportRole, for p: Participant, dtlsRole: DTLSRole, remote: ICECredentials?,
                     remoteFingerprint: DTLSFingerprint?, local: ICECredentials?) throws(SFUError) -> Session {
        let local = local ?? ICECredentials.random(using: &rng)
        var config = PeerSessionConfiguration(
            iceRole: .server, dtlsRole: dtlsRole, localCredentials: local, certificate: configuration.certificate,
            remoteCredentials: remote, remoteFingerprint: remoteFingerprint)
        config.iceLite = ICELiteAgent.Configuration(consentTimeout: configuration.consentTimeout)
        let transport: ServerTransport
        do {
            transport = try ServerTransport(configuration: config)
        } catch {
            throw .transport("\(error)")
        }
        let session = Session(role: role, transport: transport, participant: p, rtcpSSRC: SSRC(UInt32(truncatingIfNeeded: rng.next())),
                              burst: 2 * configuration.rtcpRatePerSecond)
        session.remoteCredentials = remote
        sessionsByUfrag[local.ufrag] = session
        counters.transportsOpened += 1
        return session
    }

    /// New local ICE credentials for `session` (an ICE restart).
    func restartICE(_ session: Session, remote: ICECredentials) {
        sessionsByUfrag[session.localUfrag] = nil
        let local = ICECredentials.random(using: &rng)
        session.transport.restartICE(local: local, remote: remote)
        sessionsByUfrag[local.ufrag] = session
    }

    /// Replaces a session's transport (a DTLS role the first offer guessed wrong).
    func replaceTransport(_ session: Session, dtlsRole: DTLSRole, remote: ICECredentials,
                          remoteFingerprint: DTLSFingerprint) throws(SFUError) {
        var config = session.transport.configuration
        config.dtlsRole = dtlsRole
        config.remoteCredentials = remote
        config.remoteFingerprint = remoteFingerprint
        do {
            session.transport = try ServerTransport(configuration: config)
        } catch {
            throw .transport("\(error)")
        }
        for a in session.addresses { sessionsByAddress[a] = nil }
        session.addresses = []
        session.deadline = nil
    }

    func endSession(_ session: Session, output: inout some SFUOutput) {
        guard !session.ended else { return }
        session.ended = true
        session.transport.close()
        drain(session, output: &output)
        account(session)
        sessionsByUfrag[session.localUfrag] = nil
        for a in session.addresses where sessionsByAddress[a] === session { sessionsByAddress[a] = nil }
        session.addresses = []
        counters.transportsClosed += 1
    }

    /// Adds what the transport counted since last time to the engine's totals.
    func account(_ session: Session) {
        let c = session.transport.counters
        counters.srtpAuthFailures += c.srtpAuthFailures - session.reported.srtpAuthFailures
        counters.srtpReplays += c.srtpReplays - session.reported.srtpReplays
        counters.unknownSource += c.unvalidatedSourceDrops - session.reported.unvalidatedSourceDrops
        counters.malformedRTP += c.malformedDatagrams - session.reported.malformedDatagrams
        session.reported = c
    }

    /// Sends what the transport queued (DTLS flights, error answers) and
    /// handles its events.
    func drain(_ session: Session, output: inout some SFUOutput) {
        while let t = session.transport.pollTransmit() { output.send(t.payload, to: t.destination) }
        while let e = session.transport.pollEvent() { handle(e, of: session, output: &output) }
        session.deadline = session.transport.pollTimeout()
    }

    private func handle(_ event: PeerSessionEvent, of session: Session, output: inout some SFUOutput) {
        let p = session.participant
        switch event {
        case .iceConnected:
            break
        case .connected:
            session.wasConnected = true
            emit(.connected(room: p.room, participant: p.id, role: session.role))
            if session.role == .subscribe {
                // Every stream starts at a keyframe: the source's last one
                // from the cache when it is there, else a fresh one.
                for case let stream? in p.lineStreams where stream.track.kind == .video && stream.negotiated {
                    stream.needsKeyframe = true
                    if !startFromCache(stream, output: &output) {
                        requestKeyframe(stream.track, layer: stream.layerIndex, now: nil, output: &output)
                    }
                }
            }
        case .disconnected(let reason):
            if reason == .consentExpired { counters.consentLost += 1 }
            emit(.disconnected(room: p.room, participant: p.id, role: session.role,
                               reason: reason == .consentExpired ? "consent_lost" : "dtls_closed"))
        case .failed(let error):
            emit(.disconnected(room: p.room, participant: p.id, role: session.role, reason: "failed: \(error)"))
        case .rtp, .rtcp, .localCandidate:
            break
        }
    }

    // MARK: - Datagrams

    /// One datagram from `source`, in a buffer the engine may change (SRTP
    /// is decrypted in place).
    ///
    /// `mapped`: the address a Binding answer reports when `source` is not
    /// the peer's real one (the IO edge names ICE-TCP connections apart).
    public func handleDatagram(_ buffer: UnsafeMutableRawBufferPointer, from source: TransportAddress,
                               mapped: TransportAddress? = nil, now: Instant, output: inout some SFUOutput) {
        counters.datagramsIn += 1
        if nextTick == nil { nextTick = now + Self.tick }
        let packet = UnsafeRawBufferPointer(buffer)
        switch PacketKind.classify(packet) {
        case .stun:
            receiveSTUN(packet, from: source, mapped: mapped ?? source, now: now, output: &output)
        case .dtls:
            guard let session = sessionsByAddress[source] else {
                counters.unknownSource += 1
                return
            }
            session.transport.receiveDTLS(packet, from: source, now: now)
            drain(session, output: &output)
        case .rtp, .rtcp:
            guard let session = sessionsByAddress[source] else {
                counters.unknownSource += 1
                return
            }
            guard let (kind, length) = session.transport.unprotect(buffer, length: buffer.count, from: source) else {
                account(session)
                return
            }
            let plain = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<length])
            if kind == .rtp {
                counters.rtpIn += 1
                if session.role == .publish {
                    receivePublisherRTP(plain, from: session.participant, now: now, output: &output)
                } else {
                    counters.unknownSSRC += 1  // subscribers send no media
                }
            } else {
                counters.rtcpIn += 1
                guard allowRTCP(session, now: now) else {
                    counters.rtcpRateLimited += 1
                    return
                }
                receiveRTCP(UnsafeRawBufferPointer(plain), on: session, now: now, output: &output)
            }
        case .zrtp, .turnChannel, .unknown:
            counters.malformedDatagrams += 1
        }
    }

    private func receiveSTUN(_ packet: UnsafeRawBufferPointer, from source: TransportAddress, mapped: TransportAddress,
                             now: Instant, output: inout some SFUOutput) {
        var session = sessionsByAddress[source]
        if session == nil {
            // RFC 8445 §7.2.2: USERNAME is "ourUfrag:theirUfrag".
            guard let view = try? STUNMessageView(packet), let username = view.usernameBytes,
                  let colon = username.firstIndex(of: UInt8(ascii: ":")),
                  let found = sessionsByUfrag[String(decoding: username[username.startIndex..<colon], as: UTF8.self)]
            else {
                counters.unknownICEUsername += 1
                return
            }
            session = found
        }
        guard let session, !session.ended else { return }
        var answered = false
        output.send(to: source, capacity: 128) { reply in
            switch session.transport.answerBinding(packet, from: source, mapped: mapped, now: now, into: reply) {
            case .answered(let n):
                answered = true
                return n
            case .none:
                return nil
            case .notSTUN:
                counters.malformedDatagrams += 1
                return nil
            }
        }
        if answered, sessionsByAddress[source] !== session, session.transport.isValidated(source) {
            // The 5-tuple is learned (a new pair, or one after an ICE restart).
            sessionsByAddress[source]?.addresses.remove(source)
            sessionsByAddress[source] = session
            session.addresses.insert(source)
        }
        drain(session, output: &output)
    }

    private func allowRTCP(_ session: Session, now: Instant) -> Bool {
        let rate = configuration.rtcpRatePerSecond
        if let at = session.rtcpRefilledAt {
            let elapsed = Double((now - at).nanoseconds) / 1e9
            session.rtcpTokens = min(2 * rate, session.rtcpTokens + elapsed * rate)
        }
        session.rtcpRefilledAt = now
        guard session.rtcpTokens >= 1 else { return false }
        session.rtcpTokens -= 1
        return true
    }

    // MARK: - Publisher media

    private func receivePublisherRTP(_ packet: UnsafeMutableRawBufferPointer, from p: Participant, now: Instant,
                                     output: inout some SFUOutput) {
        let raw = UnsafeRawBufferPointer(packet)
        guard let header = try? RTPHeaderView(raw) else {
            counters.malformedRTP += 1
            return
        }
        guard let ref = p.sourceBySSRC[header.ssrc.rawValue] ?? identify(header, publisher: p) else {
            counters.unknownSSRC += 1
            return
        }
        let track = ref.track
        if track.extensions.transportCC != 0, let seq = header.transportSequenceNumber(id: track.extensions.transportCC) {
            p.twcc.record(seq, at: now)
        }
        p.bytesInWindow += raw.count
        if ref.isRTX {
            // RFC 4588 §4: [header][OSN][original payload]. Rebuild the
            // original in the scratch buffer and carry on with it.
            let payload = header.payload
            guard payload.count > 2, raw.count <= scratch.count else {
                counters.paddingDropped += 1
                return
            }
            let headerLength = header.headerLength
            scratch.baseAddress!.copyMemory(from: raw.baseAddress!, byteCount: headerLength)
            scratch[0] &= ~0x20  // padding was stripped with the OSN shift
            let original = UInt16(payload[0]) << 8 | UInt16(payload[1])
            let body = payload.count - 2
            (scratch.baseAddress! + headerLength).copyMemory(from: payload.baseAddress! + 2, byteCount: body)
            let rebuilt = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<(headerLength + body)])
            guard let primary = track.layers[ref.layer].ssrc, let view = try? MutableRTPHeaderView(rebuilt) else { return }
            view.setSequenceNumber(SequenceNumber(original))
            view.setSSRC(primary)
            view.setPayloadTypeValue(track.payloadType)
            guard let original = try? RTPHeaderView(UnsafeRawBufferPointer(rebuilt)) else { return }
            receiveSourcePacket(original, track: track, layer: ref.layer, retransmission: true, now: now, output: &output)
            return
        }
        receiveSourcePacket(header, track: track, layer: ref.layer, retransmission: false, now: now, output: &output)
    }

    /// An SSRC not signalled in SDP: matched by its mid and rid header
    /// extensions (RFC 8843 §9.2, RFC 8852), then remembered.
    private func identify(_ header: RTPHeaderView, publisher p: Participant) -> SourceRef? {
        for track in p.tracks {
            let ext = track.extensions
            guard ext.mid != 0, let midValue = header.extensionElement(id: ext.mid)?.value,
                  midValue.elementsEqual(track.mid.rawValue.utf8) else { continue }
            var layer = 0
            var isRTX = header.payloadTypeValue == track.rtxPayloadType
            if track.layers.count > 1 || track.layers[0].rid != nil {
                let ridID = isRTX && ext.repairedRID != 0 ? ext.repairedRID : ext.rid
                guard ridID != 0, let ridValue = header.extensionElement(id: ridID)?.value,
                      let i = track.layers.firstIndex(where: { $0.rid.map { ridValue.elementsEqual($0.rawValue.utf8) } ?? false })
                else { return nil }
                layer = i
            }
            if track.rtxPayloadType == nil { isRTX = false }
            let l = track.layers[layer]
            if isRTX { l.rtxSSRC = header.ssrc } else { l.ssrc = header.ssrc }
            let ref = SourceRef(track: track, layer: layer, isRTX: isRTX)
            p.sourceBySSRC[header.ssrc.rawValue] = ref
            return ref
        }
        return nil
    }

    /// One packet of a source (an RTX repair already rebuilt as its original).
    private func receiveSourcePacket(_ header: RTPHeaderView, track: PublishedTrack, layer index: Int,
                                     retransmission: Bool, now: Instant, output: inout some SFUOutput) {
        let raw = header.packet
        let layer = track.layers[index]
        let sequence = header.sequenceNumber
        let extended = layer.stats.record(sequence: sequence, timestamp: header.timestamp, size: raw.count, arrival: now,
                                          isRepair: retransmission)
        if layer.nack.received(extended, now: now) == .repaired { counters.repairedFromPublisher += 1 }
        layer.lastPacketAt = now
        if !track.sawMedia {
            track.sawMedia = true
            emit(.firstMedia(room: track.owner.room, participant: track.owner.id, trackID: track.id))
        }
        var keyframe = false
        if track.kind == .video {
            let payload = header.payload
            keyframe = VP8PayloadDescriptor.isKeyFrame(rtpPayload: payload)
            if keyframe {
                layer.lastKeyframeAt = now
                layer.lastKeyframeSequence = sequence.rawValue
                if let d = try? VP8DescriptorLayout(parsing: payload), payload.count >= d.length + 10,
                   let kf = try? VP8KeyFrameHeader(parsing: UnsafeRawBufferPointer(rebasing: payload[d.length...])) {
                    layer.keyframeWidth = Int(kf.width)
                    choosePreferredLayer(track, now: now)
                }
            }
            layer.cache?.store(raw, sequence: sequence.rawValue)
        }
        for stream in track.streams {
            forward(header, layer: index, keyframe: keyframe, to: stream, now: now, output: &output)
        }
        if !recordingRooms.isEmpty, index == track.preferredLayer, recordingRooms.contains(track.owner.room) {
            recorder?.packet(room: track.owner.room, track: track.id, kind: track.kind.rawValue, user: track.owner.user,
                             source: track.source, bytes: raw, arrival: now)
        }
    }

    /// The widest simulcast layer that is sending.
    private func choosePreferredLayer(_ track: PublishedTrack, now: Instant) {
        guard track.layers.count > 1 else { return }
        var best = track.preferredLayer
        var width = track.layers[best].isActive(now: now) ? track.layers[best].keyframeWidth : -1
        for (i, l) in track.layers.enumerated() where l.isActive(now: now) && l.keyframeWidth > width {
            best = i
            width = l.keyframeWidth
        }
        track.preferredLayer = best
    }

    @inline(__always)
    private func forward(_ header: RTPHeaderView, layer: Int, keyframe: Bool, to stream: ForwardedStream, now: Instant,
                         output: inout some SFUOutput) {
        guard stream.negotiated, let session = stream.subscriber.subscribe,
              session.transport.state == .connected, let destination = session.transport.selectedRemote else { return }
        let track = stream.track
        if track.kind == .video {
            if stream.layerIndex != layer {
                // Switch layers only at a keyframe of the target (RFC 7741 §4.3).
                guard layer == track.preferredLayer, keyframe else { return }
                stream.layerIndex = layer
                stream.needsKeyframe = false
            }
            if stream.needsKeyframe {
                guard keyframe else {
                    if !startFromCache(stream, output: &output) {
                        requestKeyframe(track, layer: layer, now: now, output: &output)
                    }
                    return
                }
                stream.needsKeyframe = false
            }
        }
        let (sequence, timestamp) = stream.rewriter.map(ssrc: header.ssrc, sequence: header.sequenceNumber.rawValue,
                                                       timestamp: header.timestamp, now: now)
        let payload = header.payload
        send(stream, session: session, to: destination, marker: header.marker, payloadType: stream.payloadType,
             ssrc: stream.ssrc, sequence: sequence, timestamp: timestamp,
             audioLevel: audioLevel(header, track), prefix: nil, payload: payload, updatePictureID: true,
             now: now, output: &output)
        stream.packetsSent &+= 1
        stream.octetsSent &+= UInt32(truncatingIfNeeded: payload.count)
        counters.rtpForwarded += 1
        counters.bytesForwarded += payload.count
    }

    /// Starts a stream that waits for a keyframe at the source's last one,
    /// replaying it and everything after it from the retransmission cache
    /// (a GOP cache): a new subscriber's first frame then does not wait for
    /// the publisher's next keyframe, which browsers send at most every
    /// 300 ms after the last one whatever PLIs say. Only when the keyframe
    /// is recent and every packet since is cached; false otherwise.
    func startFromCache(_ stream: ForwardedStream, output: inout some SFUOutput) -> Bool {
        let track = stream.track
        guard track.kind == .video, stream.negotiated, stream.layerIndex < track.layers.count else { return false }
        let layer = track.layers[stream.layerIndex]
        guard let (cache, first, count) = layer.runSinceKeyframe(), let at = layer.lastKeyframeAt,
              let last = layer.lastPacketAt, last - at < .seconds(2) else { return false }
        for i in 0..<count where cache.packet(first &+ UInt16(i)) == nil { return false }
        guard let session = stream.subscriber.subscribe, session.transport.state == .connected else { return false }
        stream.needsKeyframe = false
        for i in 0..<count {
            guard let packet = cache.packet(first &+ UInt16(i)), let header = try? RTPHeaderView(packet) else { continue }
            forward(header, layer: stream.layerIndex, keyframe: i == 0, to: stream, now: last, output: &output)
        }
        counters.keyframesFromCache += 1
        return true
    }

    @inline(__always)
    private func audioLevel(_ header: RTPHeaderView, _ track: PublishedTrack) -> UInt8? {
        guard track.extensions.audioLevel != 0, let e = header.extensionElement(id: track.extensions.audioLevel),
              let first = e.value.first else { return nil }
        return first
    }

    /// Writes one packet for `stream` into the output and protects it there.
    @inline(__always)
    func send(_ stream: ForwardedStream, session: Session, to destination: TransportAddress, marker: Bool,
              payloadType: UInt8, ssrc: SSRC, sequence: UInt16, timestamp: UInt32, audioLevel: UInt8?, prefix: UInt16?,
              payload: UnsafeRawBufferPointer, updatePictureID: Bool, now: Instant, output: inout some SFUOutput) {
        let subscriber = stream.subscriber
        subscriber.transportSequence &+= 1
        let twSeq = subscriber.transportSequence
        let transport = session.transport
        let isVideo = stream.track.kind == .video
        let capacity = ForwardedPacketWriter.maxHeader + 2 + payload.count + 32
        stream.midBytes.withUnsafeBytes { mid in
            output.send(to: destination, capacity: capacity) { out in
                guard let length = ForwardedPacketWriter.write(
                    into: out, marker: marker, payloadType: payloadType, sequence: sequence, timestamp: timestamp,
                    ssrc: ssrc, extensions: stream.extensions, mid: mid, absSendTime: AbsSendTime(now),
                    transportSequence: twSeq, audioLevel: audioLevel, prefix: prefix, payload: payload) else { return nil }
                if isVideo {
                    let start = length - payload.count
                    let vp8 = UnsafeMutableRawBufferPointer(rebasing: out[start..<length])
                    if updatePictureID { stream.rewriter.rewriteVP8(vp8) } else { stream.rewriter.replayVP8(vp8) }
                }
                return try? transport.protectRTP(in: out, length: length)
            }
        }
    }

    /// Asks the publisher of `track` for a keyframe on `layer` (PLI, RFC
    /// 4585 §6.3.1), at most every `keyframeRequestInterval`.
    func requestKeyframe(_ track: PublishedTrack, layer index: Int, now: Instant?, output: inout some SFUOutput) {
        guard track.kind == .video, index < track.layers.count, let session = track.owner.publish,
              let destination = session.transport.selectedRemote, session.transport.state == .connected else { return }
        let layer = track.layers[index]
        guard let ssrc = layer.ssrc else { return }
        if let now {
            if let last = layer.lastKeyframeRequest, now - last < configuration.keyframeRequestInterval { return }
            layer.lastKeyframeRequest = now
        } else {
            layer.lastKeyframeRequest = nil
        }
        counters.keyframeRequestsSent += 1
        sendRTCP([.pictureLossIndication(RTCPPictureLossIndication(senderSSRC: session.rtcpSSRC, mediaSSRC: ssrc))],
                 on: session, to: destination, output: &output)
    }

    /// Serializes, protects and queues an RTCP compound packet (RTCP
    /// allocates: it is a few packets a second, not per forwarded packet).
    func sendRTCP(_ packets: [RTCPPacket], on session: Session, to destination: TransportAddress,
                  output: inout some SFUOutput) {
        guard let bytes = try? RTCPCompound.serialize(packets) else { return }
        let transport = session.transport
        output.send(to: destination, capacity: bytes.count + 32) { out in
            bytes.withUnsafeBytes { (out.baseAddress!).copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
            return try? transport.protectRTCP(in: out, length: bytes.count)
        }
        counters.rtcpOut += 1
    }

    // MARK: - Timers

    /// The next periodic run; `.zero` (at once) when rooms exist but no run
    /// was scheduled yet.
    public func pollTimeout() -> Instant? { nextTick ?? (rooms.isEmpty ? nil : .zero) }

    /// Periodic work: transports' timers, NACKs and transport-cc feedback
    /// to publishers, RR and REMB, SR to subscribers, keyframe retries.
    public func handleTimeout(now: Instant, output: inout some SFUOutput) {
        if let due = nextTick, due > now { return }
        nextTick = rooms.isEmpty ? nil : now + Self.tick
        for room in rooms.values {
            for p in room.participants {
                if let s = p.publish { runTimers(s, now: now, output: &output) }
                if let s = p.subscribe { runTimers(s, now: now, output: &output) }
                periodicRTCP(p, now: now, output: &output)
            }
        }
    }

    @inline(__always)
    private func runTimers(_ s: Session, now: Instant, output: inout some SFUOutput) {
        guard !s.ended, let d = s.deadline, d <= now else { return }
        s.transport.handleTimeout(now: now)
        drain(s, output: &output)
    }
}

