import RTCBase
import STUN
import Testing
@testable import TURNBench

private let client = TransportAddress(ip: IPAddress("127.0.0.1")!, port: 40123)
private let tid = STUNTransactionID(high: 0x0102_0304, low: 0x0506_0708_090A_0B0C)

private func bindingResponse(mapped: TransportAddress, type: STUNMessageType = .bindingSuccess,
                             transactionID: STUNTransactionID = tid, fingerprint: Bool = true) throws -> [UInt8] {
    try STUNMessage(type: type, transactionID: transactionID, attributes: [.xorMappedAddress(mapped)])
        .encoded(fingerprint: fingerprint)
}

private func validate(_ bytes: [UInt8], mapped: TransportAddress = client) -> Result<STUNTransactionID, BindingCheckError> {
    bytes.withUnsafeBytes { raw in
        do throws(BindingCheckError) { return .success(try BindingProbe.validateResponse(raw, mapped: mapped)) } catch { return .failure(error) }
    }
}

@Suite struct BindingProbeTests {
    @Test func requestIsABindingRequestWithAValidFingerprint() throws {
        var bytes = [UInt8](repeating: 0xEE, count: 64)
        let n = try bytes.withUnsafeMutableBytes { try BindingProbe.writeRequest(transactionID: tid, into: $0) }
        #expect(n == BindingProbe.requestSize)
        let message = Array(bytes[0..<n])
        try message.withUnsafeBytes { raw in
            let view = try STUNMessageView(raw)
            #expect(view.type == .bindingRequest)
            #expect(view.transactionID == tid)
            try view.verifyFingerprint()
        }
    }

    @Test func requestNeedsRoom() {
        var small = [UInt8](repeating: 0, count: 24)
        #expect(throws: STUNError.bufferTooSmall) {
            _ = try small.withUnsafeMutableBytes { try BindingProbe.writeRequest(transactionID: tid, into: $0) }
        }
    }

    @Test func acceptsAResponseReflectingTheSocket() throws {
        #expect(try validate(bindingResponse(mapped: client)).get() == tid)
        #expect(try validate(bindingResponse(mapped: client, fingerprint: false)).get() == tid)
    }

    @Test func rejectsAnotherMappedAddress() throws {
        let other = TransportAddress(ip: IPAddress("127.0.0.1")!, port: 40124)
        #expect(validate(try bindingResponse(mapped: other)) == .failure(.mappedAddressMismatch(other)))
    }

    @Test func rejectsErrorsRequestsGarbageAndBadFingerprints() throws {
        #expect(validate(try bindingResponse(mapped: client, type: .bindingError)) == .failure(.notBindingSuccess(.bindingError)))
        #expect(validate(try bindingResponse(mapped: client, type: .bindingRequest)) == .failure(.notBindingSuccess(.bindingRequest)))
        #expect(validate([1, 2, 3]) == .failure(.malformed(.truncatedHeader)))
        var corrupted = try bindingResponse(mapped: client)
        corrupted[corrupted.count - 1] ^= 0xFF
        #expect(validate(corrupted) == .failure(.badFingerprint))
        let empty = try STUNMessage(type: .bindingSuccess, transactionID: tid).encoded(fingerprint: true)
        #expect(validate(empty) == .failure(.missingMappedAddress))
    }
}

@Suite struct TURNClientMessagesTests {
    let credentials = LongTermCredentials(username: "bench", password: "benchpass", realm: "bench", nonce: "n0nce")

    @Test func firstAllocateIsUnauthenticated() throws {
        let bytes = try TURNClientMessages.allocate(transactionID: tid, credentials: nil)
        let m = try STUNMessage(parsing: bytes)
        #expect(m.type == STUNMessageType(method: .allocate, messageClass: .request))
        #expect(m.first(.requestedTransport) == .requestedTransport(protocolNumber: 17))
        #expect(m.first(.messageIntegrity) == nil)
        #expect(m.username == nil)
    }

    @Test func authenticatedRequestsCarryCredentialsAndIntegrity() throws {
        let peer = TransportAddress(ip: IPAddress("127.0.0.1")!, port: 50000)
        let bytes = try TURNClientMessages.channelBind(transactionID: tid, channel: 0x4001, peer: peer, credentials: credentials)
        try bytes.withUnsafeBytes { raw in
            let view = try STUNMessageView(raw)
            try view.verifyMessageIntegrity(key: STUNIntegrityKey(username: "bench", realm: "bench", password: "benchpass"))
            try view.verifyFingerprint()
            #expect(throws: STUNError.integrityMismatch) {
                try view.verifyMessageIntegrity(key: STUNIntegrityKey(username: "bench", realm: "bench", password: "wrong"))
            }
        }
        let m = try STUNMessage(parsing: bytes)
        #expect(m.username == "bench" && m.realm == "bench" && m.nonce == "n0nce")
        #expect(m.first(.channelNumber) == .channelNumber(0x4001))
        #expect(m.first(.xorPeerAddress) == .xorPeerAddress(peer))
    }

    @Test func readsChallengeStaleNonceFailureAndSuccess() throws {
        let errorType = STUNMessageType(method: .allocate, messageClass: .errorResponse)
        let challenge = try STUNMessage(type: errorType, transactionID: tid,
                                        attributes: [.errorCode(.unauthorized), .realm("bench"), .nonce("abc")]).encoded()
        #expect(try TURNClientMessages.parseReply(challenge, method: .allocate, transactionID: tid, credentials: nil)
                == .challenge(realm: "bench", nonce: "abc"))
        // A 401 after sending credentials means they were refused.
        #expect(try TURNClientMessages.parseReply(challenge, method: .allocate, transactionID: tid, credentials: credentials)
                == .failure(.unauthorized))
        let stale = try STUNMessage(type: errorType, transactionID: tid, attributes: [.errorCode(.staleNonce), .nonce("def")]).encoded()
        #expect(try TURNClientMessages.parseReply(stale, method: .allocate, transactionID: tid, credentials: credentials)
                == .staleNonce(nonce: "def"))
        let quota = try STUNMessage(type: errorType, transactionID: tid, attributes: [.errorCode(.allocationQuotaReached)]).encoded()
        #expect(try TURNClientMessages.parseReply(quota, method: .allocate, transactionID: tid, credentials: credentials)
                == .failure(.allocationQuotaReached))

        let relayed = TransportAddress(ip: IPAddress("127.0.0.1")!, port: 49200)
        let success = STUNMessage(type: STUNMessageType(method: .allocate, messageClass: .successResponse), transactionID: tid,
                                  attributes: [.xorRelayedAddress(relayed), .lifetime(seconds: 600)])
        let signed = try success.encoded(integrity: credentials.key, fingerprint: true)
        guard case .success(let m) = try TURNClientMessages.parseReply(signed, method: .allocate, transactionID: tid, credentials: credentials) else {
            Issue.record("not a success")
            return
        }
        #expect(m.first(.xorRelayedAddress) == .xorRelayedAddress(relayed))
        let forged = try success.encoded(integrity: STUNIntegrityKey(key: [1, 2, 3]), fingerprint: true)
        #expect(throws: TURNReplyError.badIntegrity) {
            _ = try TURNClientMessages.parseReply(forged, method: .allocate, transactionID: tid, credentials: credentials)
        }
    }

    @Test func refusesOtherTransactionsAndMethods() throws {
        let other = STUNTransactionID(high: 9, low: 9)
        let ok = try STUNMessage(type: STUNMessageType(method: .refresh, messageClass: .successResponse), transactionID: tid).encoded()
        #expect(throws: TURNReplyError.self) {
            _ = try TURNClientMessages.parseReply(ok, method: .refresh, transactionID: other, credentials: nil)
        }
        #expect(throws: TURNReplyError.unexpected(STUNMessageType(method: .refresh, messageClass: .successResponse))) {
            _ = try TURNClientMessages.parseReply(ok, method: .allocate, transactionID: tid, credentials: nil)
        }
        let noCode = try STUNMessage(type: STUNMessageType(method: .allocate, messageClass: .errorResponse), transactionID: tid).encoded()
        #expect(throws: TURNReplyError.incomplete) {
            _ = try TURNClientMessages.parseReply(noCode, method: .allocate, transactionID: tid, credentials: nil)
        }
    }
}

@Suite struct RelayPayloadTests {
    @Test func roundTrips() throws {
        var buffer = [UInt8](repeating: 0, count: 1300)
        let n = buffer.withUnsafeMutableBytes {
            RelayPayload.write(channel: 0x4000, size: 1200, step: 7, pair: 31, sequence: 0x1_0000_0002, into: $0)
        }
        #expect(n == 1204)
        #expect(buffer[0] == 0x40 && buffer[1] == 0 && buffer[2] == 0x04 && buffer[3] == 0xB0)
        let read = try #require(buffer[0..<n].withUnsafeBytes { RelayPayload.read($0) })
        #expect(read.channel == 0x4000 && read.step == 7 && read.pair == 31 && read.sequence == 0x1_0000_0002)
    }

    @Test func rejectsSTUNShortAndOverlongMessages() {
        var buffer = [UInt8](repeating: 0, count: 64)
        #expect(buffer.withUnsafeMutableBytes { RelayPayload.write(channel: 0x4000, size: 100, step: 1, pair: 1, sequence: 1, into: $0) } == 0)
        _ = buffer.withUnsafeMutableBytes { RelayPayload.write(channel: 0x4000, size: 40, step: 1, pair: 1, sequence: 1, into: $0) }
        #expect(buffer[0..<10].withUnsafeBytes { RelayPayload.read($0) } == nil)  // truncated
        #expect(buffer[0..<43].withUnsafeBytes { RelayPayload.read($0) } == nil)  // shorter than its length field
        buffer[0] = 0x00  // a STUN-looking first byte
        #expect(buffer[0..<44].withUnsafeBytes { RelayPayload.read($0) } == nil)
    }
}

@Suite struct LosslessRateSearchTests {
    /// Drives the search against a server that is lossless up to `capacity`.
    func search(capacity: Int, start: Int = 20_000, maximum: Int = 400_000) -> (LosslessRateSearch, [Int]) {
        var s = LosslessRateSearch(start: start, maximum: maximum, precision: 0.05, maxSteps: 20)
        var tried: [Int] = []
        while let rate = s.next {
            tried.append(rate)
            s.record(rate: rate, lossless: rate <= capacity)
        }
        return (s, tried)
    }

    @Test(arguments: [7_000, 33_000, 91_000, 150_000, 260_000])
    func convergesBelowCapacityWithinPrecision(capacity: Int) throws {
        let (s, tried) = search(capacity: capacity)
        let best = try #require(s.highestLossless)
        #expect(best <= capacity)
        #expect(Double(best) >= Double(capacity) * 0.94, "tried \(tried)")
        #expect(tried.count <= 12)
    }

    @Test func doublesThenBisects() {
        let (_, tried) = search(capacity: 100_000)
        #expect(Array(tried.prefix(4)) == [20_000, 40_000, 80_000, 160_000])
        #expect(tried[4] == 120_000)
    }

    @Test func stopsAtTheMaximumAndAtTheFloor() {
        let (high, triedHigh) = search(capacity: 10_000_000, maximum: 100_000)
        #expect(high.highestLossless == 100_000)
        #expect(triedHigh.last == 100_000)
        let (none, triedNone) = search(capacity: 0)
        #expect(none.highestLossless == nil)
        #expect(triedNone.allSatisfy { $0 >= 100 })
        #expect(triedNone.last.map { $0 / 2 < 100 } == true)
    }

    @Test func honoursTheStepBudget() {
        var s = LosslessRateSearch(start: 1000, maximum: 1_000_000, maxSteps: 3)
        var n = 0
        while let r = s.next { s.record(rate: r, lossless: true); n += 1 }
        #expect(n == 3)
        #expect(s.highestLossless == 4000)
    }
}

@Suite struct SummaryLineTests {
    @Test func stunLines() {
        #expect(SummaryLine.stun(parley: 210_000.4, coturn: 130_000) == "stun: parley 210000 resp/s, coturn 130000 resp/s, ratio 1.62")
        #expect(SummaryLine.stun(parley: nil, coturn: 129_999.6) == "stun: coturn 130000 resp/s")
        #expect(SummaryLine.stun(parley: 5, coturn: 0) == "stun: parley 5 resp/s, coturn 0 resp/s, ratio n/a")
    }

    @Test func turnLines() {
        let p = RelayResult(rate: 80_000, sent: 160_000, delivered: 160_000, seconds: 2)
        let c = RelayResult(rate: 60_000, sent: 120_000, delivered: 119_988, seconds: 2)
        #expect(c.lossPercent == 0.01)
        #expect(SummaryLine.turn(payloadSize: 1200, parley: p, coturn: c)
                == "turn 1200B: parley 80000 msg/s loss 0.00%, coturn 59994 msg/s loss 0.01%, ratio 1.33")
        #expect(SummaryLine.turn(payloadSize: 1200, parley: nil, coturn: c) == "turn 1200B: coturn 59994 msg/s loss 0.01%")
    }
}
