import ICE
import PeerSession
import RTCBase
import RTP
import SDP
import Testing
@testable import SFU

private let alice = ParticipantID(1)
private let bob = ParticipantID(2)
private let carol = ParticipantID(3)

/// A call of two: alice publishes audio + video, bob subscribes.
private func twoParty(seed: UInt64 = 7, consentTimeout: Duration = .seconds(30)) throws -> (SFUHarness, ClientPC, ClientPC) {
    let h = SFUHarness(seed: seed, consentTimeout: consentTimeout)
    let pub = try ClientPC(address: TransportAddress("192.0.2.1:40000")!, ufrag: "aliP", seed: 1)
    let sub = try ClientPC(address: TransportAddress("192.0.2.2:40002")!, ufrag: "bobS", seed: 2)
    try h.publish(alice, user: "alice", pc: pub)
    h.subscribe(bob, user: "bob", pc: sub)
    #expect(h.connect([pub, sub]))
    return (h, pub, sub)
}

private func subscribeOffers(_ h: SFUHarness, for p: ParticipantID) -> [(sdp: SessionDescription, tracks: [TrackInfo])] {
    h.events.compactMap {
        guard case .subscribeOffer(_, let who, let sdp, let tracks) = $0, who == p,
              let parsed = try? SessionDescription(parsing: sdp) else { return nil }
        return (parsed, tracks)
    }
}

private func header(_ packet: [UInt8]) -> (ssrc: UInt32, seq: UInt16, ts: UInt32, pt: UInt8, payload: [UInt8]) {
    packet.withUnsafeBytes { b in
        let v = try! RTPHeaderView(b)
        return (v.ssrc.rawValue, v.sequenceNumber.rawValue, v.timestamp, v.payloadTypeValue, Array(v.payload))
    }
}

private func midExtension(_ packet: [UInt8], id: UInt8) -> String? {
    packet.withUnsafeBytes { b in
        (try? RTPHeaderView(b))?.extensionElement(id: id).map { String(decoding: $0.value, as: UTF8.self) }
    }
}

@Suite("SFU forwarding on a fake network")
struct ForwardingTests {
    @Test func publishAnswerAndSubscribeOffer() throws {
        let h = SFUHarness()
        let pub = try ClientPC(address: TransportAddress("192.0.2.1:40000")!, ufrag: "aliP", seed: 1)
        let answer = try SessionDescription(parsing: try h.publish(alice, user: "alice", pc: pub))
        #expect(answer.isICELite)
        #expect(answer.media.map(\.direction) == [.recvonly, .recvonly])
        #expect(answer.media[0].setup == .passive)
        #expect(answer.media[0].candidates.count == 1)
        let sub = try ClientPC(address: TransportAddress("192.0.2.2:40002")!, ufrag: "bobS", seed: 2)
        h.subscribe(bob, user: "bob", pc: sub)
        let offers = subscribeOffers(h, for: bob)
        #expect(offers.count == 1)
        let (offer, tracks) = try #require(offers.first)
        #expect(offer.media.map(\.kind) == [.audio, .video])
        #expect(offer.media.map(\.direction) == [.sendonly, .sendonly])
        #expect(tracks.map(\.user) == ["alice", "alice"])
        #expect(tracks.map(\.source) == [.microphone, .camera])
        #expect(tracks.map(\.mid) == ["0", "1"])
        #expect(offer.media[1].msid?.streamID == tracks[1].streamID)
        // Alice alone receives nothing, so she got no offer.
        #expect(subscribeOffers(h, for: alice).isEmpty)
    }

    @Test func forwardsAudioAndVideoRewritten() throws {
        let (h, pub, sub) = try twoParty()
        let (offer, _) = try #require(subscribeOffers(h, for: bob).last)
        let audioSSRC = try #require(offer.media[0].ssrcs.first).rawValue
        let videoSSRC = try #require(offer.media[1].summary(index: 1).ssrcs.first).rawValue
        h.run(for: .milliseconds(100))
        sub.rtp = []
        for i in 0..<10 {
            let key = i == 0
            try h.send(Packets.rtp(pt: 96, seq: UInt16(500 + i), ts: UInt32(9000 * (i / 3)), ssrc: 2001, marker: i % 3 == 2,
                                   extensions: [(4, Array("1".utf8)), (3, [0, UInt8(i)])],
                                   payload: Packets.vp8(pictureID: 300, key: key, start: i % 3 == 0)), from: pub)
            try h.send(Packets.rtp(pt: 111, seq: UInt16(70 + i), ts: UInt32(960 * i), ssrc: 1001,
                                   extensions: [(1, [0x85]), (4, Array("0".utf8))], payload: [0xFC] + Array(repeating: 7, count: 60)),
                       from: pub)
            h.run(for: .milliseconds(20))
        }
        let video = sub.rtp.filter { header($0).ssrc == videoSSRC }
        let audio = sub.rtp.filter { header($0).ssrc == audioSSRC }
        #expect(video.count == 10)
        #expect(audio.count == 10)
        #expect(Set(video.map { header($0).pt }) == [96])
        #expect(Set(audio.map { header($0).pt }) == [111])
        // Sequence numbers continue one by one in the subscriber's own space.
        let seqs = video.map { header($0).seq }
        for (a, b) in zip(seqs, seqs.dropFirst()) { #expect(b == a &+ 1) }
        // Each packet names the subscriber's mid (extension id 4 as offered).
        #expect(video.allSatisfy { midExtension($0, id: 4) == "1" })
        #expect(audio.allSatisfy { midExtension($0, id: 4) == "0" })
        // Audio level travels with the subscriber's id (1).
        #expect(audio.allSatisfy { p in p.withUnsafeBytes { (try? RTPHeaderView($0))?.extensionElement(id: 1)?.value.first == 0x85 } })
        // The payload is the publisher's.
        #expect(header(video[0]).payload == Packets.vp8(pictureID: 300, key: true))
        #expect(h.engine.counters.rtpForwarded == 20)
    }

    @Test func videoWaitsForAKeyframeAndAsksForOne() throws {
        let (h, pub, sub) = try twoParty()
        func plis() -> Int {
            pub.rtcp.flatMap { (try? RTCPCompound.parse($0)) ?? [] }.filter {
                if case .pictureLossIndication(let p) = $0 { p.mediaSSRC.rawValue == 2001 } else { false }
            }.count
        }
        h.run(for: .milliseconds(100))
        sub.rtp = []
        let before = plis()
        #expect(before >= 1, "a new subscriber's stream asks for a keyframe")
        for i in 0..<60 {
            try h.send(Packets.rtp(pt: 96, seq: UInt16(10 + i), ts: UInt32(3000 * i), ssrc: 2001,
                                   payload: Packets.vp8(pictureID: UInt16(i), key: false)), from: pub)
            h.run(for: .milliseconds(33))
        }
        #expect(sub.rtp.isEmpty, "delta frames before the first keyframe are not forwarded")
        #expect(plis() >= before + 2, "the request is repeated while the keyframe does not come")
        try h.send(Packets.rtp(pt: 96, seq: 70, ts: 210000, ssrc: 2001, payload: Packets.vp8(pictureID: 60, key: true)), from: pub)
        try h.send(Packets.rtp(pt: 96, seq: 71, ts: 213000, ssrc: 2001, payload: Packets.vp8(pictureID: 61, key: false)), from: pub)
        h.run(for: .milliseconds(20))
        #expect(sub.rtp.count == 2)
    }

    @Test func nackIsAnsweredWithRTXFromTheCache() throws {
        let (h, pub, sub) = try twoParty()
        let (offer, _) = try #require(subscribeOffers(h, for: bob).last)
        let video = offer.media[1].summary(index: 1)
        let videoSSRC = try #require(video.ssrcs.first)
        let rtxSSRC = try #require(video.rtxSSRCs[videoSSRC])
        h.run(for: .milliseconds(100))
        // The subscriber loses the third forwarded video packet.
        var seen = 0
        sub.dropIncoming = { _ in seen += 1; return false }
        sub.rtp = []
        for i in 0..<6 {
            try h.send(Packets.rtp(pt: 96, seq: UInt16(100 + i), ts: 3000, ssrc: 2001,
                                   payload: Packets.vp8(pictureID: 1, key: i == 0, start: i == 0, size: 300 + i)), from: pub)
            h.run(for: .milliseconds(5))
        }
        let received = sub.rtp.filter { header($0).ssrc == videoSSRC.rawValue }
        #expect(received.count == 6)
        let lost = header(received[2])
        try h.send(try RTCPCompound.serialize([.genericNACK(RTCPGenericNACK(
            senderSSRC: SSRC(99), mediaSSRC: videoSSRC, pairs: [RTCPNACKPair(packetID: lost.seq)]))]), from: sub, rtcp: true)
        sub.rtp = []
        h.run(for: .milliseconds(20))
        let rtx = try #require(sub.rtp.first { header($0).ssrc == rtxSSRC.rawValue })
        let r = header(rtx)
        #expect(r.pt == 97)
        #expect(r.ts == lost.ts)
        // RFC 4588 §4: the original sequence number, then the original payload.
        #expect(Array(r.payload.prefix(2)) == [UInt8(lost.seq >> 8), UInt8(lost.seq & 0xFF)])
        #expect(Array(r.payload.dropFirst(2)) == lost.payload)
        #expect(h.engine.counters.retransmitted == 1)
        // A number the SFU never sent is a miss, not a crash.
        try h.send(try RTCPCompound.serialize([.genericNACK(RTCPGenericNACK(
            senderSSRC: SSRC(99), mediaSSRC: videoSSRC, pairs: [RTCPNACKPair(packetID: lost.seq &+ 30000)]))]), from: sub, rtcp: true)
        h.run(for: .milliseconds(20))
        #expect(h.engine.counters.retransmissionMisses == 1)
    }

    @Test func pliFromASubscriberReachesThePublisher() throws {
        let (h, pub, sub) = try twoParty()
        let (offer, _) = try #require(subscribeOffers(h, for: bob).last)
        let videoSSRC = try #require(offer.media[1].summary(index: 1).ssrcs.first)
        h.run(for: .seconds(1))
        pub.rtcp = []
        try h.send(try RTCPCompound.serialize([.pictureLossIndication(RTCPPictureLossIndication(
            senderSSRC: SSRC(99), mediaSSRC: videoSSRC))]), from: sub, rtcp: true)
        h.run(for: .milliseconds(20))
        let forwarded = pub.rtcp.flatMap { (try? RTCPCompound.parse($0)) ?? [] }.contains {
            if case .pictureLossIndication(let p) = $0 { p.mediaSSRC.rawValue == 2001 } else { false }
        }
        #expect(forwarded)
        #expect(h.engine.counters.pliReceived == 1)
    }

    @Test func publisherLossIsNACKedAndReportsFlow() throws {
        let (h, pub, sub) = try twoParty()
        h.run(for: .milliseconds(100))
        pub.rtcp = []
        for seq in [UInt16(1), 2, 3, 6, 7] {
            try h.send(Packets.rtp(pt: 96, seq: seq, ts: 3000, ssrc: 2001, extensions: [(3, [0, UInt8(seq)])],
                                   payload: Packets.vp8(pictureID: 1, key: seq == 1, start: seq == 1)), from: pub)
        }
        h.run(for: .milliseconds(1200))
        let rtcp = pub.rtcp.flatMap { (try? RTCPCompound.parse($0)) ?? [] }
        let nacked = rtcp.flatMap { p -> [UInt16] in if case .genericNACK(let n) = p { n.lostSequenceNumbers } else { [] } }
        #expect(Set(nacked) == [4, 5])
        #expect(rtcp.contains { if case .receiverReport(let r) = $0 { r.reports.contains { $0.ssrc.rawValue == 2001 } } else { false } })
        #expect(rtcp.contains { if case .receiverEstimatedMaxBitrate(let r) = $0 { r.bitrate > 0 } else { false } })
        #expect(rtcp.contains { if case .transportFeedback = $0 { true } else { false } })
        // The subscriber hears sender reports for what it was sent.
        let srs = sub.rtcp.flatMap { (try? RTCPCompound.parse($0)) ?? [] }.filter { if case .senderReport = $0 { true } else { false } }
        #expect(!srs.isEmpty)
    }

    @Test func leavingFreesLinesThatTheNextTrackReuses() throws {
        let (h, _, _) = try twoParty()
        var out = CollectingOutput()
        h.engine.leave(room: h.room, participant: alice, output: &out)
        h.pumpEvents()
        let afterLeave = try #require(subscribeOffers(h, for: bob).last)
        #expect(afterLeave.sdp.media.map(\.direction) == [.inactive, .inactive])
        #expect(afterLeave.sdp.media.map(\.mid) == [Mid(rawValue: "0"), Mid(rawValue: "1")])
        #expect(afterLeave.tracks.isEmpty)
        let third = try ClientPC(address: TransportAddress("192.0.2.3:40004")!, ufrag: "carP", seed: 3)
        try h.publish(carol, user: "carol", pc: third)
        h.pumpEvents()
        let reused = try #require(subscribeOffers(h, for: bob).last)
        #expect(reused.sdp.media.count == 2, "lines are reused, not added")
        #expect(reused.sdp.media.map(\.direction) == [.sendonly, .sendonly])
        #expect(reused.tracks.map(\.user) == ["carol", "carol"])
    }

    @Test func aNewSourceContinuesTheSubscribersSequence() throws {
        let (h, pub, sub) = try twoParty()
        let (offer, _) = try #require(subscribeOffers(h, for: bob).last)
        let audioSSRC = try #require(offer.media[0].ssrcs.first).rawValue
        h.run(for: .milliseconds(100))
        sub.rtp = []
        for i in 0..<3 {
            try h.send(Packets.rtp(pt: 111, seq: UInt16(1000 + i), ts: UInt32(960 * i), ssrc: 1001, payload: [1, 2, 3]), from: pub)
        }
        // The publisher starts a new audio SSRC far away in sequence space.
        for i in 0..<3 {
            try h.send(Packets.rtp(pt: 111, seq: UInt16(60000 + i), ts: UInt32(5_000_000 + 960 * i), ssrc: 1009,
                                   extensions: [(4, Array("0".utf8))], payload: [4, 5, 6]), from: pub)
        }
        h.run(for: .milliseconds(20))
        let audio = sub.rtp.filter { header($0).ssrc == audioSSRC }
        #expect(audio.count == 6)
        let seqs = audio.map { header($0).seq }
        for (a, b) in zip(seqs, seqs.dropFirst()) { #expect(b == a &+ 1) }
        let ts = audio.map { header($0).ts }
        #expect(ts[3] &- ts[2] < 48000, "timestamps continue without a jump")
    }

    @Test func badInputIsCountedAndHarmless() throws {
        let (h, pub, sub) = try twoParty()
        var out = CollectingOutput()
        var garbage: [UInt8] = [0xFF, 1, 2, 3, 4]
        garbage.withUnsafeMutableBytes { h.engine.handleDatagram($0, from: TransportAddress("203.0.113.9:1")!, now: h.now, output: &out) }
        #expect(h.engine.counters.malformedDatagrams == 1)
        // SRTP-shaped bytes from a stranger.
        var rtp = Packets.rtp(pt: 96, seq: 1, ts: 1, ssrc: 1, payload: Array(repeating: 9, count: 40))
        rtp.withUnsafeMutableBytes { h.engine.handleDatagram($0, from: TransportAddress("203.0.113.9:1")!, now: h.now, output: &out) }
        #expect(h.engine.counters.unknownSource >= 1)
        // Plain RTP from the publisher's own address fails SRTP authentication.
        rtp.withUnsafeMutableBytes { h.engine.handleDatagram($0, from: pub.address, now: h.now, output: &out) }
        #expect(h.engine.counters.srtpAuthFailures == 1)
        #expect(out.datagrams.isEmpty)
        // The call carries on.
        sub.rtp = []
        try h.send(Packets.rtp(pt: 111, seq: 5, ts: 960, ssrc: 1001, payload: [1, 2, 3]), from: pub)
        h.run(for: .milliseconds(20))
        #expect(sub.rtp.count == 1)
    }

    @Test func lostConsentEndsTheTransport() throws {
        let (h, _, sub) = try twoParty(consentTimeout: .seconds(10))
        h.events = []
        h.run(for: .seconds(3))
        #expect(!h.events.contains { if case .disconnected = $0 { true } else { false } })
        // The subscriber's checks stop reaching the SFU (RFC 7675: consent lapses).
        h.cut.insert(sub.address)
        h.run(for: .seconds(12))
        let lost = h.events.compactMap { e -> (ParticipantID, TransportRole, String)? in
            if case .disconnected(_, let p, let role, let reason) = e { return (p, role, reason) } else { return nil }
        }
        #expect(lost.count == 1)
        #expect(lost.first?.0 == bob && lost.first?.1 == .subscribe && lost.first?.2 == "consent_lost")
        #expect(h.engine.counters.consentLost == 1)
    }

    @Test func aPublishReofferWithNewCredentialsRestartsICE() throws {
        let (h, pub, _) = try twoParty()
        let first = try SessionDescription(parsing: try #require(h.engine.lastPublishAnswer(room: h.room, participant: alice)))
        let fresh = ICECredentials(ufrag: "aliR", password: "client-password-restarted-0123456789")
        var out = CollectingOutput()
        let text = try h.engine.publish(room: h.room, participant: alice,
                                        offer: h.publishOffer(for: pub, credentials: fresh), output: &out)
        let second = try SessionDescription(parsing: text)
        let oldUfrag = try #require(first.iceUfrag(for: first.media[0]))
        let newUfrag = try #require(second.iceUfrag(for: second.media[0]))
        let newPassword = try #require(second.icePassword(for: second.media[0]))
        #expect(oldUfrag != newUfrag, "RFC 8445 §9: the answerer restarts with new credentials too")
        #expect(h.engine.sessionCount == 2, "the same transports, no new ones")
        // A check with the new credentials, from a new address, is answered and the address learned.
        var agent = ICEAgent(local: fresh, remote: ICECredentials(ufrag: newUfrag, password: newPassword),
                             localCandidates: [TransportAddress("192.0.2.1:40100")!], rng: SplitMix64(seed: 3))
        agent.addRemoteCandidate(ICECandidate(foundation: "1", priority: ICECandidate.priority(type: .host),
                                              address: SFUHarness.sfuAddress, type: .host))
        agent.handleTimeout(now: h.now)
        let next = agent.pollTransmit()
        let check = try #require(next)
        var bytes = check.payload
        bytes.withUnsafeMutableBytes { h.engine.handleDatagram($0, from: TransportAddress("192.0.2.1:40100")!, now: h.now, output: &out) }
        #expect(out.datagrams.contains { $0.destination == TransportAddress("192.0.2.1:40100")! })
        #expect(h.engine.counters.unknownICEUsername == 0)
    }

    @Test func simulcastForwardsTheWidestSendingLayerAndSwitchesAtItsKeyframe() throws {
        let h = SFUHarness()
        let pub = try ClientPC(address: TransportAddress("192.0.2.1:40000")!, ufrag: "aliP", seed: 1)
        let sub = try ClientPC(address: TransportAddress("192.0.2.2:40002")!, ufrag: "bobS", seed: 2)
        h.clients[pub.address] = pub
        h.engine.join(room: h.room, participant: alice, user: "alice")
        var out = CollectingOutput()
        let answer = try SessionDescription(parsing: try h.engine.publish(room: h.room, participant: alice,
                                                                          offer: h.simulcastOffer(for: pub), output: &out))
        #expect(answer.media[0].simulcast != nil, "simulcast is mirrored as receive")
        try pub.apply(remote: answer)
        h.subscribe(bob, user: "bob", pc: sub)
        #expect(h.connect([pub, sub]))
        h.run(for: .milliseconds(100))
        let layers: [(rid: String, ssrc: UInt32, width: UInt16, size: Int)] =
            [("q", 301, 320, 150), ("h", 302, 640, 250), ("f", 303, 1280, 350)]
        var seq: [UInt32: UInt16] = [:]
        func frame(_ l: (rid: String, ssrc: UInt32, width: UInt16, size: Int), key: Bool, ts: UInt32) throws {
            let s = seq[l.ssrc, default: 100]
            seq[l.ssrc] = s &+ 1
            try h.send(Packets.rtp(pt: 96, seq: s, ts: ts, ssrc: l.ssrc, marker: true,
                                   extensions: [(4, Array("0".utf8)), (10, Array(l.rid.utf8))],
                                   payload: Packets.vp8(pictureID: UInt16(s), key: key, size: l.size, width: l.width)), from: pub)
        }
        sub.rtp = []
        // Keyframes on every layer, then deltas: the stream moves up to the
        // widest layer at its keyframe and stays there.
        for l in layers { try frame(l, key: true, ts: 0) }
        h.run(for: .milliseconds(20))
        let afterKeyframes = sub.rtp.count
        #expect((1...3).contains(afterKeyframes))
        for i in 1...5 {
            for l in layers { try frame(l, key: false, ts: UInt32(3000 * i)) }
            h.run(for: .milliseconds(33))
        }
        let deltaSizes = sub.rtp.dropFirst(afterKeyframes).map { header($0).payload.count }
        #expect(deltaSizes == Array(repeating: 350, count: 5), "every delta comes from f")
        // Sequence numbers stayed continuous through the switches.
        let all = sub.rtp.map { header($0).seq }
        for (a, b) in zip(all, all.dropFirst()) { #expect(b == a &+ 1) }
        // f stops (its sender went away); h's next keyframe takes over, numbering continuing.
        let lastSeq = sub.rtp.last.map { header($0).seq }
        h.run(for: .seconds(3))
        sub.rtp = []
        for i in 6...8 {
            try frame(layers[1], key: i == 7, ts: UInt32(3000 * i))
            try frame(layers[0], key: i == 7, ts: UInt32(3000 * i))
            h.run(for: .milliseconds(33))
        }
        let switched = sub.rtp.map { header($0).seq }
        #expect(switched.count == 2, "h from its keyframe on")
        #expect(sub.rtp.map { header($0).payload.count } == [250, 250])
        if let lastSeq, let first = switched.first { #expect(first == lastSeq &+ 1) }
    }

    @Test func aLateSubscriberStartsAtTheCachedKeyframe() throws {
        let h = SFUHarness()
        let pub = try ClientPC(address: TransportAddress("192.0.2.1:40000")!, ufrag: "aliP", seed: 1)
        try h.publish(alice, user: "alice", pc: pub)
        #expect(h.connect([pub]))
        // The publisher's keyframe and two deltas pass before anyone subscribes.
        try h.send(Packets.rtp(pt: 96, seq: 500, ts: 9000, ssrc: 2001, payload: Packets.vp8(pictureID: 1, key: true)), from: pub)
        try h.send(Packets.rtp(pt: 96, seq: 501, ts: 12000, ssrc: 2001, payload: Packets.vp8(pictureID: 2, key: false)), from: pub)
        try h.send(Packets.rtp(pt: 96, seq: 502, ts: 15000, ssrc: 2001, payload: Packets.vp8(pictureID: 3, key: false)), from: pub)
        h.run(for: .milliseconds(50))
        pub.rtcp = []
        let sub = try ClientPC(address: TransportAddress("192.0.2.2:40002")!, ufrag: "bobS", seed: 2)
        h.subscribe(bob, user: "bob", pc: sub)
        #expect(h.connect([sub]))
        h.run(for: .milliseconds(20))
        let video = sub.rtp.filter { header($0).pt == 96 }
        #expect(video.count == 3, "the cached keyframe and what followed it, at once")
        #expect(header(video[0]).payload == Packets.vp8(pictureID: 1, key: true))
        #expect(h.engine.counters.keyframesFromCache == 1)
        let plis = pub.rtcp.flatMap { (try? RTCPCompound.parse($0)) ?? [] }.filter {
            if case .pictureLossIndication = $0 { true } else { false }
        }
        #expect(plis.isEmpty, "no keyframe request was needed")
        // Live packets continue the numbering.
        try h.send(Packets.rtp(pt: 96, seq: 503, ts: 18000, ssrc: 2001, payload: Packets.vp8(pictureID: 4, key: false)), from: pub)
        h.run(for: .milliseconds(20))
        let seqs = sub.rtp.filter { header($0).pt == 96 }.map { header($0).seq }
        #expect(seqs.count == 4)
        for (a, b) in zip(seqs, seqs.dropFirst()) { #expect(b == a &+ 1) }
    }
}
