import DTLS
import ICE
import PeerSession
import RTCBase
import SDP

extension SFUEngine {
    /// Codecs the SFU sends to subscribers, with payload types it chooses
    /// (the subscriber's answer keeps them: RFC 3264 §6.1).
    static let audioCodec = SubscriberCodec(
        payloadType: PayloadType(rawValue: 111)!, name: "opus", clockRate: 48000, channels: 2,
        parameters: [FormatParameter(name: "minptime", value: "10"), FormatParameter(name: "useinbandfec", value: "1")],
        rtcpFeedback: [.transportCC])
    static let videoCodec = SubscriberCodec(
        payloadType: PayloadType(rawValue: 96)!, name: "VP8", clockRate: 90000, rtxPayloadType: PayloadType(rawValue: 97)!,
        rtcpFeedback: [.nack, .pli, .fir, .remb, .transportCC])
    /// Header extensions offered to subscribers (RFC 8285 one-byte ids).
    static func offeredExtensions(_ kind: MediaKind) -> [ExtensionMap] {
        var e = [ExtensionMap(id: 4, uri: HeaderExtensionURI.mid),
                 ExtensionMap(id: 2, uri: HeaderExtensionURI.absSendTime),
                 ExtensionMap(id: 3, uri: HeaderExtensionURI.transportWideCC)]
        if kind == .audio { e.append(ExtensionMap(id: 1, uri: HeaderExtensionURI.audioLevel)) }
        return e
    }

    static let cname = "parley-sfu"

    // MARK: - Publishing

    /// Answers a participant's publish offer (PROTOCOL.md `publish_offer`):
    /// Opus and VP8 (+RTX) m-sections it sends are accepted as tracks, the
    /// answer is ICE-lite with `a=setup:passive` (unless the offer insists
    /// on passive itself) and our host candidates. A later offer on the
    /// same connection renegotiates: new m-sections become tracks, ones that
    /// stopped sending leave, and new ICE credentials restart ICE.
    public func publish(room: RoomID, participant: ParticipantID, offer text: String,
                        output: inout some SFUOutput) throws(SFUError) -> String {
        let (r, p) = try self.participant(room, participant)
        let offer: SessionDescription
        do {
            offer = try SessionDescription(parsing: text)
        } catch {
            throw .badSDP("offer does not parse: \(error)")
        }
        p.publishSessionVersion += 1
        let local = p.publish?.transport.localCredentials
        // Credentials for the answer: the session's, or the ones a new session will get.
        var pending: ICECredentials?
        if local == nil { pending = ICECredentials.random(using: &rng) }
        var config = AnswerConfiguration(
            iceUfrag: (local ?? pending!).ufrag, icePassword: (local ?? pending!).password, fingerprint: fingerprint,
            candidates: configuration.candidates, sessionID: sessionID(for: p, publish: true),
            sessionVersion: p.publishSessionVersion, setupRole: .passive, allowSending: false)
        config.acceptVideoRTX = true
        var answer: SessionDescription
        do {
            answer = try SessionDescription.answer(to: offer, config: config)
        } catch {
            throw .badSDP("cannot answer the offer: \(error)")
        }
        guard let accepted = answer.media.first(where: { $0.port != 0 }), let mid = accepted.mid,
              let offered = offer.media(withMid: mid),
              let ufrag = offer.iceUfrag(for: offered), let password = offer.icePassword(for: offered),
              let sdpFingerprint = offer.fingerprints(for: offered).first,
              let algorithm = DTLSFingerprint.Algorithm(rawValue: sdpFingerprint.hashFunction),
              let remoteFingerprint = try? DTLSFingerprint(algorithm: algorithm, digest: sdpFingerprint.bytes)
        else { throw .badSDP("offer has no usable transport parameters") }
        let remote = ICECredentials(ufrag: ufrag, password: password)
        // RFC 8842 §5.2: `a=setup:active` in our answer makes us the DTLS client.
        let dtlsRole: DTLSRole = accepted.setup == .active ? .client : .server

        if let session = p.publish {
            if session.remoteCredentials != remote {
                // ICE restart (RFC 8445 §9): new credentials both ways.
                restartICE(session, remote: remote)
                let fresh = session.transport.localCredentials
                answer = rewriteCredentials(answer, ufrag: fresh.ufrag, password: fresh.password)
            }
        } else {
            let session = try makeSession(role: .publish, for: p, dtlsRole: dtlsRole, remote: remote,
                                          remoteFingerprint: remoteFingerprint, local: pending)
            p.publish = session
        }
        let changed = updateTracks(of: p, in: r, from: offer, answer: answer)
        p.lastPublishAnswer = answer
        if changed {
            for other in r.participants where other !== p {
                other.needsOffer = true
                offerIfNeeded(other, in: r)
            }
        }
        return answer.serialized()
    }

    /// The answer with other ICE credentials on every accepted m-section.
    private func rewriteCredentials(_ answer: SessionDescription, ufrag: String, password: String) -> SessionDescription {
        var a = answer
        for i in a.media.indices {
            for j in a.media[i].attributes.indices {
                switch a.media[i].attributes[j].name {
                case "ice-ufrag": a.media[i].attributes[j] = SDPAttribute("ice-ufrag", ufrag)
                case "ice-pwd": a.media[i].attributes[j] = SDPAttribute("ice-pwd", password)
                default: break
                }
            }
        }
        return a
    }

    func sessionID(for p: Participant, publish: Bool) -> UInt64 {
        (p.id.rawValue &* 2 &+ (publish ? 0 : 1)) & 0x3FFF_FFFF_FFFF_FFFF | 1
    }

    /// Brings the participant's tracks in line with an offer and our answer.
    /// Returns true when the set of tracks changed.
    private func updateTracks(of p: Participant, in room: Room, from offer: SessionDescription,
                              answer: SessionDescription) -> Bool {
        var changed = false
        var keep: [PublishedTrack] = []
        for (index, summary) in offer.mediaSummaries().enumerated() {
            guard index < answer.media.count, answer.media[index].port != 0, let mid = summary.mid,
                  let codec = summary.codec, summary.kind == .audio || summary.kind == .video,
                  summary.direction == .sendonly || summary.direction == .sendrecv else { continue }
            let rtxPT = codec.rtx?.payloadType.rawValue
            if let existing = p.track(mid: mid) {
                existing.payloadType = codec.codec.payloadType.rawValue
                existing.rtxPayloadType = rtxPT
                existing.extensions = PublisherExtensions(summary)
                registerSSRCs(summary, track: existing, publisher: p)
                keep.append(existing)
                continue
            }
            let hint = p.hints[mid]
            let source = hint?.source ?? (summary.kind == .audio ? .microphone : .camera)
            var layers: [SourceLayer] = []
            let cacheSlots = summary.kind == .video ? configuration.retransmissionSlots : nil
            let clock = codec.codec.clockRate
            if !summary.rids.isEmpty {
                for rid in summary.rids {
                    layers.append(SourceLayer(rid: rid, ssrc: nil, rtxSSRC: nil, clockRate: clock, cacheSlots: cacheSlots))
                }
            } else if summary.simulcastSSRCs.count > 1 {
                for s in summary.simulcastSSRCs {
                    layers.append(SourceLayer(rid: nil, ssrc: s, rtxSSRC: summary.rtxSSRCs[s], clockRate: clock,
                                              cacheSlots: cacheSlots))
                }
            } else {
                let primary = summary.ssrcs.first
                layers.append(SourceLayer(rid: nil, ssrc: primary, rtxSSRC: primary.flatMap { summary.rtxSSRCs[$0] },
                                          clockRate: clock, cacheSlots: cacheSlots))
            }
            let track = PublishedTrack(id: makeTrackID(), owner: p, kind: summary.kind, mid: mid, source: source,
                                       payloadType: codec.codec.payloadType.rawValue, rtxPayloadType: rtxPT,
                                       clockRate: clock, extensions: PublisherExtensions(summary), layers: layers)
            if let muted = hint?.muted { track.muted = muted }
            registerSSRCs(summary, track: track, publisher: p)
            keep.append(track)
            changed = true
        }
        let gone = p.tracks.filter { old in !keep.contains { $0 === old } }
        p.tracks = keep
        for old in gone {
            changed = true
            p.sourceBySSRC = p.sourceBySSRC.filter { $0.value.track !== old }
            detach(old, in: room)
        }
        return changed
    }

    private func registerSSRCs(_ summary: MediaSummary, track: PublishedTrack, publisher p: Participant) {
        for (i, layer) in track.layers.enumerated() {
            if let s = layer.ssrc { p.sourceBySSRC[s.rawValue] = SourceRef(track: track, layer: i, isRTX: false) }
            if let s = layer.rtxSSRC { p.sourceBySSRC[s.rawValue] = SourceRef(track: track, layer: i, isRTX: true) }
        }
        if track.layers.count == 1, let primary = summary.ssrcs.first, track.layers[0].ssrc != primary {
            // A new SSRC for the same m-section (the publisher replaced its track).
            track.layers[0].ssrc = primary
            track.layers[0].rtxSSRC = summary.rtxSSRCs[primary]
            track.layers[0].nack.reset()
            p.sourceBySSRC[primary.rawValue] = SourceRef(track: track, layer: 0, isRTX: false)
            if let rtx = summary.rtxSSRCs[primary] {
                p.sourceBySSRC[rtx.rawValue] = SourceRef(track: track, layer: 0, isRTX: true)
            }
        }
    }

    /// The last answer given to the participant's publish offer.
    public func lastPublishAnswer(room: RoomID, participant: ParticipantID) -> String? {
        rooms[room]?.participant(participant)?.lastPublishAnswer?.serialized()
    }

    /// Labels a published track (PROTOCOL.md `publish_track`): its source
    /// (`screen` for a screen share) and whether it is muted. Given before
    /// the offer that carries the mid, it waits for it. Subscribers get a
    /// fresh `tracks` list.
    public func updateTrack(room: RoomID, participant: ParticipantID, mid: Mid, source: TrackSource?,
                            muted: Bool?) throws(SFUError) {
        let (r, p) = try self.participant(room, participant)
        var hint = p.hints[mid] ?? (nil, nil)
        if let source { hint.source = source }
        if let muted { hint.muted = muted }
        p.hints[mid] = hint
        guard let track = p.track(mid: mid) else { return }
        if let source { track.source = source }
        if let muted { track.muted = muted }
        for other in r.participants where other !== p { announceTracks(other) }
    }

    /// Sends `tracks` to a participant if its list changed (and no offer is
    /// about to carry it).
    func announceTracks(_ p: Participant) {
        let infos = trackInfos(for: p)
        guard infos != p.lastTracks, !p.awaitingAnswer || p.lastOffer != nil else { return }
        p.lastTracks = infos
        emit(.tracks(room: p.room, participant: p.id, tracks: infos))
    }

    // MARK: - Subscribing

    /// The codec of one subscriber line, with payload types of its own: a
    /// line keeps them for its life, and no two lines share one while the
    /// dynamic range lasts (RFC 8843 §9.2: receivers may demultiplex a
    /// BUNDLE by payload type, and aiortc does for SSRCs it has not seen
    /// yet). Past 32 payload types, lines of a kind share the defaults.
    func lineCodec(_ p: Participant, line: Int, kind: MediaKind) -> SubscriberCodec {
        var codec = kind == .audio ? Self.audioCodec : Self.videoCodec
        if let pts = p.linePayloadTypes[line] {
            codec.payloadType = pts.media
            codec.rtxPayloadType = pts.rtx
            return codec
        }
        var used = Set(p.linePayloadTypes.values.flatMap { [$0.media.rawValue] + ($0.rtx.map { [$0.rawValue] } ?? []) })
        func take(_ preferred: UInt8) -> PayloadType? {
            if !used.contains(preferred) {
                used.insert(preferred)
                return PayloadType(rawValue: preferred)
            }
            guard let free = (96...127).lazy.map(UInt8.init).first(where: { !used.contains($0) }) else { return nil }
            used.insert(free)
            return PayloadType(rawValue: free)
        }
        if kind == .audio {
            if let pt = take(111) { codec.payloadType = pt }
        } else if let pt = take(96), let rtx = take(97) {
            codec.payloadType = pt
            codec.rtxPayloadType = rtx
        }
        p.linePayloadTypes[line] = (codec.payloadType, codec.rtxPayloadType)
        return codec
    }

    /// Makes and emits a subscribe offer when the participant's tracks
    /// changed and no earlier offer waits for its answer (one offer at a
    /// time: JSEP glare cannot happen with the SFU as the only offerer).
    func offerIfNeeded(_ p: Participant, in room: Room) {
        guard p.needsOffer, !p.awaitingAnswer else { return }
        var wanted: [PublishedTrack] = []
        for other in room.participants where other !== p { wanted.append(contentsOf: other.tracks) }
        // Lines of tracks that left go inactive; new tracks take free lines.
        for (i, line) in p.layout.lines.enumerated() {
            guard let key = line.key, !wanted.contains(where: { $0.id == key }) else { continue }
            p.layout.remove(key)
            if i < p.lineStreams.count, let stream = p.lineStreams[i] {
                stream.track.streams.removeAll { $0 === stream }
                p.streamBySSRC[stream.ssrc.rawValue] = nil
                p.streamBySSRC[stream.rtxSSRC.rawValue] = nil
                p.lineStreams[i] = nil
            }
        }
        for track in wanted where p.layout.index(of: track.id) == nil {
            let i = p.layout.place(track.id, kind: track.kind)
            while p.lineStreams.count <= i { p.lineStreams.append(nil) }
            let codec = lineCodec(p, line: i, kind: track.kind)
            let stream = ForwardedStream(
                track: track, subscriber: p, ssrc: SSRC(UInt32(truncatingIfNeeded: rng.next())),
                rtxSSRC: SSRC(UInt32(truncatingIfNeeded: rng.next())), mid: p.layout.lines[i].mid,
                payloadType: codec.payloadType.rawValue, rtxPayloadType: codec.rtxPayloadType?.rawValue,
                initialSequence: UInt16(truncatingIfNeeded: rng.next()),
                initialTimestamp: UInt32(truncatingIfNeeded: rng.next()),
                rtxSequence: UInt16(truncatingIfNeeded: rng.next()))
            p.lineStreams[i] = stream
            p.streamBySSRC[stream.ssrc.rawValue] = stream
            p.streamBySSRC[stream.rtxSSRC.rawValue] = stream
        }
        p.needsOffer = false
        guard !p.layout.lines.isEmpty else {
            announceTracks(p)
            return
        }
        if p.subscribe == nil {
            // We offer actpass; browsers and aiortc answer active, making us
            // the DTLS server (a passive answer replaces the transport).
            guard let session = try? makeSession(role: .subscribe, for: p, dtlsRole: .server, remote: nil,
                                                 remoteFingerprint: nil, local: nil) else { return }
            p.subscribe = session
        }
        guard let session = p.subscribe else { return }
        var lines: [SubscriberMediaLine] = []
        for (i, line) in p.layout.lines.enumerated() {
            let codec = lineCodec(p, line: i, kind: line.kind)
            if let stream = i < p.lineStreams.count ? p.lineStreams[i] : nil {
                let t = stream.track
                lines.append(.active(SubscriberTrack(
                    kind: t.kind, mid: line.mid, ssrc: stream.ssrc, rtxSSRC: t.kind == .video ? stream.rtxSSRC : nil,
                    streamID: t.streamID, trackID: t.id, codec: codec, headerExtensions: Self.offeredExtensions(t.kind))))
            } else {
                lines.append(.inactive(mid: line.mid, kind: line.kind, codec: codec))
            }
        }
        p.offerVersion += 1
        let credentials = session.transport.localCredentials
        let offer = SessionDescription.subscriberOffer(lines: lines, config: OfferConfiguration(
            iceUfrag: credentials.ufrag, icePassword: credentials.password, fingerprint: fingerprint,
            candidates: configuration.candidates, sessionID: sessionID(for: p, publish: false),
            sessionVersion: p.offerVersion, cname: Self.cname))
        p.lastOffer = offer
        p.awaitingAnswer = true
        let infos = trackInfos(for: p)
        p.lastTracks = infos
        emit(.subscribeOffer(room: p.room, participant: p.id, sdp: offer.serialized(), tracks: infos))
    }

    /// The participant's answer to the last subscribe offer: ICE
    /// credentials and fingerprint for the transport, which m-sections it
    /// accepted (only those get media), the header extensions it kept.
    public func subscribeAnswer(room: RoomID, participant: ParticipantID, answer text: String,
                                output: inout some SFUOutput) throws(SFUError) {
        let (r, p) = try self.participant(room, participant)
        guard p.awaitingAnswer, let offer = p.lastOffer, let session = p.subscribe else { throw .noOfferOutstanding }
        let answer: SessionDescription
        let read: SubscriberAnswer
        do {
            answer = try SessionDescription(parsing: text)
        } catch {
            throw .badSDP("answer does not parse: \(error)")
        }
        do {
            read = try SessionDescription.readSubscriberAnswer(answer, to: offer)
        } catch {
            throw .badSDP("answer does not match the offer: \(error)")
        }
        guard let fp = read.fingerprints.first, let algorithm = DTLSFingerprint.Algorithm(rawValue: fp.hashFunction),
              let remoteFingerprint = try? DTLSFingerprint(algorithm: algorithm, digest: fp.bytes) else {
            throw .badSDP("answer has no usable fingerprint")
        }
        let remote = ICECredentials(ufrag: read.iceUfrag, password: read.icePassword)
        let wantedRole: DTLSRole = read.setup == .passive ? .client : .server
        if !session.wasConnected, session.transport.configuration.dtlsRole != wantedRole {
            // Our guess (the DTLS server) was wrong: start over as the client.
            try replaceTransport(session, dtlsRole: wantedRole, remote: remote, remoteFingerprint: remoteFingerprint)
            session.remoteCredentials = remote
        } else if session.remoteCredentials == nil {
            session.transport.setRemoteCredentials(remote)
            session.transport.setRemoteFingerprint(remoteFingerprint)
            session.remoteCredentials = remote
        } else if session.remoteCredentials != remote {
            // New credentials from the peer (it restarted ICE with this answer).
            session.transport.setRemoteCredentials(remote)
            session.remoteCredentials = remote
        }
        for (i, line) in p.layout.lines.enumerated() {
            guard i < p.lineStreams.count, let stream = p.lineStreams[i] else { continue }
            let accepted = read.acceptedMids.contains(line.mid)
            stream.negotiated = accepted
            guard accepted, let m = answer.media(withMid: line.mid) else { continue }
            var ids = ForwardedExtensions()
            for e in m.extensionMaps where e.id >= 1 && e.id <= 14 {
                switch e.uri {
                case HeaderExtensionURI.mid: ids.mid = UInt8(e.id)
                case HeaderExtensionURI.absSendTime: ids.absSendTime = UInt8(e.id)
                case HeaderExtensionURI.transportWideCC: ids.transportCC = UInt8(e.id)
                case HeaderExtensionURI.audioLevel: ids.audioLevel = UInt8(e.id)
                default: break
                }
            }
            stream.extensions = ids
            let rtxPT = stream.rtxPayloadType.flatMap { PayloadType(rawValue: $0) }
            stream.useRTX = stream.track.kind == .video && rtxPT != nil && m.rtpMaps.contains { $0.payloadType == rtxPT }
            if !stream.track.streams.contains(where: { $0 === stream }) {
                stream.track.streams.append(stream)
                if stream.track.kind == .video {
                    // Started when the subscribe transport connects, or now
                    // when it already is (a renegotiation).
                    stream.needsKeyframe = true
                    if p.subscribe?.transport.state == .connected, !startFromCache(stream, output: &output) {
                        requestKeyframe(stream.track, layer: stream.layerIndex, now: nil, output: &output)
                    }
                }
            }
        }
        p.awaitingAnswer = false
        drain(session, output: &output)
        offerIfNeeded(p, in: r)
    }

    /// A new subscribe offer with fresh ICE credentials (PROTOCOL.md
    /// extension `ice_restart` for the subscribe connection).
    public func restartSubscriberICE(room: RoomID, participant: ParticipantID) throws(SFUError) {
        let (r, p) = try self.participant(room, participant)
        guard let session = p.subscribe, let remote = session.remoteCredentials else { return }
        restartICE(session, remote: remote)
        p.needsOffer = true
        offerIfNeeded(p, in: r)
    }
}
