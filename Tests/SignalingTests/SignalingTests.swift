import Chat
import Synchronization
import Testing

@testable import Signaling

final class CountingSink: ClientSink {
    let events = Mutex<[ChatEvent]>([])
    func push(_ event: ChatEvent) { events.withLock { $0.append(event) } }
    var count: Int { events.withLock { $0.count } }
}



@Suite struct ConnectionHubTests {
    @Test func reportsFirstAndLastConnectionOfAUser() {
        let hub = ConnectionHub(shardCount: 4)
        let a = CountingSink(), b = CountingSink()
        #expect(hub.register(a, id: 1, username: "ann"))
        #expect(!hub.register(b, id: 2, username: "ann"))
        #expect(hub.isOnline("ann"))
        #expect(hub.connections == 2 && hub.onlineUsers == 1)
        #expect(!hub.unregister(id: 1, username: "ann"))
        #expect(hub.unregister(id: 2, username: "ann"))
        #expect(!hub.isOnline("ann"))
        #expect(!hub.unregister(id: 2, username: "ann"))
        #expect(hub.connections == 0 && hub.onlineUsers == 0)
    }

    @Test func deliversToEveryConnectionButTheExcludedOne() {
        let hub = ConnectionHub()
        let a = CountingSink(), b = CountingSink()
        hub.register(a, id: 1, username: "ann")
        hub.register(b, id: 2, username: "ann")
        let event = ChatEvent.presence(username: "bob", online: true, lastSeen: nil)
        #expect(hub.deliver(event, to: "ann", excluding: 1) == 1)
        #expect(a.count == 0 && b.count == 1)
        #expect(hub.deliver(event, to: "nobody", excluding: nil) == 0)
    }
}

@Suite struct OutboundQueueTests {
    @Test func heldPushesFollowWhatWasSentDuringTheHold() async {
        let queue = OutboundQueue(capacity: 16)
        queue.beginHold()
        queue.push(.presence(username: "x", online: true, lastSeen: nil))
        queue.send(["type": "login_response"])
        queue.endHold()
        queue.finish()
        var order: [String] = []
        for await item in queue.stream {
            switch item {
            case .text: order.append("text")
            case .event: order.append("event")
            }
        }
        #expect(order == ["text", "event"])
    }

    @Test func overflowEndsTheStreamInsteadOfGrowing() {
        let queue = OutboundQueue(capacity: 2)
        for _ in 0..<5 { queue.send(["type": "x"]) }
        #expect(queue.didOverflow)
    }
}

@Suite struct RateLimiterTests {
    @Test func allowsTheBurstThenTheRate() {
        let start = ContinuousClock.now
        var limiter = RateLimiter(rate: 10, burst: 3, now: start)
        var answers: [Bool] = []
        for _ in 0..<5 { answers.append(limiter.allow(now: start)) }
        #expect(answers == [true, true, true, false, false])
        let refilled = limiter.allow(now: start + .milliseconds(100))
        let again = limiter.allow(now: start + .milliseconds(100))
        #expect(refilled)
        #expect(!again)
    }
}

@Suite struct LineProtocolTests {
    @Test(arguments: ["plain", "two\nlines", "back\\slash \\n literal", "crlf\r\nend", ""])
    func escapingRoundTrips(text: String) {
        let escaped = LineProtocol.escape(text)
        #expect(!escaped.contains("\n"))
        #expect(LineProtocol.unescape(Substring(escaped)) == text)
    }

    @Test func receiveLinesNameTheConversation() {
        let direct = StoredMessage(seq: 3, sender: "ann", target: .direct(recipient: "bob"), content: "hi\nthere",
                                   clientMessageID: nil, createdAt: 0)
        #expect(LineProtocol.receiveLine(direct) == "receive ann ann 1970-01-01T00:00:00.000Z hi\\nthere")
        let group = StoredMessage(seq: 4, sender: "ann", target: .group(id: 1, name: "team"), content: "yo",
                                  clientMessageID: nil, createdAt: 0)
        #expect(LineProtocol.receiveLine(group) == "receive #team ann 1970-01-01T00:00:00.000Z yo")
        #expect(LineProtocol.historyLine(group) == "m4 ann 1970-01-01T00:00:00.000Z yo")
    }
}
