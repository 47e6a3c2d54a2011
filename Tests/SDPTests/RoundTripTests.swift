import Foundation
import Testing
import RTCBase
@testable import SDP

@Suite struct RoundTripTests {
    @Test(arguments: Fixture.all)
    func fixtureParsesAndRoundTrips(_ name: String) throws {
        let original = try Fixture.text(name)
        let parsed = try SessionDescription(parsing: original)
        #expect(!parsed.media.isEmpty)
        let text = parsed.serialized()
        let again = try SessionDescription(parsing: text)
        #expect(again == parsed)
        // Every fixture is stored with CRLF; serializing must reproduce it byte for byte.
        #expect(Array(text.utf8) == (try Fixture.bytes(name)))
    }

    @Test(arguments: Fixture.chromium)
    func chromiumFixtureIsByteIdentical(_ name: String) throws {
        let bytes = try Fixture.bytes(name)
        let parsed = try SessionDescription(parsing: bytes)
        #expect(Array(parsed.serialized().utf8) == bytes)
    }

    @Test(arguments: Fixture.all)
    func bareLineFeedsParseTheSame(_ name: String) throws {
        let crlf = try Fixture.text(name)
        let lf = try Fixture.lfText(name)
        #expect(!lf.utf8.contains(0x0D) && crlf.utf8.contains(0x0D))
        #expect(try SessionDescription(parsing: lf) == SessionDescription(parsing: crlf))
        // No trailing newline at all is fine too.
        let trimmed = String(lf.dropLast())
        #expect(try SessionDescription(parsing: trimmed) == SessionDescription(parsing: crlf))
    }

    @Test func serializedUsesCRLFOnly() throws {
        let text = try Fixture.lfText("chromium_audio_video.sdp")
        let out = try SessionDescription(parsing: text).serialized()
        let bytes = Array(out.utf8)
        for (i, b) in bytes.enumerated() where b == 0x0A {
            #expect(i > 0 && bytes[i - 1] == 0x0D)
        }
        #expect(out.hasSuffix("\r\n"))
    }

    @Test func unknownLinesAndAttributesArePreservedInOrder() throws {
        let sdp = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nx=experimental\r\na=zzz:1 2 3\r\na=flag\r\n" +
            "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\ny=other\r\na=b:2\r\na=a:1\r\na=rtpmap:111 opus/48000/2\r\n"
        let parsed = try SessionDescription(parsing: sdp)
        #expect(parsed.otherLines == [SDPLine(type: UInt8(ascii: "x"), value: "experimental")])
        #expect(parsed.attributes == [SDPAttribute("zzz", "1 2 3"), SDPAttribute("flag")])
        #expect(parsed.media[0].otherLines.map(\.value) == ["other"])
        #expect(parsed.media[0].attributes.map(\.name) == ["b", "a", "rtpmap"])
        #expect(parsed.serialized() == sdp)
    }

    @Test func builtDescriptionSerializesInRFCOrder() throws {
        var d = SessionDescription(origin: Origin(sessionID: 7, sessionVersion: 3))
        d.information = "info"
        d.bandwidths = [Bandwidth(type: "AS", value: 100)]
        d.connection = ConnectionData(address: "192.0.2.1")
        d.attributes = [SDPAttribute("ice-lite")]
        var m = MediaDescription(kind: .video, port: 9, proto: "UDP/TLS/RTP/SAVPF", formats: ["96"])
        m.bandwidths = [Bandwidth(type: "TIAS", value: 64000)]
        m.attributes = [RTPMap(payloadType: PayloadType(rawValue: 96)!, encodingName: "VP8", clockRate: 90000).attribute]
        d.media = [m]
        let expected = "v=0\r\no=- 7 3 IN IP4 0.0.0.0\r\ns=-\r\ni=info\r\nc=IN IP4 192.0.2.1\r\nb=AS:100\r\nt=0 0\r\n" +
            "a=ice-lite\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nb=TIAS:64000\r\na=rtpmap:96 VP8/90000\r\n"
        #expect(d.serialized() == expected)
        #expect(try SessionDescription(parsing: expected) == d)
    }
}
