import Testing
import RTCBase
@testable import SDP

private func pt(_ v: UInt8) -> PayloadType { PayloadType(rawValue: v)! }

/// The JSEP examples of RFC 8829 §7 (offers A1 and B1), unfolded from the RFC text.
@Suite struct RFC8829Tests {
    @Test func offerA1() throws {
        let d = try Fixture.parse("rfc8829_offer_a1.sdp")
        #expect(d.origin.sessionID == 4_962_303_333_179_871_722)
        #expect(d.iceOptions == ["trickle"])
        #expect(d.bundleGroup?.mids.map(\.rawValue) == ["a1", "v1"])
        let a = d.media[0], v = d.media[1]
        #expect(a.port == 56500 && a.connection?.address == "192.0.2.1")
        #expect(a.payloadType(forCodec: "opus") == pt(96))
        #expect(a.rtpMap(for: pt(98)) == RTPMap(payloadType: pt(98), encodingName: "telephone-event", clockRate: 48000))
        #expect(a.value(of: "maxptime") == "120")
        #expect(a.iceUfrag == "ETEn1v9DoTMB9J4r")
        #expect(a.icePassword == "OtSK0WpNtpUjkY4+86js7ZQl")
        #expect(a.candidates == ["3348148302 1 udp 2113937151 192.0.2.1 56500 typ host",
                                 "3348148302 2 udp 2113937151 192.0.2.1 56501 typ host"])
        #expect(a.hasEndOfCandidates)
        #expect(a.fingerprints.first?.bytes.prefix(4) == [0x19, 0xE2, 0x1C, 0x3B])
        #expect(a.fingerprints.first?.bytes.count == 32)
        #expect(v.payloadType(forCodec: "VP8") == pt(100))
        #expect(v.rtxPayloadType(for: pt(100)) == pt(101))
        #expect(v.extensionMaps == [ExtensionMap(id: 3, uri: HeaderExtensionURI.mid)])
        #expect(v.msid == MediaStreamID(streamID: "61317484-2ed4-49d7-9eb7-1414322a7aae",
                                        trackID: "f30bdb4a-5db8-49b5-bcdc-e0c9a23172e0"))
        let answer = try SessionDescription.answer(to: d, config: TestValues.answerConfig())
        #expect(answer.bundleGroup?.mids.map(\.rawValue) == ["a1", "v1"])
        #expect(answer.media[0].formats == ["96"])
        #expect(answer.media[1].formats == ["100", "101"])
        #expect(answer.media[1].rtcpFeedback.map(\.kind) == [.fir, .nack, .pli])
    }

    @Test func offerB1BundleOnlyDataChannel() throws {
        let d = try Fixture.parse("rfc8829_offer_b1.sdp")
        let dc = d.media[1]
        #expect(dc.port == 0 && dc.isBundleOnly && !dc.isRejected)
        #expect(dc.formatParameters.first?.format == "webrtc-datachannel")
        #expect(dc.formatParameters.first?["max-message-size"] == "65536")
        let answer = try SessionDescription.answer(to: d, config: TestValues.answerConfig())
        #expect(answer.media[1].port == 0)
        #expect(answer.bundleGroup?.mids.map(\.rawValue) == ["a1"])
    }
}
