import Testing
import RTCBase
import STUN
@testable import ICE

@Suite("ICEAgent ↔ ICELiteAgent over a fake link")
struct AgentTests {
    @Test func connects() throws {
        var sim = Fixture.pair()
        sim.run(until: .seconds(5)) { $0.clientConnected() != nil }
        let (local, remote) = try #require(sim.clientConnected())
        #expect(local == Fixture.c1)
        #expect(remote == Fixture.server)
        #expect(sim.now < .milliseconds(500))
        sim.run(until: sim.now + .milliseconds(100))
        #expect(sim.serverSelected() == [Fixture.c1])
        #expect(sim.server.lite?.isValidated(Fixture.c1) == true)
        #expect(sim.server.lite?.isValidated(Fixture.c2) == false)
        #expect(sim.client.state == .connected)
        #expect(sim.client.isValidated(Fixture.server))
    }

    @Test("connects with 30% of packets dropped", arguments: [UInt64(1), 2, 3, 4, 5])
    func lossy(seed: UInt64) throws {
        var sim = Fixture.pair(seed: seed)
        sim.rng = SplitMix64(seed: seed &* 77)
        sim.drop = { rng, _, _ in Double(rng.next() % 1000) < 300 }
        sim.run(until: .seconds(60)) { $0.clientConnected() != nil && !$0.serverSelected().isEmpty }
        #expect(sim.clientConnected() != nil)
        #expect(sim.serverSelected() == [Fixture.c1])
        #expect(!sim.clientEvents.contains { $0.1 == .failed })
    }

    @Test func wrongPasswordFails() throws {
        var sim = Fixture.pair(remoteCreds: ICECredentials(ufrag: "sRvr", password: "not-the-password-at-all"))
        sim.run(until: .seconds(120)) { s in s.clientEvents.contains { $0.1 == .failed } }
        #expect(sim.clientConnected() == nil)
        let failedAt = try #require(sim.clientEvents.first { $0.1 == .failed }?.0)
        // All 7 transmissions went out first: 0.5+1+2+3+3+3+3 s of RTO.
        #expect(failedAt >= .milliseconds(15_000))
        #expect(failedAt < .seconds(20))
        #expect(sim.serverSelected().isEmpty)
        #expect(sim.server.lite?.isValidated(Fixture.c1) == false)
        #expect(sim.client.state == .failed)
    }

    @Test func wrongUfragRejected() throws {
        var sim = Fixture.pair(remoteCreds: ICECredentials(ufrag: "nope", password: Fixture.serverCreds.password))
        sim.run(until: .seconds(120)) { s in s.clientEvents.contains { $0.1 == .failed } }
        #expect(sim.clientConnected() == nil)
        #expect(sim.clientEvents.contains { $0.1 == .failed })
        #expect(sim.serverSelected().isEmpty)
        #expect(sim.server.lite?.isValidated(Fixture.c1) == false)
    }

    @Test func consentKeepsFlowingThenExpiresOnSilence() throws {
        var sim = Fixture.pair()
        sim.run(until: .seconds(5)) { $0.clientConnected() != nil && !$0.serverSelected().isEmpty }
        // Two minutes of a healthy link: consent checks keep both sides alive.
        sim.run(until: .seconds(125))
        #expect(!sim.clientEvents.contains { $0.1 == .consentExpired })
        #expect(!sim.serverEvents.contains { $0.1 == .consentExpired })
        #expect(sim.server.lite?.isValidated(Fixture.c1) == true)

        // Cut the link in both directions.
        let cut = sim.now
        sim.drop = { _, _, _ in true }
        sim.run(until: cut + .seconds(60))
        let clientExpiry = try #require(sim.clientEvents.first { $0.1 == .consentExpired }?.0)
        let serverExpiry = try #require(sim.serverEvents.first { $0.1 == .consentExpired }?.0)
        // The last successful exchange was at most ~6 s before the cut.
        #expect(clientExpiry - cut > .seconds(23))
        #expect(clientExpiry - cut <= .seconds(30))
        #expect(serverExpiry - cut > .seconds(23))
        #expect(serverExpiry - cut <= .seconds(30))
        #expect(sim.server.lite?.isValidated(Fixture.c1) == false)
        #expect(sim.client.state == .consentExpired)
        #expect(sim.client.pollTimeout() == nil)
        #expect(sim.server.lite?.pollTimeout() == nil)
    }

    @Test func blackHoledCandidateFallsBackToTheOther() throws {
        var sim = Fixture.pair(clientLocals: [Fixture.c1, Fixture.c2])
        sim.drop = { _, from, to in from == Fixture.c1 || to == Fixture.c1 }
        sim.run(until: .seconds(60)) { $0.clientConnected() != nil && !$0.serverSelected().isEmpty }
        let (local, remote) = try #require(sim.clientConnected())
        #expect(local == Fixture.c2)
        #expect(remote == Fixture.server)
        #expect(sim.serverSelected() == [Fixture.c2])
        #expect(sim.server.lite?.isValidated(Fixture.c1) == false)
        // The preferred (higher-priority) pair was tried first.
        #expect(sim.now < .seconds(1))
    }

    @Test func twoCandidatesPreferTheFirst() throws {
        var sim = Fixture.pair(clientLocals: [Fixture.c1, Fixture.c2])
        sim.run(until: .seconds(5)) { $0.clientConnected() != nil }
        #expect(sim.clientConnected()?.0 == Fixture.c1)
    }

    @Test func fullAgentsResolveRoleConflict() throws {
        // Both sides start controlling; the larger tie-breaker keeps the role.
        let a = Fixture.c1, b = Fixture.server
        var client = ICEAgent(local: Fixture.clientCreds, remote: Fixture.serverCreds, localCandidates: [a], rng: SplitMix64(seed: 10))
        var other = ICEAgent(local: Fixture.serverCreds, remote: Fixture.clientCreds, localCandidates: [b], rng: SplitMix64(seed: 20))
        client.addRemoteCandidate(b, priority: ICECandidate.priority(type: .host))
        other.addRemoteCandidate(a, priority: ICECandidate.priority(type: .host))
        #expect(client.tieBreaker != other.tieBreaker)
        var sim = Simulation(client: client, server: .full(other), serverAddress: b)
        sim.run(until: .seconds(10)) { s in
            s.clientConnected() != nil && s.serverEvents.contains { if case .connected = $0.1 { return true }; return false }
        }
        let server = try #require(sim.server.full)
        #expect(sim.client.isControlling != server.isControlling)
        #expect(sim.client.isControlling == (sim.client.tieBreaker > server.tieBreaker))
        let loser = sim.client.isControlling ? sim.serverEvents : sim.clientEvents
        #expect(loser.contains { $0.1 == .roleChanged(controlling: false) })
        #expect(sim.clientConnected()! == (a, b))
        #expect(server.selectedPair! == (b, a))
    }

    @Test func fullAgentsConnectWithoutConflict() throws {
        let a = Fixture.c1, b = Fixture.server
        let client = ICEAgent(local: Fixture.clientCreds, remote: Fixture.serverCreds, localCandidates: [a], rng: SplitMix64(seed: 3))
        var other = ICEAgent(local: Fixture.serverCreds, remote: Fixture.clientCreds, localCandidates: [b], rng: SplitMix64(seed: 4))
        // The answerer side learns that it is controlled by receiving checks
        // with ICE-CONTROLLING and a larger tie-breaker, or via 487; either
        // way both must end up connected on the same pair. Trickle the
        // candidate to the client late.
        other.addRemoteCandidate(a, priority: ICECandidate.priority(type: .host))
        var sim = Simulation(client: client, server: .full(other), serverAddress: b)
        sim.run(until: .milliseconds(300))
        sim.client.addRemoteCandidate(b, priority: ICECandidate.priority(type: .host))
        sim.run(until: .seconds(10)) { s in
            s.clientConnected() != nil && s.serverEvents.contains { if case .connected = $0.1 { return true }; return false }
        }
        #expect(sim.clientConnected() != nil)
        #expect(sim.server.full?.state == .connected)
        _ = client
    }

    @Test func failedWithNoRemoteCandidatesOnlyAfterPairsFail() {
        var agent = ICEAgent(local: Fixture.clientCreds, remote: Fixture.serverCreds, localCandidates: [Fixture.c1], rng: SplitMix64(seed: 5))
        #expect(agent.pollTimeout() == nil)
        agent.handleTimeout(now: .seconds(1))
        #expect(agent.pollEvent() == nil)
        #expect(agent.pollTransmit() == nil)
    }
}
