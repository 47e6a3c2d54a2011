import Foundation
import Testing
import RTCBase
@testable import SDP

private func pt(_ v: UInt8) -> PayloadType { PayloadType(rawValue: v)! }

/// Checks every answer must satisfy, whatever the offer.
private func checkAnswerShape(_ answer: SessionDescription, offer: SessionDescription, config: AnswerConfiguration) throws {
    // It must survive our own parser unchanged.
    let reparsed = try SessionDescription(parsing: answer.serialized())
    #expect(reparsed == answer)
    #expect(answer.isICELite)
    #expect(answer.media.count == offer.media.count)
    let bundle = try #require(answer.bundleGroup)
    var sawCandidates = false
    for (o, a) in zip(offer.media, answer.media) {
        #expect(a.kind == o.kind)
        #expect(a.mid == o.mid)
        if a.port == 0 {
            #expect(a.mid.map { !bundle.mids.contains($0) } ?? true)
            continue
        }
        #expect(bundle.mids.contains(try #require(a.mid)))
        #expect(a.iceUfrag == config.iceUfrag)
        #expect(a.icePassword == config.icePassword)
        #expect(a.fingerprints == [config.fingerprint])
        #expect(a.setup == .passive || a.setup == .active)
        #expect(a.isRTCPMux)
        // Only Opus or VP8 (+ RTX for VP8), with the offer's numbers.
        let names = a.rtpMaps.map { $0.encodingName.lowercased() }
        #expect(names == (a.kind == .audio ? ["opus"] : names.count == 2 ? ["vp8", "rtx"] : ["vp8"]))
        for m in a.rtpMaps { #expect(o.rtpMap(for: m.payloadType) == m) }
        #expect(a.payloadTypes == a.rtpMaps.map(\.payloadType))
        // Header extensions: only supported ones, with the offer's ids.
        for e in a.extensionMaps {
            #expect(config.headerExtensions.contains(e.uri))
            #expect(o.extensionMaps.contains { $0.id == e.id && $0.uri == e.uri })
        }
        for f in a.rtcpFeedback { #expect(config.rtcpFeedback.contains(f.kind)) }
        if !a.candidates.isEmpty {
            #expect(!sawCandidates)
            sawCandidates = true
            #expect(a.candidates == config.candidates)
            #expect(a.hasEndOfCandidates)
        }
    }
    #expect(sawCandidates)
}

@Suite struct AnswerTests {
    @Test(arguments: Fixture.chromium + Fixture.aiortc + ["rfc8829_offer_a1.sdp", "rfc8829_offer_b1.sdp"])
    func answersAreWellFormed(_ name: String) throws {
        let offer = try Fixture.parse(name)
        let config = TestValues.answerConfig()
        let answer = try SessionDescription.answer(to: offer, config: config)
        try checkAnswerShape(answer, offer: offer, config: config)
    }

    @Test func chromiumAudioVideoAnswer() throws {
        let offer = try Fixture.parse("chromium_audio_video.sdp")
        let answer = try SessionDescription.answer(to: offer, config: TestValues.answerConfig())
        #expect(answer.bundleGroup?.mids.map(\.rawValue) == ["0", "1"])
        #expect(answer.origin.sessionID == 4_611_686_018_427_387_904)
        let audio = answer.media[0], video = answer.media[1]
        #expect(audio.formats == ["111"])
        #expect(audio.port == 40000)
        #expect(audio.connection?.address == "127.0.0.1")
        #expect(audio.formatParameters(for: pt(111))?["useinbandfec"] == "1")
        #expect(video.formats == ["96", "97"])
        #expect(video.formatParameters(for: pt(97))?.associatedPayloadType == pt(96))
        #expect(audio.setup == .passive && video.setup == .passive)
        // sendrecv offer, SFU only receiving by default.
        #expect(audio.direction == .recvonly && video.direction == .recvonly)
        #expect(audio.extensionMaps.map(\.id) == [1, 2, 3, 4])
        #expect(video.extensionMaps.map(\.uri) == [HeaderExtensionURI.absSendTime, HeaderExtensionURI.transportWideCC,
                                                   HeaderExtensionURI.mid, HeaderExtensionURI.rtpStreamID,
                                                   HeaderExtensionURI.repairedRTPStreamID])
        #expect(video.extensionMaps.map(\.id) == [2, 3, 4, 10, 11])
        #expect(Set(video.rtcpFeedback.map(\.kind)) == [.remb, .transportCC, .fir, .nack, .pli])
        #expect(video.rtcpFeedback.allSatisfy { $0.payloadType == pt(96) })
        #expect(audio.candidates.count == 1 && video.candidates.isEmpty)
        #expect(audio.isRTCPReducedSize)
        #expect(!answer.allowsMixedExtensions)
    }

    @Test func sendrecvAndActiveWhenConfigured() throws {
        let offer = try Fixture.parse("chromium_audio_video.sdp")
        let answer = try SessionDescription.answer(to: offer, config: TestValues.answerConfig(allowSending: true, setup: .active))
        #expect(answer.media.allSatisfy { $0.direction == .sendrecv && $0.setup == .active })
        #expect(throws: NegotiationError.invalidConfiguration) {
            try SessionDescription.answer(to: offer, config: TestValues.answerConfig(setup: .actpass))
        }
    }

    @Test func rtxCanBeDeclined() throws {
        let offer = try Fixture.parse("chromium_audio_video.sdp")
        var config = TestValues.answerConfig()
        config.acceptVideoRTX = false
        let answer = try SessionDescription.answer(to: offer, config: config)
        #expect(answer.media[1].formats == ["96"])
        #expect(answer.media[1].rtpMaps.count == 1)
    }

    @Test func simulcastIsMirrored() throws {
        let offer = try Fixture.parse("chromium_simulcast.sdp")
        let answer = try SessionDescription.answer(to: offer, config: TestValues.answerConfig())
        let v = answer.media[0]
        #expect(v.direction == .recvonly)
        #expect(v.rids == ["q", "h", "f"].map { RIDDescription(rid: RID(rawValue: $0), direction: .recv) })
        #expect(v.simulcast == Simulcast(receive: [[SimulcastStream(rid: RID(rawValue: "q"))],
                                                   [SimulcastStream(rid: RID(rawValue: "h"))],
                                                   [SimulcastStream(rid: RID(rawValue: "f"))]]))
        #expect(v.values(of: "simulcast") == ["recv q;h;f"])
        #expect(v.extensionMaps.contains { $0.uri == HeaderExtensionURI.rtpStreamID && $0.id == 10 })
    }

    @Test func pausedAndAlternativeSimulcastStreams() throws {
        var offer = try Fixture.parse("chromium_simulcast.sdp")
        offer.media[0].removeAttributes(named: "simulcast")
        offer.media[0].append(SDPAttribute("simulcast", "send q,h;~f"))
        let answer = try SessionDescription.answer(to: offer, config: TestValues.answerConfig())
        #expect(answer.media[0].values(of: "simulcast") == ["recv q,h;~f"])
    }

    @Test func dataChannelIsRejected() throws {
        let offer = try Fixture.parse("chromium_datachannel_audio.sdp")
        let answer = try SessionDescription.answer(to: offer, config: TestValues.answerConfig())
        let app = answer.media[1]
        #expect(app.port == 0)
        #expect(app.kind == .application)
        #expect(app.proto == "UDP/DTLS/SCTP")
        #expect(app.formats == ["webrtc-datachannel"])
        #expect(app.mid == Mid(rawValue: "1"))
        #expect(answer.bundleGroup?.mids.map(\.rawValue) == ["0"])
        #expect(answer.media[0].port == 40000)
        #expect(answer.serialized().contains("m=application 0 UDP/DTLS/SCTP webrtc-datachannel\r\n"))
    }

    @Test func recvonlyOfferGetsInactiveOrSendonly() throws {
        let offer = try Fixture.parse("chromium_recvonly.sdp")
        let receiveOnly = try SessionDescription.answer(to: offer, config: TestValues.answerConfig())
        #expect(receiveOnly.media.allSatisfy { $0.direction == .inactive })
        let sending = try SessionDescription.answer(to: offer, config: TestValues.answerConfig(allowSending: true))
        #expect(sending.media.allSatisfy { $0.direction == .sendonly })
    }

    @Test func aiortcKeepsItsPayloadTypes() throws {
        let answer = try SessionDescription.answer(to: Fixture.parse("aiortc_audio_video.sdp"), config: TestValues.answerConfig())
        #expect(answer.media[0].formats == ["96"])
        #expect(answer.media[1].formats == ["97", "98"])
        #expect(!answer.media[0].isRTCPReducedSize)
    }

    @Test func unsupportedCodecsAndKindsAreRejected() throws {
        var offer = try Fixture.parse("rfc8829_offer_a1.sdp")
        // Video offering only H264: rejected, not an error, while audio survives.
        offer.media[1].formats = ["100"]
        offer.media[1].attributes = offer.media[1].attributes.map { a in
            a.name == "rtpmap" && a.value == "100 VP8/90000" ? SDPAttribute("rtpmap", "100 H264/90000") : a
        }
        var text = MediaDescription(kind: .text, port: 9, proto: "UDP/TLS/RTP/SAVPF", formats: ["98"])
        text.attributes = [SDPAttribute("mid", "t1")]
        offer.media.append(text)
        let answer = try SessionDescription.answer(to: offer, config: TestValues.answerConfig())
        #expect(answer.media.map(\.port) == [40000, 0, 0])
        #expect(answer.bundleGroup?.mids.map(\.rawValue) == ["a1"])
    }

    @Test func unusableOffersGiveTypedErrors() throws {
        let base = try Fixture.parse("chromium_audio_video.sdp")
        let config = TestValues.answerConfig()

        var noBundle = base
        noBundle.removeAttributes(named: "group")
        #expect(throws: NegotiationError.bundleNotOffered) { try SessionDescription.answer(to: noBundle, config: config) }

        var noUfrag = base
        for i in noUfrag.media.indices { noUfrag.media[i].removeAttributes(named: "ice-ufrag") }
        #expect(throws: NegotiationError.missingICECredentials(Mid(rawValue: "0"))) {
            try SessionDescription.answer(to: noUfrag, config: config)
        }

        var noFingerprint = base
        for i in noFingerprint.media.indices { noFingerprint.media[i].removeAttributes(named: "fingerprint") }
        #expect(throws: NegotiationError.missingFingerprint(Mid(rawValue: "0"))) {
            try SessionDescription.answer(to: noFingerprint, config: config)
        }

        var noMux = base
        noMux.media[0].removeAttributes(named: "rtcp-mux")
        #expect(throws: NegotiationError.rtcpMuxNotOffered(Mid(rawValue: "0"))) {
            try SessionDescription.answer(to: noMux, config: config)
        }

        var hold = base
        hold.media[0].attributes = hold.media[0].attributes.map { $0.name == "setup" ? SetupRole.holdconn.attribute : $0 }
        #expect(throws: NegotiationError.unsupportedSetup(.holdconn)) { try SessionDescription.answer(to: hold, config: config) }

        var noMid = base
        noMid.media[1].removeAttributes(named: "mid")
        #expect(throws: NegotiationError.missingMid(index: 1)) { try SessionDescription.answer(to: noMid, config: config) }

        let onlyData = try Fixture.parse("chromium_datachannel_audio.sdp")
        var dataOnly = onlyData
        dataOnly.media.removeFirst()
        #expect(throws: NegotiationError.noUsableMedia) { try SessionDescription.answer(to: dataOnly, config: config) }

        // RFC 8853's example has no BUNDLE at all.
        #expect(throws: NegotiationError.bundleNotOffered) {
            try SessionDescription.answer(to: Fixture.parse("rfc8853_simulcast_offer.sdp"), config: config)
        }
    }

    @Test func activeOfferGetsPassiveAndPassiveGetsActive() throws {
        var offer = try Fixture.parse("chromium_audio_video.sdp")
        offer.media[0].attributes = offer.media[0].attributes.map { $0.name == "setup" ? SetupRole.active.attribute : $0 }
        offer.media[1].attributes = offer.media[1].attributes.map { $0.name == "setup" ? SetupRole.passive.attribute : $0 }
        let answer = try SessionDescription.answer(to: offer, config: TestValues.answerConfig(setup: .active))
        #expect(answer.media.map(\.setup) == [.passive, .active])
    }
}
