import RTCBase
import STUN
import Testing
@testable import TURN

@Suite("Allocate and authentication (RFC 8656 §7, RFC 8489 §9.2)")
struct AllocateTests {
    @Test func unauthenticatedAllocateGets401WithRealmNonceAndAlgorithms() throws {
        let h = Harness()
        let r = h.request(.allocate, [.requestedTransport(protocolNumber: 17)], credentials: nil)
        let response = try #require(r.response)
        #expect(response.type == STUNMessageType(method: .allocate, messageClass: .errorResponse))
        #expect(response.code == 401)
        #expect(response.realm == realm)
        let nonce = try #require(response.nonce)
        #expect(nonce.hasPrefix("obMatJos2"))
        #expect(response.first(.passwordAlgorithms) == .passwordAlgorithms([STUNPasswordAlgorithm(.md5), STUNPasswordAlgorithm(.sha256)]))
        #expect(response.first(.messageIntegrity) == nil)
        #expect(h.server.counters.unauthenticated401 == 1)
        #expect(h.server.allocationCount == 0)
    }

    @Test func md5AllocateSucceedsAfterEdgeBinds() throws {
        let h = Harness()
        h.fetchNonce()
        let r = h.request(.allocate, [.requestedTransport(protocolNumber: 17)], credentials: alice)
        #expect(r.response == nil)  // nothing until the relay is bound
        guard case .bindRelay(let relay, let id)? = r.actions.first else {
            Issue.record("expected bindRelay, got \(r.actions)")
            return
        }
        #expect(relay.ip == publicIP)
        #expect((50000...50099).contains(relay.port))
        let bound = h.server.relayBound(id, now: h.now)
        #expect(bound)
        let sends = sendToClientActions(h.drain())
        #expect(sends.count == 1)
        let raw = try #require(sends.first?.bytes)
        let response = try STUNMessage(parsing: raw)
        #expect(response.type == STUNMessageType(method: .allocate, messageClass: .successResponse))
        #expect(response.xorRelayedAddress == relay)
        #expect(response.xorMappedAddress == clientA)
        #expect(response.lifetime == 600)
        // The response is signed with the same key (RFC 8489 §9.2.4).
        try raw.withUnsafeBytes { try STUNMessageView($0).verifyMessageIntegrity(key: alice.key) }
        #expect(h.server.relayAddress(client: clientA, transport: .udp) == relay)
        #expect(h.server.counters.allocationsCreated == 1)
    }

    @Test func sha256PasswordAlgorithmWithSHA256Integrity() throws {
        let h = Harness()
        var creds = alice
        creds.algorithm = .sha256
        creds.negotiateAlgorithm = true
        creds.sha256Integrity = true
        h.fetchNonce()
        let r = h.request(.allocate, [.requestedTransport(protocolNumber: 17)], credentials: creds)
        guard case .bindRelay(_, let id)? = r.actions.first else {
            Issue.record("expected bindRelay, got \(r.actions)")
            return
        }
        h.server.relayBound(id, now: h.now)
        let raw = try #require(sendToClientActions(h.drain()).first?.bytes)
        let response = try STUNMessage(parsing: raw)
        #expect(response.isSuccess)
        #expect(response.first(.messageIntegritySHA256) != nil)
        #expect(response.first(.messageIntegrity) == nil)
        try raw.withUnsafeBytes { try STUNMessageView($0).verifyMessageIntegritySHA256(key: creds.key) }
    }

    @Test func sha256KeyWithClassicMessageIntegrity() throws {
        let h = Harness()
        var creds = alice
        creds.algorithm = .sha256
        creds.negotiateAlgorithm = true
        #expect(h.allocate(creds)?.response.isSuccess == true)
    }

    @Test func algorithmNegotiationTamperingIs400() throws {
        let h = Harness()
        h.fetchNonce()
        // PASSWORD-ALGORITHM without PASSWORD-ALGORITHMS: bid-down suspect.
        let r = h.request(.allocate, [.requestedTransport(protocolNumber: 17), .passwordAlgorithm(STUNPasswordAlgorithm(.md5))],
                          credentials: alice)
        #expect(r.response?.code == 400)
        // A list that differs from what the server offered.
        let r2 = h.request(.allocate, [.requestedTransport(protocolNumber: 17),
                                       .passwordAlgorithms([STUNPasswordAlgorithm(.md5)]),
                                       .passwordAlgorithm(STUNPasswordAlgorithm(.md5))], credentials: alice)
        #expect(r2.response?.code == 400)
        #expect(h.server.counters.badRequest400 == 2)
    }

    @Test func wrongPasswordIs401() throws {
        let h = Harness()
        h.fetchNonce()
        var creds = alice
        creds.password = "looking-glass"
        let r = h.request(.allocate, [.requestedTransport(protocolNumber: 17)], credentials: creds)
        #expect(r.response?.code == 401)
        #expect(r.response?.nonce != nil)
        #expect(h.server.counters.badIntegrity401 == 1)
        #expect(h.server.allocationCount == 0)
    }

    @Test func unknownUserIs401() throws {
        let h = Harness()
        h.fetchNonce()
        let r = h.request(.allocate, [.requestedTransport(protocolNumber: 17)],
                          credentials: ClientCredentials(username: "mallory", password: "x"))
        #expect(r.response?.code == 401)
        #expect(h.server.counters.unknownUser401 == 1)
    }

    @Test func missingRealmOrNonceWithIntegrityIs400() throws {
        let h = Harness()
        let message = STUNMessage(type: STUNMessageType(method: .allocate, messageClass: .request), transactionID: h.tid(),
                                  attributes: [.requestedTransport(protocolNumber: 17), .username("alice")])
        let bytes = try message.encoded(integrity: alice.key)
        let actions = h.fromClient(bytes)
        let response = try STUNMessage(parsing: try #require(sendToClientActions(actions).first?.bytes))
        #expect(response.code == 400)
    }

    @Test func staleNonceIs438WithFreshNonce() throws {
        let h = Harness()
        h.fetchNonce()
        let old = try #require(h.nonce[clientA])
        h.advance(.seconds(601))  // nonceLifetime is 600 s
        let r = h.request(.allocate, [.requestedTransport(protocolNumber: 17)], credentials: alice, retryStale: false)
        let response = try #require(r.response)
        #expect(response.code == 438)
        #expect(response.realm == realm)
        let fresh = try #require(response.nonce)
        #expect(fresh != old)
        #expect(h.server.counters.staleNonce438 == 1)
        // The client retries with the new nonce and succeeds.
        let retry = h.request(.allocate, [.requestedTransport(protocolNumber: 17)], credentials: alice)
        guard case .bindRelay? = retry.actions.first else {
            Issue.record("expected bindRelay after retry, got \(retry.actions)")
            return
        }
    }

    @Test func forgedOrForeignNonceIs438() throws {
        let h = Harness()
        h.fetchNonce()
        var nonce = Array(try #require(h.nonce[clientA]).utf8)
        nonce[nonce.count - 1] = nonce[nonce.count - 1] == UInt8(ascii: "0") ? UInt8(ascii: "1") : UInt8(ascii: "0")
        let r = h.request(.allocate, [.requestedTransport(protocolNumber: 17)], credentials: alice,
                          nonceOverride: String(decoding: nonce, as: UTF8.self), retryStale: false)
        #expect(r.response?.code == 438)
        // A nonce issued to another IP does not work here either.
        h.fetchNonce(client: clientB)
        let r2 = h.request(.allocate, [.requestedTransport(protocolNumber: 17)], credentials: alice,
                           nonceOverride: h.nonce[clientB])
        #expect(r2.response?.code == 438)
    }

    @Test func restCredentialsValidExpiredAndForged() throws {
        let h = Harness()
        let valid = TURNRESTCredential(user: "carol", secret: restSecret, unixTime: h.unixNow, ttl: 3600)
        #expect(valid.username == "\(h.unixNow + 3600):carol")
        #expect(TURNRESTCredential.expiry(ofUsername: valid.username) == h.unixNow + 3600)
        let creds = ClientCredentials(username: valid.username, password: valid.password)
        #expect(h.allocate(creds)?.response.isSuccess == true)

        let expired = TURNRESTCredential(user: "dave", secret: restSecret, unixTime: h.unixNow - 7200, ttl: 3600)
        let r2 = h.request(.allocate, [.requestedTransport(protocolNumber: 17)],
                           credentials: ClientCredentials(username: expired.username, password: expired.password), client: clientB)
        #expect(r2.response?.code == 401)
        #expect(h.server.counters.unknownUser401 == 1)

        let forged = TURNRESTCredential(user: "erin", secret: Array("other-secret".utf8), unixTime: h.unixNow, ttl: 3600)
        let r3 = h.request(.allocate, [.requestedTransport(protocolNumber: 17)],
                           credentials: ClientCredentials(username: forged.username, password: forged.password), client: clientB)
        #expect(r3.response?.code == 401)
        #expect(h.server.counters.badIntegrity401 == 1)
    }

    @Test func restPasswordMatchesKnownHMACSHA1Base64() {
        // HMAC-SHA1(key "key", "The quick brown fox jumps over the lazy dog")
        // = de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9 (RFC 2104 example in the wild).
        let password = TURNRESTCredential.password(username: "The quick brown fox jumps over the lazy dog", secret: Array("key".utf8))
        #expect(password == "3nybhbi3iqa8ino29wqQcBydtNk=")
        #expect(base64Encode([]) == "")
        #expect(base64Encode(Array("f".utf8)) == "Zg==")
        #expect(base64Encode(Array("fo".utf8)) == "Zm8=")
        #expect(base64Encode(Array("foobar".utf8)) == "Zm9vYmFy")
    }

    @Test func duplicateAllocationOnSameFiveTupleIs437ButRetransmitReplays() throws {
        let h = Harness()
        h.fetchNonce()
        let tid = h.tid()
        let first = h.request(.allocate, [.requestedTransport(protocolNumber: 17)], credentials: alice, transactionID: tid)
        guard case .bindRelay(_, let id)? = first.actions.first else {
            Issue.record("expected bindRelay")
            return
        }
        // A retransmission while the bind is pending is absorbed.
        let pendingRetry = h.request(.allocate, [.requestedTransport(protocolNumber: 17)], credentials: alice, transactionID: tid)
        #expect(pendingRetry.actions.isEmpty)
        h.server.relayBound(id, now: h.now)
        let success = try #require(sendToClientActions(h.drain()).first?.bytes)
        // After success a retransmission gets the same answer.
        let retry = h.request(.allocate, [.requestedTransport(protocolNumber: 17)], credentials: alice, transactionID: tid)
        #expect(retry.raw == success)
        // A new transaction on the same 5-tuple is a mismatch.
        let dup = h.request(.allocate, [.requestedTransport(protocolNumber: 17)], credentials: alice)
        #expect(dup.response?.code == 437)
        #expect(h.server.counters.allocationMismatch437 == 1)
        // The same client address over TCP is another 5-tuple.
        #expect(h.allocate(alice, transport: .tcp(TURNConnectionID(7)))?.response.isSuccess == true)
    }

    @Test func tcpRequestedTransportIs442AndMissingIs400() throws {
        let h = Harness()
        h.fetchNonce()
        let r = h.request(.allocate, [.requestedTransport(protocolNumber: 6)], credentials: alice)
        #expect(r.response?.code == 442)
        let r2 = h.request(.allocate, [], credentials: alice)
        #expect(r2.response?.code == 400)
        #expect(h.server.counters.unsupportedTransport442 == 1)
        // Error responses after authentication are signed.
        let raw = try #require(r.raw)
        try raw.withUnsafeBytes { try STUNMessageView($0).verifyMessageIntegrity(key: alice.key) }
    }

    @Test func unknownComprehensionRequiredAttributeIs420WithList() throws {
        let h = Harness()
        h.fetchNonce()
        let r = h.request(.allocate, [.requestedTransport(protocolNumber: 17), .unknown(type: 0x7F01, value: [1, 2, 3, 4]),
                                      .unknown(type: 0xC001, value: [9])], credentials: alice)
        let response = try #require(r.response)
        #expect(response.code == 420)
        #expect(response.first(.unknownAttributes) == .unknownAttributes([0x7F01]))
        #expect(h.server.counters.unknownAttribute420 == 1)
    }

    @Test func userQuotaIs486AndServerCapacityIs508() throws {
        let h = Harness { $0.maxAllocationsPerUser = 2; $0.maxAllocations = 3 }
        let clients = (0..<5).map { TransportAddress(ip: IPAddress("198.51.100.30")!, port: UInt16(40000 + $0)) }
        #expect(h.allocate(alice, client: clients[0]) != nil)
        #expect(h.allocate(alice, client: clients[1]) != nil)
        h.fetchNonce(client: clients[2])
        let r = h.request(.allocate, [.requestedTransport(protocolNumber: 17)], credentials: alice, client: clients[2])
        #expect(r.response?.code == 486)
        #expect(h.server.counters.quota486 == 1)
        #expect(h.allocate(bob, client: clients[3]) != nil)
        h.fetchNonce(client: clients[4])
        let r2 = h.request(.allocate, [.requestedTransport(protocolNumber: 17)], credentials: bob, client: clients[4])
        #expect(r2.response?.code == 508)
        // Deleting one frees the user's quota.
        let del = h.request(.refresh, [.lifetime(seconds: 0)], credentials: alice, client: clients[0])
        #expect(del.response?.isSuccess == true)
        #expect(h.allocate(alice, client: clients[2]) != nil)
    }

    @Test func addressFamilyRules() throws {
        let h = Harness()
        h.fetchNonce()
        let r = h.request(.allocate, [.requestedTransport(protocolNumber: 17), .requestedAddressFamily(.ipv6)], credentials: alice)
        #expect(r.response?.code == 440)
        let r2 = h.request(.allocate, [.requestedTransport(protocolNumber: 17), .requestedAddressFamily(.ipv4),
                                       .additionalAddressFamily(.ipv6)], credentials: alice)
        #expect(r2.response?.code == 400)
        // ADDITIONAL-ADDRESS-FAMILY IPv6: IPv4 relay plus a per-family error.
        let ok = try #require(h.allocate(alice, extra: [.additionalAddressFamily(.ipv6)]))
        #expect(ok.response.first(.addressErrorCode) == .addressErrorCode(family: .ipv6, error: .addressFamilyNotSupported))
        // With an IPv6 relay address configured, IPv6 is granted.
        let h6 = Harness { $0.publicIPv6 = IPAddress("2001:db8::1") }
        let v6 = try #require(h6.allocate(alice, extra: [.requestedAddressFamily(.ipv6)]))
        #expect(v6.relay.ip == IPAddress("2001:db8::1"))
    }

    @Test func evenPortAndReservationToken() throws {
        let h = Harness()
        let even = try #require(h.allocate(alice, extra: [.evenPort(reserveNext: false)]))
        #expect(even.relay.port % 2 == 0)
        h.fetchNonce(client: clientB)
        let r = h.request(.allocate, [.requestedTransport(protocolNumber: 17), .evenPort(reserveNext: true)],
                          credentials: alice, client: clientB)
        #expect(r.response?.code == 508)
        let r2 = h.request(.allocate, [.requestedTransport(protocolNumber: 17), .reservationToken(1)], credentials: alice, client: clientB)
        #expect(r2.response?.code == 508)
        let r3 = h.request(.allocate, [.requestedTransport(protocolNumber: 17), .reservationToken(1), .evenPort(reserveNext: false)],
                           credentials: alice, client: clientB)
        #expect(r3.response?.code == 400)
    }

    @Test func dontFragmentIsAccepted() throws {
        let h = Harness()
        #expect(h.allocate(alice, extra: [.dontFragment])?.response.isSuccess == true)
    }

    @Test func relayBindFailureTriesAnotherPortThen508() throws {
        let h = Harness { $0.maxRelayBindAttempts = 3 }
        h.fetchNonce()
        let r = h.request(.allocate, [.requestedTransport(protocolNumber: 17)], credentials: alice)
        guard case .bindRelay(let first, let id)? = r.actions.first else {
            Issue.record("expected bindRelay")
            return
        }
        h.server.relayBindFailed(id, now: h.now)
        guard case .bindRelay(let second, let id2)? = h.drain().first else {
            Issue.record("expected a second bindRelay")
            return
        }
        #expect(id2 == id)
        #expect(second.port != first.port)
        h.server.relayBindFailed(id, now: h.now)
        #expect(h.drain().count == 1)
        h.server.relayBindFailed(id, now: h.now)
        let final = try STUNMessage(parsing: try #require(sendToClientActions(h.drain()).first?.bytes))
        #expect(final.code == 508)
        #expect(h.server.allocationCount == 0)
        // A late confirmation for the abandoned id is refused.
        let bound = h.server.relayBound(id, now: h.now)
        #expect(!bound)
    }

    @Test func portRangeExhaustionIs508() throws {
        let h = Harness { $0.relayPorts = 50000...50001 }
        let clients = (0..<3).map { TransportAddress(ip: IPAddress("198.51.100.40")!, port: UInt16(41000 + $0)) }
        let a = try #require(h.allocate(alice, client: clients[0]))
        let b = try #require(h.allocate(bob, client: clients[1]))
        #expect(a.relay.port != b.relay.port)
        h.fetchNonce(client: clients[2])
        let r = h.request(.allocate, [.requestedTransport(protocolNumber: 17)], credentials: alice, client: clients[2])
        #expect(r.response?.code == 508)
    }

    @Test func unconfirmedRelayBindTimesOutWith508() throws {
        let h = Harness()
        h.fetchNonce()
        let r = h.request(.allocate, [.requestedTransport(protocolNumber: 17)], credentials: alice)
        guard case .bindRelay(let relay, let id)? = r.actions.first else {
            Issue.record("expected bindRelay")
            return
        }
        #expect(try #require(h.server.pollTimeout()) <= h.now + .seconds(30))
        h.advanceFiringTimers(.seconds(31))
        let actions = h.drain()
        #expect(actions.contains(.closeRelay(relay)))
        let answer = try STUNMessage(parsing: try #require(sendToClientActions(actions).first?.bytes))
        #expect(answer.code == 508)
        #expect(h.server.allocationCount == 0)
        let late = h.server.relayBound(id, now: h.now)
        #expect(!late)
    }

    @Test func repeatedBindConfirmationIsHarmless() throws {
        let h = Harness()
        h.fetchNonce()
        let r = h.request(.allocate, [.requestedTransport(protocolNumber: 17)], credentials: alice)
        guard case .bindRelay(_, let id)? = r.actions.first else {
            Issue.record("expected bindRelay")
            return
        }
        let first = h.server.relayBound(id, now: h.now)
        let second = h.server.relayBound(id, now: h.now)
        #expect(first && second)
        #expect(sendToClientActions(h.drain()).count == 1)
    }

    @Test func usersCanBeReplacedAtRunTime() throws {
        let h = Harness()
        _ = try #require(h.allocate())
        h.server.updateUsers(["bob": "builder"])
        let r = h.request(.refresh, [], credentials: alice)
        #expect(r.response?.code == 401)
        h.server.updateRESTSecret(nil)
        let rest = TURNRESTCredential(user: "carol", secret: restSecret, unixTime: h.unixNow)
        h.fetchNonce(client: clientB)
        let r2 = h.request(.allocate, [.requestedTransport(protocolNumber: 17)],
                           credentials: ClientCredentials(username: rest.username, password: rest.password), client: clientB)
        #expect(r2.response?.code == 401)
    }
}
