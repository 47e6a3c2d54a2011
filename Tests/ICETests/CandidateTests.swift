import Testing
import RTCBase
@testable import ICE

@Suite("ICE candidate lines (RFC 8839 §5.1)")
struct CandidateTests {
    static let lines = [
        "candidate:842163049 1 udp 1677729535 1.2.3.4 46154 typ srflx raddr 10.0.0.1 rport 46154 generation 0 ufrag EsAw network-cost 999",
        "candidate:1467250027 1 udp 2122260223 192.168.0.196 46243 typ host generation 0 ufrag EsAw network-id 1 network-cost 10",
        "candidate:1853887674 1 tcp 1518280447 192.168.0.196 9 typ host tcptype active generation 0 ufrag EsAw network-id 1",
        "candidate:3 1 tcp 1518214911 10.0.0.5 50000 typ host tcptype passive",
        "candidate:2999745851 1 udp 2122129151 2001:db8::5 55910 typ host generation 0 ufrag EsAw network-id 2",
        "candidate:1 1 udp 2122260223 abc123.local 54321 typ host generation 0",
        "candidate:0 1 UDP 2122252543 9c8a6f0e-7d2f-4d4b-9a5e-0e1b7a8f7c1d.local 61324 typ host",
        "candidate:1 1 UDP 1686052607 203.0.113.7 61324 typ srflx raddr 0.0.0.0 rport 0",
        "candidate:5 1 UDP 8265471 198.51.100.9 3478 typ relay raddr 203.0.113.7 rport 61324",
        "candidate:4 2 udp 16777215 198.51.100.9 3479 typ relay raddr 0.0.0.0 rport 0 generation 0",
    ]

    @Test("real browser lines round-trip", arguments: CandidateTests.lines)
    func roundTrip(_ line: String) throws {
        let c = try ICECandidate(parsing: line)
        let again = c.description
        // Transport case is normalized; everything else is kept as written.
        #expect(again.lowercased() == line.lowercased())
        #expect(try ICECandidate(parsing: again) == c)
    }

    @Test func chromeSrflx() throws {
        let c = try ICECandidate(parsing: "a=candidate:842163049 1 udp 1677729535 1.2.3.4 46154 typ srflx raddr 10.0.0.1 rport 46154 generation 0 ufrag EsAw network-cost 999\r\n")
        #expect(c.foundation == "842163049")
        #expect(c.component == 1)
        #expect(c.transport == .udp)
        #expect(c.priority == 1677729535)
        #expect(c.address == TransportAddress("1.2.3.4:46154"))
        #expect(c.type == .serverReflexive)
        #expect(c.relatedAddress == "10.0.0.1")
        #expect(c.relatedPort == 46154)
        #expect(c.extensions.map(\.name) == ["generation", "ufrag", "network-cost"])
        #expect(c.value(forExtension: "ufrag") == "EsAw")
        #expect(!c.isMDNS)
    }

    @Test func tcpPassiveAndIPv6AndMDNS() throws {
        let tcp = try ICECandidate(parsing: "candidate:3 1 tcp 1518214911 10.0.0.5 50000 typ host tcptype passive")
        #expect(tcp.transport == .tcp)
        #expect(tcp.tcpType == .passive)
        let v6 = try ICECandidate(parsing: CandidateTests.lines[4])
        #expect(v6.ip == IPAddress("2001:db8::5"))
        #expect(v6.address?.port == 55910)
        let mdns = try ICECandidate(parsing: "candidate:1 1 udp 2122260223 abc123.local 54321 typ host generation 0")
        #expect(mdns.isMDNS)
        #expect(mdns.ip == nil)
        #expect(mdns.address == nil)
        #expect(mdns.connectionAddress == "abc123.local")
    }

    @Test func priorityFormula() {
        // RFC 8445 §5.1.2.1 with the recommended type preferences.
        #expect(ICECandidate.priority(type: .host, localPreference: 65535, component: 1) == 2_130_706_431)
        #expect(ICECandidate.priority(type: .serverReflexive, localPreference: 65535, component: 1) == 1_694_498_815)
        #expect(ICECandidate.priority(type: .relay, localPreference: 0, component: 2) == 254)
        #expect(ICECandidate.priority(type: .peerReflexive, localPreference: 10, component: 1) == (110 << 24) + (10 << 8) + 255)
    }

    @Test func buildAndPrint() {
        let c = ICECandidate(foundation: "1", priority: 2_130_706_431, address: TransportAddress("[2001:db8::1]:9")!, type: .host)
        #expect(c.description == "candidate:1 1 udp 2130706431 2001:db8::1 9 typ host")
    }

    @Test func rejectsMalformed() {
        let bad: [(String, ICECandidateError)] = [
            ("candidate:1 1 udp 5 1.2.3.4 9 typ", .missingField),
            ("candidate:1 0 udp 5 1.2.3.4 9 typ host", .invalidComponent),
            ("candidate:1 257 udp 5 1.2.3.4 9 typ host", .invalidComponent),
            ("candidate:1 1 udp x 1.2.3.4 9 typ host", .invalidPriority),
            ("candidate:1 1 udp 5 1.2.3.4 70000 typ host", .invalidPort),
            ("candidate:1 1 udp 5 1.2.3.4 9 typ bogus", .invalidType),
            ("candidate:1 1 udp 5 1.2.3.4 9 type host", .invalidType),
            ("candidate:1 1 udp 5 1.2.3.4 9 typ host generation", .malformedExtension),
            ("candidate:1 1 tcp 5 1.2.3.4 9 typ host tcptype sideways", .invalidTCPType),
            ("candidate:f_o 1 udp 5 1.2.3.4 9 typ host", .invalidFoundation),
            ("candidate:1 1 udp 5 bad_host! 9 typ host", .invalidAddress),
            // Found by Fuzz/run.sh: a LF inside the extensions serialized to a
            // line that no longer parsed.
            ("candidate:1 1 udp 5 1.2.3.4 9 typ host a 01 \n ", .invalidCharacter),
            ("candidate:1 1 udp 5 1.2.3.4 9 typ host a\u{0}b 1", .invalidCharacter),
        ]
        for (line, error) in bad {
            #expect(throws: error) { try ICECandidate(parsing: line) }
        }
    }
}
