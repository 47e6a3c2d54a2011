import Testing
import RTCBase
import STUN
@testable import ICE

@Suite("ICEAgent with relayed local candidates (RFC 8445 §5.1.2)")
struct RelayCandidateTests {
    static let relayed = TransportAddress("203.0.113.9:50010")!

    @Test func relayCandidateIsDescribedWithTypeRelatedAddressAndPriority() throws {
        var agent = ICEAgent(local: Fixture.clientCreds, localCandidates: [Fixture.c1], rng: SplitMix64(seed: 1))
        let first = agent.addLocalCandidate(Self.relayed, type: .relay, related: Fixture.c1)
        let added = try #require(first)
        let duplicate = agent.addLocalCandidate(Self.relayed, type: .relay)
        #expect(duplicate == nil)
        #expect(added.type == .relay)
        #expect(added.address == Self.relayed)
        #expect(added.relatedAddress == "192.168.1.2")
        #expect(added.relatedPort == 5000)
        // Type preference 0 for relay, 126 for host (§5.1.2.2); local
        // preference by position.
        #expect(added.priority == (0 << 24) + (65534 << 8) + 255)
        let all = agent.localCandidateDescriptions
        #expect(all.map(\.type) == [.host, .relay])
        #expect(all[0].priority == (126 << 24) + (65535 << 8) + 255)
        #expect(all[0].foundation != all[1].foundation)
        #expect(agent.localCandidateType(Self.relayed) == .relay)
        #expect(agent.localCandidateType(Fixture.c1) == .host)
        #expect(agent.localCandidateType(Fixture.c2) == nil)
        // Round trip through the SDP text form.
        #expect(try ICECandidate(parsing: added.description) == added)
    }

    @Test func relayOnlyAgentChecksAndConnectsFromTheRelayedAddress() throws {
        var sim = Fixture.pair(clientLocals: [])
        sim.run(until: .seconds(1))
        // Nothing to check without a local candidate.
        #expect(sim.delivered == 0)
        #expect(sim.client.state == .checking)
        sim.client.addLocalCandidate(Self.relayed, type: .relay, related: Fixture.c1)
        sim.run(until: .seconds(10)) { $0.clientConnected() != nil && !$0.serverSelected().isEmpty }
        let (local, remote) = try #require(sim.clientConnected())
        #expect(local == Self.relayed)
        #expect(remote == Fixture.server)
        #expect(sim.serverSelected() == [Self.relayed])
        #expect(sim.client.selectedPair?.local == Self.relayed)
    }

    @Test func hostPairWinsOverRelayPair() throws {
        var sim = Fixture.pair(clientLocals: [Fixture.c1])
        sim.client.addLocalCandidate(Self.relayed, type: .relay)
        sim.run(until: .seconds(10)) { $0.clientConnected() != nil }
        #expect(sim.clientConnected()?.0 == Fixture.c1)
    }

    @Test func relayAddedAfterHostPairsFailedRevivesTheChecklist() throws {
        var sim = Fixture.pair(clientLocals: [Fixture.c1])
        // The host path is blocked (a UDP-hostile network).
        sim.drop = { _, from, to in from == Fixture.c1 || to == Fixture.c1 }
        sim.run(until: .seconds(120)) { s in s.clientEvents.contains { $0.1 == .failed } }
        #expect(sim.client.state == .failed)
        sim.client.addLocalCandidate(Self.relayed, type: .relay)
        sim.run(until: sim.now + .seconds(10)) { $0.clientConnected() != nil }
        #expect(sim.clientConnected()?.0 == Self.relayed)
        #expect(sim.client.state == .connected)
    }
}
