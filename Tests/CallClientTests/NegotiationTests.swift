@testable import CallClient
import ICE
import RTCBase
import SDP
import Testing

@Suite struct PublishOfferTests {
    @Test func offerHasOneSendonlyBundledSectionPerStream() throws {
        let sender = try makeSender(screen: true)
        let offer = PublishNegotiation.offer(streams: sender.streams, transport: Fixtures.client, cname: "cn", sessionID: 9)
        let parsed = try SessionDescription(parsing: offer.serialized())
        #expect(parsed == offer)
        #expect(parsed.bundleGroup?.mids.map(\.rawValue) == ["0", "1", "2"])
        #expect(parsed.media.map(\.kind) == [.audio, .video, .video])
        for m in parsed.media {
            #expect(m.direction == .sendonly)
            #expect(m.isRTCPMux && m.isRTCPReducedSize)
            #expect(m.setup == .actpass)
            #expect(m.iceUfrag == "cli1" && m.icePassword == "clientPasswordClientPass")
            #expect(m.fingerprints == [Fixtures.fingerprint])
            #expect(m.port == 40000)
            let ext = Dictionary(uniqueKeysWithValues: m.extensionMaps.map { ($0.uri, $0.id) })
            #expect(ext[HeaderExtensionURI.mid] == 4 && ext[HeaderExtensionURI.transportWideCC] == 3)
        }
        // Candidates with the BUNDLE-tagged section only (RFC 8843 §7.2.1).
        #expect(parsed.media[0].candidates == Fixtures.client.candidates && parsed.media[0].hasEndOfCandidates)
        #expect(parsed.media[1].candidates.isEmpty)

        let audio = parsed.media[0]
        #expect(audio.formats == ["111"])
        #expect(audio.rtpMap(for: pt(111)) == RTPMap(payloadType: pt(111), encodingName: "opus", clockRate: 48000, channels: 2))
        #expect(audio.formatParameters(for: pt(111))?["useinbandfec"] == "1")

        let camera = parsed.media[1], screen = parsed.media[2]
        #expect(camera.formats == ["96", "97"] && screen.formats == ["98", "99"])
        #expect(camera.rtxPayloadType(for: pt(96)) == pt(97) && screen.rtxPayloadType(for: pt(98)) == pt(99))
        let feedback = Set(camera.rtcpFeedback(for: pt(96)).map(\.kind))
        #expect(feedback == [.nack, .pli, .fir, .remb, .transportCC])
        let cam = sender.streams[1]
        #expect(camera.ssrcGroups == [SSRCGroup(semantics: "FID", ssrcs: [cam.ssrc, try #require(cam.rtxSSRC)])])
        #expect(camera.ssrcAttributes.contains { $0.ssrc == cam.ssrc && $0.name == "cname" && $0.value == "cn" })
        // Camera and microphone share a stream (lip sync); the screen has its own.
        #expect(camera.msid?.streamID == audio.msid?.streamID && screen.msid?.streamID != camera.msid?.streamID)
        let summary = camera.summary(index: 1)
        #expect(summary.ssrcs == [cam.ssrc] && summary.codec?.rtx?.payloadType == pt(97))
    }

    /// The SFU's own answerer (what `parley serve` runs) accepts the offer,
    /// and the answer reads back into the transport parameters.
    @Test func sfuAnswerReadsBack() throws {
        let sender = try makeSender(screen: true)
        let offer = PublishNegotiation.offer(streams: sender.streams, transport: Fixtures.client, cname: "cn", sessionID: 9)
        let config = AnswerConfiguration(
            iceUfrag: "sfu1", icePassword: "sfuPasswordSfuPassword12", fingerprint: Fixtures.sfuFingerprint,
            candidates: Fixtures.sfuCandidates, sessionID: 3, setupRole: .passive, allowSending: false)
        let answerText = try SessionDescription.answer(to: offer, config: config).serialized()
        let answer = try PublishNegotiation.readAnswer(try SessionDescription(parsing: answerText), to: offer)
        #expect(answer.acceptedMids.map(\.rawValue) == ["0", "1", "2"])
        #expect(answer.rtxMids == [Mid(rawValue: "1"), Mid(rawValue: "2")])
        #expect(answer.extensions.mid == 4 && answer.extensions.transportCC == 3)
        #expect(answer.remote.credentials == ICECredentials(ufrag: "sfu1", password: "sfuPasswordSfuPassword12"))
        #expect(answer.remote.fingerprint == Fixtures.sfuFingerprint)
        #expect(answer.remote.weAreDTLSClient)
        #expect(answer.remote.isICELite)
        // UDP only: the ICE-TCP candidate is left out.
        #expect(answer.remote.candidates.map(\.address) == [TransportAddress("127.0.0.1:50000")])
    }

    @Test func answerWithoutRTXDisablesIt() throws {
        let sender = try makeSender()
        let offer = PublishNegotiation.offer(streams: sender.streams, transport: Fixtures.client, cname: "cn", sessionID: 9)
        var config = AnswerConfiguration(
            iceUfrag: "sfu1", icePassword: "sfuPasswordSfuPassword12", fingerprint: Fixtures.sfuFingerprint,
            candidates: Fixtures.sfuCandidates, sessionID: 3)
        config.acceptVideoRTX = false
        let answer = try PublishNegotiation.readAnswer(SessionDescription.answer(to: offer, config: config), to: offer)
        #expect(answer.rtxMids.isEmpty)
        #expect(throws: NegotiationError.self) {
            var bad = offer
            bad.media.removeLast()
            _ = try PublishNegotiation.readAnswer(SessionDescription.answer(to: offer, config: config), to: bad)
        }
    }
}

@Suite struct SubscribeAnswerTests {
    static let sfu = OfferConfiguration(
        iceUfrag: "sfuS", icePassword: "sfuPasswordSfuPassword34", fingerprint: Fixtures.sfuFingerprint,
        candidates: Fixtures.sfuCandidates, sessionID: 77, sessionVersion: 2, cname: "parley-sfu")

    static let audioCodec = SubscriberCodec(payloadType: pt(111), name: "opus", clockRate: 48000, channels: 2,
                                            parameters: [FormatParameter(name: "minptime", value: "10")],
                                            rtcpFeedback: [.transportCC])
    static let videoCodec = SubscriberCodec(payloadType: pt(96), name: "VP8", clockRate: 90000, rtxPayloadType: pt(97),
                                            rtcpFeedback: [.nack, .pli, .fir, .remb, .transportCC])

    /// What the SFU offers after a track left: the line stays, inactive
    /// (JSEP), and its codec keeps payload types of its own.
    static func offer() -> SessionDescription {
        var screenCodec = videoCodec
        screenCodec.payloadType = pt(98)
        screenCodec.rtxPayloadType = pt(99)
        let ext = [ExtensionMap(id: 4, uri: HeaderExtensionURI.mid), ExtensionMap(id: 2, uri: HeaderExtensionURI.absSendTime),
                   ExtensionMap(id: 3, uri: HeaderExtensionURI.transportWideCC)]
        return SessionDescription.subscriberOffer(lines: [
            .active(SubscriberTrack(kind: .audio, mid: Mid(rawValue: "0"), ssrc: SSRC(1111), streamID: "s-bob",
                                    trackID: "t1", codec: audioCodec,
                                    headerExtensions: ext + [ExtensionMap(id: 1, uri: HeaderExtensionURI.audioLevel)])),
            .active(SubscriberTrack(kind: .video, mid: Mid(rawValue: "1"), ssrc: SSRC(2222), rtxSSRC: SSRC(3333),
                                    streamID: "s-bob", trackID: "t2", codec: videoCodec, headerExtensions: ext)),
            .inactive(mid: Mid(rawValue: "2"), kind: .video, codec: screenCodec),
        ], config: sfu)
    }

    @Test func answersRecvonlyAsFullAgentAndDTLSClient() throws {
        let offer = Self.offer()
        let negotiation = try SubscribeNegotiation(offer: offer, transport: Fixtures.client, sessionID: 5, sessionVersion: 1)
        let answer = try SessionDescription(parsing: negotiation.answer.serialized())
        #expect(!answer.isICELite, "a full agent must not claim ice-lite")
        #expect(answer.bundleGroup?.mids.map(\.rawValue) == ["0", "1", "2"])
        #expect(answer.media.map(\.direction) == [.recvonly, .recvonly, .inactive])
        #expect(answer.media.allSatisfy { $0.setup == .active })
        #expect(answer.media[0].candidates == Fixtures.client.candidates)
        #expect(answer.media[1].formats == ["96", "97"])
        #expect(answer.media[2].formats == ["98", "99"])
        // The SFU's own reader accepts it.
        let read = try SessionDescription.readSubscriberAnswer(answer, to: offer)
        #expect(read.acceptedMids.map(\.rawValue) == ["0", "1", "2"] && read.setup == .active)
        #expect(read.iceUfrag == "cli1" && read.fingerprints == [Fixtures.fingerprint])

        // Routing: SSRCs and track ids from the offer.
        let lines = negotiation.lines
        #expect(lines.map(\.isActive) == [true, true, false])
        #expect(lines[0].ssrc == SSRC(1111) && lines[0].trackID == "t1" && !lines[0].nack)
        #expect(lines[1].ssrc == SSRC(2222) && lines[1].rtxSSRC == SSRC(3333) && lines[1].rtxPayloadType == pt(97))
        #expect(lines[1].nack && lines[1].pli && lines[1].extensions.mid == 4)
        #expect(lines[2].ssrc == nil && lines[2].payloadType == pt(98))

        #expect(negotiation.remote.weAreDTLSClient)
        #expect(negotiation.remote.candidates.count == 1)
        #expect(negotiation.remote.credentials == ICECredentials(ufrag: "sfuS", password: "sfuPasswordSfuPassword34"))
    }

    /// A renegotiation that puts a new track on the reused line starts a new
    /// track; the old one keeps its stats.
    @Test func reusedLineStartsANewTrack() throws {
        let receiver = MediaReceiver(rtcpSSRC: SSRC(9), cname: "r")
        let first = try SubscribeNegotiation(offer: Self.offer(), transport: Fixtures.client, sessionID: 5, sessionVersion: 1)
        receiver.configure(lines: first.lines, now: Fixtures.start)
        var lines = first.lines
        lines[1].ssrc = SSRC(4444)
        lines[1].trackID = "t9"
        receiver.configure(lines: lines, now: Fixtures.start)
        receiver.updateTracks([TrackInfo(trackID: "t9", user: "carol", kind: "video", source: "camera", mid: "1")])
        let stats = receiver.stats()
        #expect(stats.map(\.trackID) == ["t2", "t1", "t9"])
        #expect(stats.last?.user == "carol" && stats.last?.source == "camera")
    }
}
