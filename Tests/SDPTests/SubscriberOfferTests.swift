import Foundation
import Testing
import RTCBase
@testable import SDP

private func pt(_ v: UInt8) -> PayloadType { PayloadType(rawValue: v)! }

enum SubscriberFixtures {
    static let config = OfferConfiguration(
        iceUfrag: "sfuS", icePassword: "sfuPasswordSfuPassword34", fingerprint: TestValues.fingerprint,
        candidates: ["1 1 udp 2130706431 127.0.0.1 40002 typ host"], sessionID: 77, sessionVersion: 1, cname: "sfu")

    static let tracks: [SubscriberTrack] = [
        SubscriberTrack(
            kind: .audio, mid: Mid(rawValue: "0"), ssrc: SSRC(1111), streamID: "alice", trackID: "alice-mic",
            codec: SubscriberCodec(payloadType: pt(111), name: "opus", clockRate: 48000, channels: 2,
                                   parameters: [FormatParameter(name: "minptime", value: "10"),
                                                FormatParameter(name: "useinbandfec", value: "1")],
                                   rtcpFeedback: [.transportCC]),
            headerExtensions: [ExtensionMap(id: 1, uri: HeaderExtensionURI.mid),
                               ExtensionMap(id: 2, uri: HeaderExtensionURI.audioLevel)]),
        SubscriberTrack(
            kind: .video, mid: Mid(rawValue: "1"), ssrc: SSRC(2222), rtxSSRC: SSRC(3333), streamID: "alice",
            trackID: "alice-cam",
            codec: SubscriberCodec(payloadType: pt(96), name: "VP8", clockRate: 90000, rtxPayloadType: pt(97),
                                   rtcpFeedback: [.nack, .pli, .fir, .transportCC]),
            headerExtensions: [ExtensionMap(id: 1, uri: HeaderExtensionURI.mid),
                               ExtensionMap(id: 3, uri: HeaderExtensionURI.transportWideCC)]),
    ]
}

@Suite struct SubscriberOfferTests {
    @Test func offerShape() throws {
        let offer = SessionDescription.subscriberOffer(tracks: SubscriberFixtures.tracks, config: SubscriberFixtures.config)
        let text = offer.serialized()
        #expect(try SessionDescription(parsing: text) == offer)
        #expect(offer.isICELite)
        #expect(offer.bundleGroup?.mids.map(\.rawValue) == ["0", "1"])
        let a = offer.media[0], v = offer.media[1]
        #expect(a.kind == .audio && v.kind == .video)
        #expect(a.port == 40002 && v.port == 40002)
        #expect(a.formats == ["111"] && v.formats == ["96", "97"])
        #expect(a.direction == .sendonly && v.direction == .sendonly)
        #expect(a.setup == .actpass && v.setup == .actpass)
        #expect(a.candidates.count == 1 && a.hasEndOfCandidates && v.candidates.isEmpty)
        #expect(a.fingerprints == [TestValues.fingerprint])
        #expect(a.formatParameters(for: pt(111))?.attribute.value == "111 minptime=10;useinbandfec=1")
        #expect(v.rtxPayloadType(for: pt(96)) == pt(97))
        #expect(v.ssrcGroups == [SSRCGroup(semantics: "FID", ssrcs: [SSRC(2222), SSRC(3333)])])
        #expect(v.msid == MediaStreamID(streamID: "alice", trackID: "alice-cam"))
        #expect(v.ssrcAttributes.filter { $0.name == "cname" }.map(\.value) == ["sfu", "sfu"])
        #expect(Set(v.rtcpFeedback(for: pt(96)).map(\.kind)) == [.nack, .pli, .fir, .transportCC])
        let s = v.summary(index: 1)
        #expect(s.ssrcs == [SSRC(2222)])
        #expect(s.rtxSSRCs == [SSRC(2222): SSRC(3333)])
        #expect(s.transportCCExtensionID == 3)
    }

    @Test func readsAnAnswer() throws {
        let offer = SessionDescription.subscriberOffer(tracks: SubscriberFixtures.tracks, config: SubscriberFixtures.config)
        // The SFU's own answerer, playing the client, answers with setup active.
        var cfg = TestValues.answerConfig(allowSending: true, setup: .active)
        cfg.iceUfrag = "cli1"
        let answer = try SessionDescription.answer(to: offer, config: cfg)
        let read = try SessionDescription.readSubscriberAnswer(answer, to: offer)
        #expect(read.iceUfrag == "cli1")
        #expect(read.icePassword == cfg.icePassword)
        #expect(read.fingerprints == [cfg.fingerprint])
        #expect(read.setup == .active)
        #expect(read.acceptedMids.map(\.rawValue) == ["0", "1"])
        #expect(read.rejectedMids.isEmpty)
    }

    @Test func readsABrowserStyleAnswerWithARejection() throws {
        let offer = SessionDescription.subscriberOffer(tracks: SubscriberFixtures.tracks, config: SubscriberFixtures.config)
        let fp = "sha-256 " + TestValues.fingerprint.hexString
        let answerText = """
        v=0\r
        o=- 123 2 IN IP4 127.0.0.1\r
        s=-\r
        t=0 0\r
        a=group:BUNDLE 0\r
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r
        c=IN IP4 0.0.0.0\r
        a=ice-ufrag:brws\r
        a=ice-pwd:browserPasswordBrowser99\r
        a=fingerprint:\(fp)\r
        a=setup:active\r
        a=mid:0\r
        a=recvonly\r
        a=rtcp-mux\r
        a=rtpmap:111 opus/48000/2\r
        m=video 0 UDP/TLS/RTP/SAVPF 96\r
        c=IN IP4 0.0.0.0\r
        a=mid:1\r

        """
        let read = try SessionDescription.readSubscriberAnswer(SessionDescription(parsing: answerText), to: offer)
        #expect(read.iceUfrag == "brws")
        #expect(read.setup == .active)
        #expect(read.acceptedMids.map(\.rawValue) == ["0"])
        #expect(read.rejectedMids.map(\.rawValue) == ["1"])

        var bad = try SessionDescription(parsing: answerText)
        bad.media[0].attributes = bad.media[0].attributes.map { $0.name == "setup" ? SetupRole.actpass.attribute : $0 }
        #expect(throws: NegotiationError.unsupportedSetup(.actpass)) { try SessionDescription.readSubscriberAnswer(bad, to: offer) }
        var short = try SessionDescription(parsing: answerText)
        short.media.removeLast()
        #expect(throws: NegotiationError.answerMismatch) { try SessionDescription.readSubscriberAnswer(short, to: offer) }
        var noFP = try SessionDescription(parsing: answerText)
        noFP.media[0].removeAttributes(named: "fingerprint")
        #expect(throws: NegotiationError.missingFingerprint(Mid(rawValue: "0"))) {
            try SessionDescription.readSubscriberAnswer(noFP, to: offer)
        }
    }
}

@Suite struct SubscriberLineLayoutTests {
    @Test func aDepartedTracksLineIsReusedByTheSameKindNeverRemoved() {
        var layout = SubscriberLineLayout<String>()
        #expect(layout.place("a-mic", kind: .audio) == 0)
        #expect(layout.place("a-cam", kind: .video) == 1)
        #expect(layout.place("b-cam", kind: .video) == 2)
        #expect(layout.place("a-cam", kind: .video) == 1, "placing again keeps the line")
        #expect(layout.remove("a-cam") == 1)
        #expect(layout.lines.count == 3)
        #expect(layout.lines[1].key == nil)
        // Audio never takes a video line; the next video does.
        #expect(layout.place("c-mic", kind: .audio) == 3)
        #expect(layout.place("c-cam", kind: .video) == 1)
        #expect(layout.lines.map(\.mid.rawValue) == ["0", "1", "2", "3"])
        #expect(layout.activeCount == 4)
        #expect(layout.remove("nobody") == nil)
    }

    @Test func inactiveLinesStayInTheOfferWithoutSSRCs() throws {
        let tracks = SubscriberFixtures.tracks
        let lines: [SubscriberMediaLine] = [
            .active(tracks[0]),
            .inactive(mid: Mid(rawValue: "1"), kind: .video, codec: tracks[1].codec),
        ]
        let offer = SessionDescription.subscriberOffer(lines: lines, config: SubscriberFixtures.config)
        #expect(try SessionDescription(parsing: offer.serialized()) == offer)
        #expect(offer.bundleGroup?.mids.map(\.rawValue) == ["0", "1"])
        let v = offer.media[1]
        #expect(v.direction == .inactive)
        #expect(v.port == offer.media[0].port, "still bundled, not rejected")
        #expect(v.ssrcs.isEmpty && v.msid == nil)
        #expect(v.formats == ["96", "97"])
        #expect(offer.media[0].direction == .sendonly)
        // A browser-style answer to it reads with the inactive line accepted.
        var cfg = TestValues.answerConfig(allowSending: true, setup: .active)
        cfg.iceUfrag = "cli2"
        let answer = try SessionDescription.answer(to: offer, config: cfg)
        #expect(answer.media[1].direction == .inactive)
        let read = try SessionDescription.readSubscriberAnswer(answer, to: offer)
        #expect(read.acceptedMids.map(\.rawValue) == ["0", "1"])
    }
}
