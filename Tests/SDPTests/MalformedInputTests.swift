import Foundation
import Testing
import RTCBase
@testable import SDP

private let header = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"

private func parseError(_ text: String) -> SDPParseError? {
    do {
        _ = try SessionDescription(parsing: text)
        return nil
    } catch {
        return error
    }
}

private func parseError(bytes: [UInt8]) -> SDPParseError? {
    do {
        _ = try SessionDescription(parsing: bytes)
        return nil
    } catch {
        return error
    }
}

@Suite struct MalformedInputTests {
    @Test(arguments: [
        // (input, line, reason)
        ("", 1, SDPParseError.Reason.empty),
        ("\r\n\r\n", 2, .empty),
        ("o=- 1 1 IN IP4 0.0.0.0\r\n", 1, .missingVersion),
        ("v=1\r\n", 1, .unsupportedVersion),
        ("v=0\r\nv=0\r\n", 2, .duplicateLine(UInt8(ascii: "v"))),
        ("v=0\r\ns=-\r\n", 2, .missingLine(UInt8(ascii: "o"))),
        ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\nt=0 0\r\n", 3, .missingLine(UInt8(ascii: "s"))),
        ("v=0\r\no=- 1\r\n", 2, .malformedOrigin),
        ("v=0\r\no=- x 1 IN IP4 0.0.0.0\r\n", 2, .malformedOrigin),
        ("v=0\r\no=- 99999999999999999999999 1 IN IP4 0.0.0.0\r\n", 2, .numberOutOfRange),
        ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns", 3, .malformedLine),
        ("v=0\r\nhello\r\n", 2, .malformedLine),
        ("v=0\r\n=x\r\n", 2, .malformedLine),
        ("v=0\r\n1=x\r\n", 2, .malformedLine),
        (header + "c=IN IP4\r\n", 5, .malformedConnection),
        (header + "b=AS\r\n", 5, .malformedBandwidth),
        (header + "b=AS:lots\r\n", 5, .malformedBandwidth),
        (header + "b=AS:999999999999999999999\r\n", 5, .numberOutOfRange),
        ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0\r\n", 4, .malformedTiming),
        ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nr=7d 1h 0 25h\r\n", 4, .malformedTiming),
        (header + "m=audio\r\n", 5, .malformedMediaLine),
        (header + "m=audio 9 RTP/AVP\r\n", 5, .malformedMediaLine),
        (header + "m=audio nine RTP/AVP 0\r\n", 5, .malformedMediaLine),
        (header + "m=audio 70000 RTP/AVP 0\r\n", 5, .numberOutOfRange),
        (header + "m=audio 9/x RTP/AVP 0\r\n", 5, .malformedMediaLine),
        (header + "m=audio 9 UDP/TLS/RTP/SAVPF opus\r\n", 5, .malformedMediaLine),
        (header + "m=audio 9 UDP/TLS/RTP/SAVPF 200\r\n", 5, .numberOutOfRange),
        (header + "m=audio 9 UDP/TLS/RTP/SAVPF 99999999999999999999\r\n", 5, .numberOutOfRange),
        (header + "m=au dio 9 RTP/AVP 0\r\n", 5, .malformedMediaLine),
        (header + "m=audio 9 RTP/AVP 0\r\no=- 1 1 IN IP4 0.0.0.0\r\n", 6, .unexpectedLine(UInt8(ascii: "o"))),
        (header + "m=audio 9 RTP/AVP 0\r\nc=IN IP4 0.0.0.0\r\nc=IN IP4 0.0.0.0\r\n", 7, .duplicateLine(UInt8(ascii: "c"))),
        (header + "a=\r\n", 5, .malformedAttribute("")),
        (header + "a=:x\r\n", 5, .malformedAttribute("")),
        (header + "a=rtpmap:111 opus\r\n", 5, .malformedAttribute("rtpmap")),
        (header + "a=rtpmap:111\r\n", 5, .malformedAttribute("rtpmap")),
        (header + "a=rtpmap:300 opus/48000\r\n", 5, .malformedAttribute("rtpmap")),
        (header + "a=rtpmap:x opus/48000\r\n", 5, .malformedAttribute("rtpmap")),
        (header + "a=rtpmap:111 opus/48k\r\n", 5, .malformedAttribute("rtpmap")),
        (header + "a=rtpmap:111 opus/99999999999\r\n", 5, .malformedAttribute("rtpmap")),
        (header + "a=rtpmap:111 opus/48000/two\r\n", 5, .malformedAttribute("rtpmap")),
        (header + "a=rtpmap:111 /48000\r\n", 5, .malformedAttribute("rtpmap")),
        (header + "a=fmtp:\r\n", 5, .malformedAttribute("fmtp")),
        (header + "a=fingerprint:sha-256 ZZ:00\r\n", 5, .malformedAttribute("fingerprint")),
        (header + "a=fingerprint:sha-256 00:11:22\r\n", 5, .malformedAttribute("fingerprint")),
        (header + "a=fingerprint:sha-256 0:11\r\n", 5, .malformedAttribute("fingerprint")),
        (header + "a=fingerprint:sha-256 00::11\r\n", 5, .malformedAttribute("fingerprint")),
        (header + "a=fingerprint:sha-256\r\n", 5, .malformedAttribute("fingerprint")),
        (header + "a=fingerprint:sha-1 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:\r\n", 5, .malformedAttribute("fingerprint")),
        (header + "a=extmap:0 urn:x\r\n", 5, .malformedAttribute("extmap")),
        (header + "a=extmap:300 urn:x\r\n", 5, .malformedAttribute("extmap")),
        (header + "a=extmap:1/sideways urn:x\r\n", 5, .malformedAttribute("extmap")),
        (header + "a=extmap:1\r\n", 5, .malformedAttribute("extmap")),
        (header + "a=ssrc:abc cname:x\r\n", 5, .malformedAttribute("ssrc")),
        (header + "a=ssrc:99999999999 cname:x\r\n", 5, .malformedAttribute("ssrc")),
        (header + "a=ssrc:1\r\n", 5, .malformedAttribute("ssrc")),
        (header + "a=ssrc-group:FID 1 x\r\n", 5, .malformedAttribute("ssrc-group")),
        (header + "a=rid:q sideways\r\n", 5, .malformedAttribute("rid")),
        (header + "a=rid:q! send\r\n", 5, .malformedAttribute("rid")),
        (header + "a=rid:q send pt=x\r\n", 5, .malformedAttribute("rid")),
        (header + "a=simulcast:send q;;h\r\n", 5, .malformedAttribute("simulcast")),
        (header + "a=simulcast:sideways q\r\n", 5, .malformedAttribute("simulcast")),
        (header + "a=simulcast:send q send h\r\n", 5, .malformedAttribute("simulcast")),
        (header + "a=simulcast:send\r\n", 5, .malformedAttribute("simulcast")),
        (header + "a=setup:bogus\r\n", 5, .malformedAttribute("setup")),
        (header + "a=sctp-port:70000\r\n", 5, .malformedAttribute("sctp-port")),
        (header + "a=max-message-size:big\r\n", 5, .malformedAttribute("max-message-size")),
    ])
    func typedErrors(_ input: String, _ line: Int, _ reason: SDPParseError.Reason) {
        #expect(parseError(input) == SDPParseError(line: line, reason: reason))
    }

    @Test func nonUTF8IsReportedWithItsLine() throws {
        var bytes = Array(header.utf8)
        bytes += Array("s=".utf8) + [0xFF, 0xFE] + Array("\r\n".utf8)
        // s= appears twice here, but the encoding is checked first.
        #expect(parseError(bytes: bytes) == SDPParseError(line: 5, reason: .invalidUTF8))
        let truncatedSequence = Array(header.utf8) + Array("a=x:".utf8) + [0xC3]
        #expect(parseError(bytes: truncatedSequence) == SDPParseError(line: 5, reason: .invalidUTF8))
        // Valid UTF-8 beyond ASCII is fine.
        let ok = Array("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=Café ☕\r\nt=0 0\r\n".utf8)
        #expect(parseError(bytes: ok) == nil)
        #expect(try SessionDescription(parsing: ok).sessionName == "Café ☕")
    }

    @Test func lenientWhereBrowsersAre() throws {
        // Unknown line types, blank lines, unknown attributes, properties with
        // odd names (RFC 8829's own "a=sctp-port 5000" typo), doubled spaces.
        let text = "v=0\r\no=-  1 1 IN IP4 0.0.0.0\r\ns=\r\nt=0 0\r\n\r\nq=whatever\r\na=sctp-port 5000\r\n" +
            "m=audio 9  UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\na=rtcp-fb:* nack\r\na=x-custom:anything goes here\r\n"
        let d = try SessionDescription(parsing: text)
        #expect(d.sessionName == "")
        #expect(d.otherLines.count == 1)
        #expect(d.attributes == [SDPAttribute("sctp-port 5000")])
        #expect(d.sctpPort == nil)
        #expect(d.media[0].formats == ["111"])
        #expect(d.media[0].rtcpFeedback(for: PayloadType(rawValue: 111)!).map(\.kind) == [.nack])
        #expect(d.media[0].value(of: "x-custom") == "anything goes here")
        // A session without t= is accepted.
        #expect(try SessionDescription(parsing: "v=0\no=- 1 1 IN IP4 0.0.0.0\ns=-\n").timings.isEmpty)
    }

    @Test func truncationsOfARealOfferNeverTrap() throws {
        let bytes = try Fixture.bytes("chromium_audio_video.sdp")
        var parsed = 0, failed = 0
        var cut = 0
        while cut < bytes.count {
            if (try? SessionDescription(parsing: Array(bytes[..<cut]))) != nil { parsed += 1 } else { failed += 1 }
            cut += 5
        }
        // Cutting inside the first lines fails; cuts later mostly parse (a truncated
        // attribute is often still valid), and none of it traps.
        #expect(failed > 0)
        #expect(parsed > 0)
    }

    @Test func randomBytesAndMutationsNeverTrap() throws {
        var rng = SplitMix64(seed: 0x5D9)
        let base = try Fixture.bytes("chromium_simulcast.sdp")
        var errors = 0
        for round in 0..<1500 {
            var input: [UInt8]
            if round % 3 == 0 {
                input = (0..<Int(rng.next() % 300)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            } else {
                input = base
                for _ in 0..<(1 + Int(rng.next() % 8)) {
                    let i = Int(rng.next() % UInt64(input.count))
                    input[i] = UInt8(truncatingIfNeeded: rng.next())
                }
            }
            do {
                let d = try SessionDescription(parsing: input)
                // Whatever parses must round-trip.
                #expect(try SessionDescription(parsing: d.serialized()) == d)
            } catch {
                errors += 1
                #expect(error.line >= 1)
            }
        }
        #expect(errors > 0)
    }

    @Test func hugeInputs() throws {
        // A very long attribute value and many m-sections parse without trouble.
        let long = String(repeating: "x", count: 200_000)
        let d = try SessionDescription(parsing: header + "a=long:" + long + "\r\n")
        #expect(d.value(of: "long")?.utf8.count == 200_000)
        var text = header
        for i in 0..<500 { text += "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:\(i)\r\n" }
        #expect(try SessionDescription(parsing: text).media.count == 500)
    }
}

