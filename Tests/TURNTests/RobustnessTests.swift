import RTCBase
import STUN
import Testing
@testable import TURN

@Suite("Binding on the TURN port, rate limits, bad input")
struct RobustnessTests {
    func bindingRequest(_ tid: STUNTransactionID, fingerprint: Bool = false) -> [UInt8] {
        try! STUNMessage(type: .bindingRequest, transactionID: tid).encoded(fingerprint: fingerprint)
    }

    @Test func bindingIsAnsweredWithoutAuth() throws {
        let h = Harness()
        let tid = h.tid()
        let sends = sendToClientActions(h.fromClient(bindingRequest(tid)))
        let raw = try #require(sends.first?.bytes)
        let response = try STUNMessage(parsing: raw)
        #expect(response.type == .bindingSuccess)
        #expect(response.transactionID == tid)
        #expect(response.xorMappedAddress == clientA)
        #expect(raw.count == 32)  // header + XOR-MAPPED-ADDRESS only
        // FINGERPRINT is echoed only when the request had one.
        let withFP = try #require(sendToClientActions(h.fromClient(bindingRequest(h.tid(), fingerprint: true))).first?.bytes)
        try withFP.withUnsafeBytes { try STUNMessageView($0).verifyFingerprint() }
        // ICE attributes are not understood by a TURN server's Binding: 420.
        let ice = try STUNMessage(type: .bindingRequest, transactionID: h.tid(), attributes: [.priority(1)]).encoded()
        let r = try STUNMessage(parsing: try #require(sendToClientActions(h.fromClient(ice)).first?.bytes))
        #expect(r.code == 420)
        #expect(r.first(.unknownAttributes) == .unknownAttributes([STUNAttributeType.priority.rawValue]))
    }

    /// `answerBinding` (the UDP edge's path) answers what `handleClientPacket`
    /// would, byte for byte, and leaves everything else to it.
    @Test func bindingFastPathMatchesTheQueuedAnswer() throws {
        let h = Harness { $0.unauthenticatedRate = 5; $0.unauthenticatedBurst = 4 }
        func fast(_ request: [UInt8], from client: TransportAddress = clientA) -> (TURNBindingAnswer, [UInt8]) {
            var out = [UInt8](repeating: 0, count: TURNServer.bindingResponseCapacity)
            let answer = request.withUnsafeBytes { bytes in
                out.withUnsafeMutableBytes { h.server.answerBinding(bytes, from: client, now: h.now, into: $0) }
            }
            if case .answered(let n) = answer { return (answer, Array(out[..<n])) }
            return (answer, [])
        }
        for fingerprint in [false, true] {
            let tid = h.tid()
            let (answer, bytes) = fast(bindingRequest(tid, fingerprint: fingerprint))
            #expect(answer == .answered(fingerprint ? 40 : 32))
            let queued = try #require(sendToClientActions(h.fromClient(bindingRequest(tid, fingerprint: fingerprint))).first?.bytes)
            #expect(bytes == queued)
        }
        #expect(h.server.counters.bindingResponses == 4)
        #expect(h.server.pollAction() == nil)
        // Not plain Binding requests: ICE attributes (420 on the slow path),
        // a bad FINGERPRINT, an Allocate, ChannelData, a truncated header.
        let ice = try STUNMessage(type: .bindingRequest, transactionID: h.tid(), attributes: [.priority(1)]).encoded()
        var badFingerprint = bindingRequest(h.tid(), fingerprint: true)
        badFingerprint[badFingerprint.count - 1] ^= 1
        let allocate = try STUNMessage(type: STUNMessageType(method: .allocate, messageClass: .request), transactionID: h.tid()).encoded()
        for request in [ice, badFingerprint, allocate, [0x40, 0x00, 0x00, 0x00], Array(bindingRequest(h.tid()).prefix(12))] {
            #expect(fast(request).0 == .notHandled)
        }
        #expect(h.server.counters.bindingResponses == 4)
        // The per-source budget is shared with the slow path: burst 4, all used.
        #expect(fast(bindingRequest(h.tid())).0 == .dropped)
        h.now += .seconds(1)  // +5 tokens, capped at the burst of 4
        for _ in 0..<4 { #expect(fast(bindingRequest(h.tid())).0 == .answered(32)) }
        #expect(fast(bindingRequest(h.tid())).0 == .dropped)
        #expect(h.server.counters.rateLimited >= 1)
        #expect(fast(bindingRequest(h.tid()), from: clientB).0 == .answered(32))
    }

    @Test func noUnauthenticatedLimitAnswersEverything() throws {
        // `parley serve --turn-unauthenticated-rate 0`: benchmarks send from
        // one address, as coturn (which has no such limit) is measured.
        let h = Harness { $0.unauthenticatedRate = nil }
        var answered = 0
        for _ in 0..<1000 where !h.fromClient(bindingRequest(h.tid())).isEmpty { answered += 1 }
        #expect(answered == 1000)
        #expect(h.server.counters.rateLimited == 0)
        #expect(h.server.pollTimeout() == nil)
    }

    @Test func unauthenticatedAnswersAreRateLimitedPerSourceIP() throws {
        let h = Harness { $0.unauthenticatedRate = 5; $0.unauthenticatedBurst = 10 }
        var answered = 0
        for _ in 0..<30 where !h.fromClient(bindingRequest(h.tid())).isEmpty { answered += 1 }
        #expect(answered == 10)
        #expect(h.server.counters.rateLimited == 20)
        // 401 challenges draw from the same budget.
        #expect(h.request(.allocate, [.requestedTransport(protocolNumber: 17)], credentials: nil).response == nil)
        // Another source IP has its own bucket.
        #expect(!h.fromClient(bindingRequest(h.tid()), client: clientB).isEmpty)
        // One second refills 5.
        h.now += .seconds(1)
        answered = 0
        for _ in 0..<10 where !h.fromClient(bindingRequest(h.tid())).isEmpty { answered += 1 }
        #expect(answered == 5)
        // Idle buckets are forgotten on the timer.
        #expect(h.server.pollTimeout() != nil)
        h.advanceFiringTimers(.seconds(30))
        #expect(h.server.pollTimeout() == nil)
    }

    @Test func rateLimiterTableIsBounded() throws {
        let h = Harness { $0.rateLimiterCapacity = 4; $0.unauthenticatedBurst = 1; $0.unauthenticatedRate = 1 }
        var answered = 0
        for i in 0..<100 {
            let source = TransportAddress(ip: .v4(0xC633_6400 | UInt32(i)), port: 1000)
            if !h.fromClient(bindingRequest(h.tid()), client: source).isEmpty { answered += 1 }
        }
        // 4 tracked sources (1 each) + the shared overflow bucket (burst 10).
        #expect(answered == 14)
    }

    @Test func authenticatedTrafficIsNotRateLimited() throws {
        let h = Harness { $0.unauthenticatedRate = 1; $0.unauthenticatedBurst = 1 }
        _ = try #require(h.allocate())
        for _ in 0..<20 { #expect(h.permit([peerA])?.isSuccess == true) }
    }

    @Test func badInputBatteryNeverCrashesAndIsCounted() throws {
        let h = Harness()
        _ = try #require(h.allocate())
        _ = h.channelBind(0x4001, peerA)
        let before = h.server.counters

        // Truncated STUN header, wrong cookie, length mismatch, oversize.
        var good = bindingRequest(h.tid())
        #expect(h.fromClient(Array(good.prefix(12))).isEmpty)
        good[4] = 0
        #expect(h.fromClient(good).isEmpty)
        #expect(h.fromClient(bindingRequest(h.tid()) + [0, 0, 0, 0]).isEmpty)
        var huge = [UInt8](repeating: 0, count: 70_000)
        huge[4] = 0x21; huge[5] = 0x12; huge[6] = 0xA4; huge[7] = 0x42
        #expect(h.fromClient(huge).isEmpty)
        // Attribute running past the end.
        let overrun: [UInt8] = [0, 1, 0, 8, 0x21, 0x12, 0xA4, 0x42] + [UInt8](repeating: 1, count: 12) + [0, 0x20, 0, 200, 0, 0, 0, 0]
        #expect(h.fromClient(overrun).isEmpty)
        #expect(h.fromClient([]).isEmpty)
        #expect(h.server.counters.malformedPackets == before.malformedPackets + 6)

        // ChannelData: lying length, truncated header, unbound channel.
        #expect(h.fromClient([0x40, 0x01, 0x04, 0x00, 1, 2, 3]).isEmpty)
        #expect(h.fromClient([0x40, 0x01, 0x00, 0x01, 1, 0, 0, 0, 0, 0, 0, 0]).isEmpty)  // 7 bytes trailing
        #expect(h.server.counters.badChannelDataLength == before.badChannelDataLength + 2)
        #expect(h.fromClient([0x40, 0x01]).isEmpty)
        #expect(h.fromClient(TURNChannelData.encode(channel: 0x4777, payload: [1], padded: true)).isEmpty)
        #expect(h.server.counters.unboundChannel == before.unboundChannel + 1)
        // 0x5000–0x7FFF: reserved first bytes.
        #expect(h.fromClient([0x50, 0x00, 0x00, 0x00]).isEmpty)

        // Responses and odd indications from a client are ignored.
        let response = try STUNMessage(type: .bindingSuccess, transactionID: h.tid(), attributes: [.xorMappedAddress(clientA)]).encoded()
        #expect(h.fromClient(response).isEmpty)
        let dataInd = try STUNMessage(type: STUNMessageType(method: .data, messageClass: .indication), transactionID: h.tid()).encoded()
        #expect(h.fromClient(dataInd).isEmpty)
        #expect(h.server.counters.unexpectedMessages == before.unexpectedMessages + 2)
        // Send indication without DATA.
        let noData = try STUNMessage(type: STUNMessageType(method: .send, messageClass: .indication), transactionID: h.tid(),
                                     attributes: [.xorPeerAddress(peerA)]).encoded()
        #expect(h.fromClient(noData).isEmpty)
        // Unknown method request: 400.
        let odd = try STUNMessage(type: STUNMessageType(method: STUNMethod(rawValue: 0x0FF), messageClass: .request),
                                  transactionID: h.tid()).encoded()
        #expect(try STUNMessage(parsing: try #require(sendToClientActions(h.fromClient(odd)).first?.bytes)).code == 400)

        // Garbage on a TCP connection closes it.
        #expect(h.fromClient([0xFF, 1, 2, 3], transport: .tcp(TURNConnectionID(9))) == [.closeConnection(TURNConnectionID(9))])

        // Random bytes, deterministic generator: nothing crashes, nothing is relayed.
        var rng = SplitMix64(seed: 7)
        for i in 0..<5000 {
            let n = Int(rng.next() % 200)
            var bytes = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            // Half of them look like STUN or ChannelData to get past the first byte.
            if i % 2 == 0, n >= 8 {
                bytes[0] &= 0x01
                bytes[4] = 0x21; bytes[5] = 0x12; bytes[6] = 0xA4; bytes[7] = 0x42
                let len = n - 20
                if len >= 0 { bytes[2] = UInt8(truncatingIfNeeded: len >> 8); bytes[3] = UInt8(truncatingIfNeeded: len) }
            } else if i % 3 == 0, n >= 1 {
                bytes[0] = 0x40
            }
            bytes.withUnsafeBytes {
                h.server.handleClientPacket($0, from: clientA, transport: .udp, now: h.now)
                _ = h.server.routeChannelData($0, from: clientA, transport: .udp, now: h.now)
                h.server.handlePeerPacket($0, relay: TransportAddress(ip: publicIP, port: 50000), from: peerB, now: h.now)
            }
            for action in h.drain() {
                if case .sendToPeer = action { Issue.record("random bytes were relayed") }
            }
        }
        #expect(h.server.counters.malformedPackets > before.malformedPackets + 1000)
    }

    @Test func streamFramerSplitsAndCoalesces() throws {
        let stun1 = try STUNMessage(type: .bindingRequest, transactionID: STUNTransactionID(high: 1, low: 1)).encoded()
        let stun2 = try STUNMessage(type: .bindingRequest, transactionID: STUNTransactionID(high: 2, low: 2),
                                    attributes: [.software("parley")]).encoded()
        let cd1 = TURNChannelData.encode(channel: 0x4001, payload: [1, 2, 3, 4, 5], padded: true)
        let cd2 = TURNChannelData.encode(channel: 0x4002, payload: [9, 9, 9, 9], padded: true)
        let stream = stun1 + cd1 + stun2 + cd2
        let expected = [stun1, cd1, stun2, cd2]

        // All at once (coalesced).
        var framer = TURNStreamFramer()
        framer.append(stream)
        var got: [[UInt8]] = []
        while let m = try framer.nextMessage() { got.append(m) }
        #expect(got == expected)
        #expect(framer.bufferedByteCount == 0)

        // Every split size, byte by byte up to 7 at a time.
        for chunk in 1...7 {
            var f = TURNStreamFramer()
            var out: [[UInt8]] = []
            var i = 0
            while i < stream.count {
                f.append(Array(stream[i..<min(stream.count, i + chunk)]))
                i += chunk
                while let m = try f.nextMessage() { out.append(m) }
            }
            #expect(out == expected, "chunk \(chunk)")
        }

        // The zero-copy accessor sees the same bytes.
        var z = TURNStreamFramer()
        z.append(cd1)
        let seen = try z.withNextMessage { Array($0) }
        #expect(seen == cd1)
    }

    @Test func streamFramerRejectsOversizeAndGarbage() throws {
        var f = TURNStreamFramer(maxMessageSize: 100)
        f.append([0x40, 0x01, 0x01, 0x00])  // ChannelData of 256 bytes
        #expect(throws: TURNFramingError.oversize(260)) { try f.nextMessage() }
        var g = TURNStreamFramer()
        g.append([0xC0])
        #expect(throws: TURNFramingError.garbage) { try g.nextMessage() }
        var c = TURNStreamFramer()
        c.append([0x00, 0x01, 0x00, 0x00, 0xDE, 0xAD, 0xBE, 0xEF])  // STUN type, bad cookie
        #expect(throws: TURNFramingError.garbage) { try c.nextMessage() }
        var p = TURNStreamFramer()
        p.append([0x00, 0x01, 0x00])  // partial: wait
        #expect(try p.nextMessage() == nil)
    }

    @Test func streamFramerFeedsTheEngineOverTCP() throws {
        let h = Harness()
        let conn = TURNTransport.tcp(TURNConnectionID(1))
        _ = try #require(h.allocate(alice, transport: conn))
        _ = h.channelBind(0x4001, peerA, transport: conn)
        let stream = TURNChannelData.encode(channel: 0x4001, payload: [1, 2, 3], padded: true)
            + sendIndication(peer: peerA, data: [4, 5], tid: h.tid())
            + TURNChannelData.encode(channel: 0x4001, payload: [6], padded: true)
        var framer = TURNStreamFramer()
        framer.append(Array(stream.prefix(5)))
        framer.append(Array(stream.dropFirst(5)))
        var payloads: [[UInt8]] = []
        while let message = try framer.nextMessage() {
            payloads += sendToPeerActions(h.fromClient(message, transport: conn)).map(\.bytes)
        }
        #expect(payloads == [[1, 2, 3], [4, 5], [6]])
    }

    @Test func addressPrefixes() {
        let p = IPAddressPrefix("10.20.0.0/16")!
        #expect(p.contains(IPAddress("10.20.255.1")!))
        #expect(!p.contains(IPAddress("10.21.0.1")!))
        #expect(!p.contains(IPAddress("::1")!))
        let v6 = IPAddressPrefix("2001:db8::/32")!
        #expect(v6.contains(IPAddress("2001:db8:1::5")!))
        #expect(!v6.contains(IPAddress("2001:db9::5")!))
        #expect(IPAddressPrefix("::1")!.contains(IPAddress("::1")!))
        #expect(IPAddressPrefix("0.0.0.0/0")!.contains(IPAddress("8.8.8.8")!))
        #expect(IPAddressPrefix("1.2.3.4/33") == nil)
    }
}
