import Foundation
import Testing
import RTCBase
@testable import SDP

private func pt(_ v: UInt8) -> PayloadType { PayloadType(rawValue: v)! }

@Suite struct AccessorTests {
    @Test func chromiumAudioVideo() throws {
        let name = "chromium_audio_video.sdp"
        let d = try Fixture.parse(name)
        #expect(d.origin.sessionVersion == 2)
        #expect(d.bundleGroup?.mids == [Mid(rawValue: "0"), Mid(rawValue: "1")])
        #expect(d.allowsMixedExtensions)
        #expect(d.media.map(\.kind) == [.audio, .video])

        let audio = d.media[0]
        #expect(audio.mid == Mid(rawValue: "0"))
        #expect(audio.proto == "UDP/TLS/RTP/SAVPF")
        #expect(audio.direction == .sendrecv)
        #expect(audio.payloadType(forCodec: "opus") == pt(111))
        #expect(audio.rtpMap(for: pt(111)) == RTPMap(payloadType: pt(111), encodingName: "opus", clockRate: 48000, channels: 2))
        let opusFmtp = try #require(audio.formatParameters(for: pt(111)))
        #expect(opusFmtp["minptime"] == "10")
        #expect(opusFmtp["useinbandfec"] == "1")
        // RED's fmtp is not key=value: kept as a bare parameter.
        #expect(audio.formatParameters(for: pt(63))?.parameters == [FormatParameter(name: "111/111", value: nil)])
        #expect(audio.rtcpFeedback(for: pt(111)).map(\.kind) == [.transportCC])
        let ext = Dictionary(uniqueKeysWithValues: audio.extensionMaps.map { ($0.uri, $0.id) })
        #expect(ext[HeaderExtensionURI.audioLevel] == 1)
        #expect(ext[HeaderExtensionURI.absSendTime] == 2)
        #expect(ext[HeaderExtensionURI.transportWideCC] == 3)
        #expect(ext[HeaderExtensionURI.mid] == 4)
        #expect(audio.isRTCPMux && audio.isRTCPReducedSize)
        #expect(audio.setup == .actpass)
        #expect(audio.ssrcs.count == 1)
        #expect(audio.msid?.streamID == (try Fixture.grep(name, attribute: "msid")[0]).split(separator: " ").first.map(String.init))

        // ICE and DTLS values against a plain text search of the file.
        #expect(audio.iceUfrag == (try Fixture.grep(name, attribute: "ice-ufrag").first))
        #expect(audio.icePassword == (try Fixture.grep(name, attribute: "ice-pwd").first))
        #expect(audio.iceOptions == ["trickle"])
        let fp = try #require(audio.fingerprints.first)
        #expect(fp.hashFunction == "sha-256")
        #expect(fp.bytes.count == 32)
        #expect("sha-256 " + fp.hexString == (try Fixture.grep(name, attribute: "fingerprint").first))
        #expect(audio.candidates == Array(try Fixture.grep(name, attribute: "candidate").prefix(audio.candidates.count)))
        #expect(audio.candidates.count >= 1)

        let video = d.media[1]
        #expect(video.payloadType(forCodec: "VP8") == pt(96))
        #expect(video.rtxPayloadType(for: pt(96)) == pt(97))
        #expect(video.formatParameters(for: pt(97))?.associatedPayloadType == pt(96))
        #expect(Set(video.rtcpFeedback(for: pt(96)).map(\.kind)) == [.remb, .transportCC, .fir, .nack, .pli])
        let vext = Dictionary(uniqueKeysWithValues: video.extensionMaps.map { ($0.uri, $0.id) })
        #expect(vext[HeaderExtensionURI.mid] == 4)
        #expect(vext[HeaderExtensionURI.rtpStreamID] == 10)
        #expect(vext[HeaderExtensionURI.repairedRTPStreamID] == 11)
        #expect(vext["urn:ietf:params:rtp-hdrext:toffset"] == 14)
        let fid = try #require(video.ssrcGroups.first)
        #expect(fid.semantics == "FID")
        #expect(fid.ssrcs.count == 2)
        #expect(video.ssrcs == fid.ssrcs)
    }

    @Test func chromiumSimulcast() throws {
        let d = try Fixture.parse("chromium_simulcast.sdp")
        let v = try #require(d.media.first)
        #expect(v.direction == .sendonly)
        #expect(v.rids.map(\.rid.rawValue) == ["q", "h", "f"])
        #expect(v.rids.allSatisfy { $0.direction == .send && $0.payloadTypes.isEmpty })
        let sc = try #require(v.simulcast)
        #expect(sc.send == [[SimulcastStream(rid: RID(rawValue: "q"))], [SimulcastStream(rid: RID(rawValue: "h"))],
                            [SimulcastStream(rid: RID(rawValue: "f"))]])
        #expect(sc.receive.isEmpty)
        #expect(v.ssrcs.isEmpty)
        let s = v.summary(index: 0)
        #expect(s.rids.map(\.rawValue) == ["q", "h", "f"])
        #expect(s.ridExtensionID == 10)
        #expect(s.repairedRIDExtensionID == 11)
        #expect(s.midExtensionID == 9)
        #expect(s.codec?.codec.payloadType == pt(96))
        #expect(s.codec?.rtx?.payloadType == pt(97))
    }

    @Test func chromiumDataChannel() throws {
        let d = try Fixture.parse("chromium_datachannel_audio.sdp")
        let app = try #require(d.media.last)
        #expect(app.kind == .application)
        #expect(app.proto == "UDP/DTLS/SCTP")
        #expect(app.formats == ["webrtc-datachannel"])
        #expect(app.sctpPort == 5000)
        #expect(app.maxMessageSize == 262144)
        #expect(app.payloadTypes.isEmpty)
        #expect(d.bundleGroup?.mids.map(\.rawValue) == ["0", "1"])
    }

    @Test func chromiumRecvonly() throws {
        let d = try Fixture.parse("chromium_recvonly.sdp")
        #expect(d.media.map(\.kind) == [.video, .audio])
        #expect(d.media.allSatisfy { $0.direction == .recvonly })
        #expect(d.media.allSatisfy { $0.ssrcs.isEmpty })
        #expect(d.media[0].payloadType(forCodec: "VP8") == pt(96))
        #expect(d.media[1].payloadType(forCodec: "opus") == pt(111))
    }

    @Test func aiortc() throws {
        let d = try Fixture.parse("aiortc_audio_video.sdp")
        let a = d.media[0], v = d.media[1]
        #expect(a.payloadType(forCodec: "opus") == pt(96))
        #expect(v.payloadType(forCodec: "VP8") == pt(97))
        #expect(v.rtxPayloadType(for: pt(97)) == pt(98))
        #expect(a.fingerprints.map(\.hashFunction) == ["sha-256", "sha-384", "sha-512"])
        #expect(a.fingerprints.map(\.bytes.count) == [32, 48, 64])
        #expect(a.hasEndOfCandidates)
        #expect(!a.isRTCPReducedSize)
        let s = v.summary(index: 1)
        #expect(s.ssrcs.count == 1)
        #expect(s.rtxSSRCs.count == 1)
        #expect(s.rtxSSRCs[s.ssrcs[0]] != nil)
        let expectedCname = try Fixture.grep("aiortc_audio_video.sdp", attribute: "ssrc").first?.split(separator: ":").last.map(String.init)
        #expect(s.cname == expectedCname, "\(String(describing: s.cname)) vs \(String(describing: expectedCname))")
        #expect(s.midExtensionID == 1)
        #expect(s.absSendTimeExtensionID == 3)
        #expect(d.mediaSummaries()[0].audioLevelExtensionID == 2)
    }

    @Test func summaryOfChromiumOffer() throws {
        let summaries = try Fixture.parse("chromium_audio_video.sdp").mediaSummaries()
        #expect(summaries.map(\.kind) == [.audio, .video])
        #expect(summaries.map(\.mid?.rawValue) == ["0", "1"])
        #expect(summaries.map(\.direction) == [.sendrecv, .sendrecv])
        #expect(summaries[0].codec?.payloadTypes == [pt(111)])
        #expect(summaries[1].codec?.payloadTypes == [pt(96), pt(97)])
        #expect(summaries[0].transportCCExtensionID == 3)
        let video = summaries[1]
        #expect(video.ssrcs.count == 1)
        #expect(video.rtxSSRCs.count == 1)
        #expect(video.msid != nil)
        #expect(video.rids.isEmpty)
    }

    @Test func sessionLevelFallbacks() throws {
        let sdp = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=ice-ufrag:sess\r\na=ice-pwd:sesspasswordsesspassword\r\n" +
            "a=fingerprint:sha-256 " + TestValues.fingerprint.hexString + "\r\na=setup:actpass\r\n" +
            "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:media\r\na=rtpmap:111 opus/48000/2\r\n"
        let d = try SessionDescription(parsing: sdp)
        let m = d.media[0]
        #expect(d.iceUfrag(for: m) == "media")
        #expect(d.icePassword(for: m) == "sesspasswordsesspassword")
        #expect(d.fingerprints(for: m) == [TestValues.fingerprint])
        #expect(d.setup(for: m) == .actpass)
        #expect(m.effectiveDirection == .sendrecv)
    }
}
