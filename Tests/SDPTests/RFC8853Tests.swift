import Testing
import RTCBase
@testable import SDP

private func pt(_ v: UInt8) -> PayloadType { PayloadType(rawValue: v)! }
private func s(_ id: String, paused: Bool = false) -> SimulcastStream { SimulcastStream(rid: RID(rawValue: id), isPaused: paused) }

/// RFC 8853 §5.1 (simulcast) and RFC 8851 §10 (rid) grammar and the RFC 8853
/// example offer (fixture `rfc8853_simulcast_offer.sdp`).
@Suite struct RFC8853Tests {
    @Test func exampleOffer() throws {
        let m = try #require(try Fixture.parse("rfc8853_simulcast_offer.sdp").media.first)
        let sc = try #require(m.simulcast)
        #expect(sc.send == [[s("1")], [s("2"), s("3")]])
        #expect(sc.receive == [[s("4")]])
        #expect(sc.attribute.value == "send 1;2,3 recv 4")
        let rids = m.rids
        #expect(rids.map(\.rid.rawValue) == ["1", "2", "3", "4"])
        #expect(rids.map(\.direction) == [.send, .send, .send, .recv])
        #expect(rids[0].payloadTypes == [pt(97)])
        #expect(rids[0][restriction: "max-width"] == "1280")
        #expect(rids[1][restriction: "max-height"] == "180")
        #expect(rids[2].payloadTypes == [pt(99)])
        #expect(rids[3].restrictions.isEmpty)
        #expect(rids[0].attribute.value == "1 send pt=97;max-width=1280;max-height=720")
        // "max-fs=240; max-fr=30": a space after ';' is tolerated in fmtp.
        #expect(m.formatParameters(for: pt(99))?["max-fr"] == "30")
        let summary = m.summary(index: 0)
        #expect(summary.rids.map(\.rawValue) == ["1", "2", "3"])
        #expect(summary.codec?.codec.payloadType == pt(99))  // the only VP8
    }

    @Test(arguments: [
        ("send q;h;f", Simulcast(send: [[s("q")], [s("h")], [s("f")]])),
        ("recv 1", Simulcast(receive: [[s("1")]])),
        ("send ~a,b;c", Simulcast(send: [[s("a", paused: true), s("b")], [s("c")]])),
        ("recv r1 send s-1,s_2", Simulcast(send: [[s("s-1"), s("s_2")]], receive: [[s("r1")]], receiveFirst: true)),
    ])
    func grammarRoundTrips(_ text: String, _ expected: Simulcast) throws {
        let parsed = try #require(Simulcast(value: text))
        #expect(parsed == expected)
        #expect(parsed.attribute.value == text)
    }

    @Test func oldDraftPrefixIsAccepted() {
        #expect(Simulcast(value: "send rid=q;h;f")?.send.count == 3)
    }

    @Test(arguments: ["", "send", "send q recv", "sendrecv q", "send q;", "send ,q", "send ~", "send q*"])
    func invalidSimulcast(_ text: String) {
        #expect(Simulcast(value: text) == nil)
    }

    @Test(arguments: ["q", "q send extra stuff", "q both", "q send pt=", "q send pt=1,,2", "q! send", "q send ;=1"])
    func invalidRID(_ text: String) {
        #expect(RIDDescription(value: text) == nil)
    }
}
