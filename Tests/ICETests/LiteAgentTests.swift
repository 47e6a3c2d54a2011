import Testing
import RTCBase
import STUN
@testable import ICE

/// Drives an ICELiteAgent with hand-built checks, as a browser would send them.
@Suite("ICELiteAgent")
struct LiteAgentTests {
    let serverKey = STUNIntegrityKey(shortTermPassword: Fixture.serverCreds.password)
    let a = TransportAddress("203.0.113.5:40000")!
    let b = TransportAddress("[2001:db8::7]:40001")!

    func check(_ rng: inout SplitMix64, username: String = "sRvr:cLnt", useCandidate: Bool = false,
               controlled: Bool = false, extra: [STUNAttribute] = [], password: String? = nil,
               fingerprint: Bool = true, integrity: Bool = true) -> (STUNTransactionID, [UInt8]) {
        let tid = STUNTransactionID.random(using: &rng)
        var attrs: [STUNAttribute] = [.username(username), .priority(1_845_501_695)]
        attrs.append(controlled ? .iceControlled(tieBreaker: 1) : .iceControlling(tieBreaker: 2))
        if useCandidate { attrs.append(.useCandidate) }
        attrs += extra
        let key = STUNIntegrityKey(shortTermPassword: password ?? Fixture.serverCreds.password)
        let bytes = try! STUNMessage(type: .bindingRequest, transactionID: tid, attributes: attrs)
            .encoded(integrity: integrity ? key : nil, fingerprint: fingerprint)
        return (tid, bytes)
    }

    func send(_ agent: inout ICELiteAgent, _ bytes: [UInt8], from: TransportAddress, now: Instant) -> STUNMessage? {
        let handled = bytes.withUnsafeBytes { agent.handleReceive($0, from: from, now: now) }
        #expect(handled)
        guard let t = agent.pollTransmit() else { return nil }
        #expect(t.destination == from)
        #expect(agent.pollTransmit() == nil)
        return try? STUNMessage(parsing: t.payload)
    }

    @Test func answersAndSwitchesOnNewNomination() throws {
        var rng = SplitMix64(seed: 1)
        var agent = ICELiteAgent(local: Fixture.serverCreds, remote: Fixture.clientCreds)

        // A plain check validates the address but selects nothing.
        let (tid, req) = check(&rng)
        let reply = try #require(send(&agent, req, from: a, now: .seconds(1)))
        #expect(reply.type == .bindingSuccess)
        #expect(reply.transactionID == tid)
        #expect(reply.xorMappedAddress == a)
        #expect(agent.isValidated(a))
        #expect(!agent.isValidated(b))
        #expect(agent.pollEvent() == nil)
        #expect(agent.selectedAddress == nil)
        #expect(agent.pollTimeout() == nil)

        // Nomination on a.
        _ = send(&agent, check(&rng, useCandidate: true).1, from: a, now: .seconds(2))
        #expect(agent.pollEvent() == .selectedPair(remote: a))
        #expect(agent.pollTimeout() == .seconds(32))
        // Same nomination again: no new event.
        _ = send(&agent, check(&rng, useCandidate: true).1, from: a, now: .seconds(3))
        #expect(agent.pollEvent() == nil)

        // A later nomination from b (IPv6) switches.
        let r = try #require(send(&agent, check(&rng, useCandidate: true).1, from: b, now: .seconds(4)))
        #expect(r.xorMappedAddress == b)
        #expect(agent.pollEvent() == .selectedPair(remote: b))
        #expect(agent.selectedAddress == b)
        #expect(agent.pollTimeout() == .seconds(34))
        #expect(agent.isValidated(a) && agent.isValidated(b))

        // Consent: nothing from b for 30 s.
        agent.handleTimeout(now: .seconds(33))
        #expect(agent.pollEvent() == nil)
        agent.handleTimeout(now: .seconds(34))
        #expect(agent.pollEvent() == .consentExpired)
        #expect(!agent.isValidated(b))
        #expect(agent.pollTimeout() == nil)
    }

    @Test func successResponseAuthenticates() throws {
        var rng = SplitMix64(seed: 2)
        var agent = ICELiteAgent(local: Fixture.serverCreds, remote: Fixture.clientCreds)
        _ = check(&rng, useCandidate: true).1.withUnsafeBytes { agent.handleReceive($0, from: a, now: .zero) }
        let polled = agent.pollTransmit()
        let t = try #require(polled)
        try t.payload.withUnsafeBytes { p in
            let v = try STUNMessageView(p)
            try v.verifyMessageIntegrity(key: serverKey)
            try v.verifyFingerprint()
        }
    }

    @Test func roleConflictGets487() throws {
        var rng = SplitMix64(seed: 3)
        var agent = ICELiteAgent(local: Fixture.serverCreds, remote: Fixture.clientCreds)
        let reply = try #require(send(&agent, check(&rng, useCandidate: true, controlled: true).1, from: a, now: .zero))
        #expect(reply.type == .bindingError)
        #expect(reply.errorCode?.code == 487)
        #expect(reply.first(.messageIntegrity) != nil)
        #expect(!agent.isValidated(a))
        #expect(agent.pollEvent() == nil)
    }

    @Test func authenticationFailures() throws {
        var rng = SplitMix64(seed: 4)
        var agent = ICELiteAgent(local: Fixture.serverCreds, remote: Fixture.clientCreds)
        // Wrong ufrag and wrong password: 401 without MESSAGE-INTEGRITY.
        for bytes in [check(&rng, username: "sRvr:other").1, check(&rng, username: "xxxx:cLnt").1,
                      check(&rng, password: "wrong-password").1] {
            let reply = try #require(send(&agent, bytes, from: a, now: .zero))
            #expect(reply.errorCode?.code == 401)
            #expect(reply.first(.messageIntegrity) == nil)
        }
        // Missing MESSAGE-INTEGRITY: 400.
        #expect(send(&agent, check(&rng, integrity: false).1, from: a, now: .zero)?.errorCode?.code == 400)
        // Unknown comprehension-required attribute: 420 listing it.
        let unknown = try #require(send(&agent, check(&rng, extra: [.unknown(type: 0x7777, value: [1])]).1, from: a, now: .zero))
        #expect(unknown.errorCode?.code == 420)
        #expect(unknown.first(.unknownAttributes) == .unknownAttributes([0x7777]))
        // No FINGERPRINT, or a broken one: silently dropped.
        #expect(send(&agent, check(&rng, fingerprint: false).1, from: a, now: .zero) == nil)
        var broken = check(&rng).1
        broken[broken.count - 1] ^= 1
        #expect(send(&agent, broken, from: a, now: .zero) == nil)
        #expect(!agent.isValidated(a))
    }

    @Test func remoteUfragUnknownYet() throws {
        var rng = SplitMix64(seed: 5)
        var agent = ICELiteAgent(local: Fixture.serverCreds)
        #expect(send(&agent, check(&rng).1, from: a, now: .zero)?.type == .bindingSuccess)
        agent.setRemoteCredentials(ICECredentials(ufrag: "zzzz", password: "p"))
        #expect(send(&agent, check(&rng).1, from: a, now: .zero)?.errorCode?.code == 401)
    }

    @Test func nonSTUNIsNotConsumed() {
        var agent = ICELiteAgent(local: Fixture.serverCreds)
        let dtls: [UInt8] = [22, 254, 253, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        #expect(!dtls.withUnsafeBytes { agent.handleReceive($0, from: a, now: .zero) })
        #expect(agent.pollTransmit() == nil)
    }

    @Test func respondIntoCallerBufferMatchesQueuedPath() throws {
        var rng = SplitMix64(seed: 6)
        var agent = ICELiteAgent(local: Fixture.serverCreds, remote: Fixture.clientCreds)
        let (tid, req) = check(&rng)
        var out = [UInt8](repeating: 0, count: 128)
        let reply = try req.withUnsafeBytes { p in
            let view = try STUNMessageView(p)
            return out.withUnsafeMutableBytes { agent.respond(to: view, from: a, now: .zero, into: $0) }
        }
        guard case .success(let n) = reply else { Issue.record("expected success, got \(reply)"); return }
        let m = try STUNMessage(parsing: Array(out[0..<n]))
        #expect(m.transactionID == tid)
        #expect(m.xorMappedAddress == a)
        #expect(agent.pollTransmit() == nil)
    }
}
