import Chat
import Foundation
import Synchronization
import Testing

/// A CallMedia that records what call signaling asked of the SFU.
final class RecordingMedia: CallMedia {
    let calls = Mutex<[String]>([])
    var log: [String] { calls.withLock { $0 } }
    private func note(_ s: String) { calls.withLock { $0.append(s) } }

    func join(call: String, participant: ConnectionID, user: String) async { note("join \(call) \(participant) \(user)") }
    func publish(call: String, participant: ConnectionID, offer: String) async throws(CallMediaError) -> String {
        guard offer.hasPrefix("v=0") else { throw CallMediaError("offer does not parse") }
        note("publish \(call) \(participant)")
        return "v=0 answer"
    }
    func subscribeAnswer(call: String, participant: ConnectionID, answer: String) async throws(CallMediaError) {
        note("answer \(call) \(participant)")
    }
    func updateTrack(call: String, participant: ConnectionID, mid: String, source: String?, muted: Bool?) async throws(CallMediaError) {
        note("track \(call) \(mid) \(source ?? "-")")
    }
    func restartSubscriber(call: String, participant: ConnectionID) async throws(CallMediaError) { note("restart \(call)") }
    func leave(call: String, participant: ConnectionID) async { note("leave \(call) \(participant)") }
    func end(call: String) async { note("end \(call)") }
    func setRecording(call: String, enabled: Bool) async throws(CallMediaError) { note("record \(call) \(enabled)") }
}

extension RecordingDelivery {
    /// The call events a user was pushed, as "type:reason" strings.
    func callEvents(to user: String) -> [String] {
        pushes.compactMap { p in
            guard p.user == user, case let .call(e) = p.event else { return nil }
            switch e {
            case let .incoming(id, _, _, _, _): return "incoming:\(id)"
            case let .ended(_, reason): return "ended:\(reason)"
            case let .joined(_, u): return "joined:\(u)"
            case let .left(_, u): return "left:\(u)"
            case .subscribeOffer: return "offer"
            case .tracks: return "tracks"
            case let .signal(_, from, _): return "signal:\(from)"
            case let .recording(_, on, _): return "recording:\(on)"
            }
        }
    }
}

@Suite struct CallServiceTests {
    let f: ServiceFixture
    let media = RecordingMedia()

    init() throws { f = try ServiceFixture() }

    func service(ring: Duration = .seconds(30), recording: Bool = false) -> CallService {
        CallService(chat: f.service, media: media, settings: .init(ringTimeout: ring, recordingAvailable: recording))
    }

    @Test func oneToOneRingsAcceptsAndEndsForBoth() async throws {
        try await f.users("ann", "bob")
        for u in ["ann", "bob"] { f.delivery.setOnline(u) }
        let calls = service()
        let ann = Caller(username: "ann", connectionID: 1), bob = Caller(username: "bob", connectionID: 2)
        let started = try await calls.start(by: ann, callee: "bob", groupName: nil, media: nil, record: false)
        #expect(!started.busy)
        let id = started.record.id
        #expect(f.delivery.callEvents(to: "bob") == ["incoming:\(id)"])
        #expect(try await calls.accept(by: bob, callID: id) == ["ann", "bob"])
        #expect(f.delivery.callEvents(to: "ann").contains("joined:bob"))
        #expect(try await calls.end(by: bob, callID: id) == "hangup")
        #expect(f.delivery.callEvents(to: "ann").last == "ended:hangup")
        #expect(media.log.contains("end \(id)"))
        let record = try #require(try await f.store.call(seq: started.record.seq))
        #expect(record.status(for: "ann") == "completed")
        #expect(record.status(for: "bob") == "completed")
        #expect(record.participants == ["ann", "bob"])
        // An ended call is not found any more.
        await #expect(throws: ChatError.notFound("unknown call '\(id)'")) { try await calls.accept(by: bob, callID: id) }
    }

    @Test func onlyTheCalleeMayJoinAndStrangersGetForbidden() async throws {
        try await f.users("ann", "bob", "eve")
        let calls = service()
        let started = try await calls.start(by: Caller(username: "ann", connectionID: 1), callee: "bob", groupName: nil,
                                            media: ["audio"], record: false)
        let eve = Caller(username: "eve", connectionID: 9)
        await #expect(throws: ChatError.self) { try await calls.accept(by: eve, callID: started.record.id) }
        await #expect(throws: ChatError.self) { try await calls.publish(by: eve, callID: started.record.id, offer: "v=0") }
        await #expect(throws: ChatError.self) {
            try await calls.subscribeAnswer(by: eve, callID: started.record.id, answer: "v=0")
        }
        // Bob is invited but has not joined: no media for him either.
        await #expect(throws: ChatError.self) {
            try await calls.publish(by: Caller(username: "bob", connectionID: 2), callID: started.record.id, offer: "v=0")
        }
        await #expect(throws: ChatError.notFound("unknown call 'c999'")) { try await calls.accept(by: eve, callID: "c999") }
        #expect(!media.log.contains { $0.contains(" 9 ") || $0.hasSuffix(" 9") })
    }

    @Test func rejectionEndsAOneToOneCall() async throws {
        try await f.users("ann", "bob")
        f.delivery.setOnline("ann")
        let calls = service()
        let started = try await calls.start(by: Caller(username: "ann", connectionID: 1), callee: "bob", groupName: nil,
                                            media: nil, record: false)
        #expect(try await calls.reject(by: Caller(username: "bob", connectionID: 2), callID: started.record.id, reason: nil)
                == "rejected")
        #expect(f.delivery.callEvents(to: "ann").last == "ended:rejected")
        let record = try #require(try await f.store.call(seq: started.record.seq))
        #expect(record.status(for: "ann") == "rejected")
        #expect(record.status(for: "bob") == "rejected")
    }

    @Test func nobodyAnsweringTimesOutAsMissed() async throws {
        try await f.users("ann", "bob")
        f.delivery.setOnline("ann")
        let calls = service(ring: .milliseconds(200))
        let started = try await calls.start(by: Caller(username: "ann", connectionID: 1), callee: "bob", groupName: nil,
                                            media: nil, record: false)
        for _ in 0..<50 where f.delivery.callEvents(to: "ann").last != "ended:timeout" {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(await calls.liveCallCount == 0)
        #expect(f.delivery.callEvents(to: "ann").last == "ended:timeout")
        let record = try #require(try await f.store.call(seq: started.record.seq))
        #expect(record.status(for: "bob") == "missed")
        #expect(record.status(for: "ann") == "no_answer")
    }

    @Test func aCalleeInAnotherCallIsBusy() async throws {
        try await f.users("ann", "bob", "cat")
        for u in ["ann", "bob", "cat"] { f.delivery.setOnline(u) }
        let calls = service()
        let first = try await calls.start(by: Caller(username: "ann", connectionID: 1), callee: "bob", groupName: nil,
                                          media: nil, record: false)
        _ = try await calls.accept(by: Caller(username: "bob", connectionID: 2), callID: first.record.id)
        let second = try await calls.start(by: Caller(username: "cat", connectionID: 3), callee: "bob", groupName: nil,
                                           media: nil, record: false)
        #expect(second.busy)
        await calls.finishBusy(second.record.id)
        #expect(f.delivery.callEvents(to: "cat").last == "ended:busy")
        let record = try #require(try await f.store.call(seq: second.record.seq))
        #expect(record.status(for: "cat") == "busy")
        #expect(await calls.liveCallCount == 1)
    }

    @Test func groupCallGoesOnUntilFewerThanTwoRemain() async throws {
        try await f.users("ann", "bob", "cat")
        for u in ["ann", "bob", "cat"] { f.delivery.setOnline(u) }
        let ann = Caller(username: "ann", connectionID: 1)
        guard case let .success(group) = try await f.service.createGroup(by: ann, name: "team") else {
            Issue.record("group")
            return
        }
        _ = try await f.service.invite(by: ann, groupID: group.wireID, username: "bob")
        _ = try await f.service.invite(by: ann, groupID: group.wireID, username: "cat")
        let calls = service()
        let id = try await calls.start(by: ann, callee: nil, groupName: "team", media: nil, record: false).record.id
        #expect(f.delivery.callEvents(to: "bob") == ["incoming:\(id)"])
        _ = try await calls.accept(by: Caller(username: "bob", connectionID: 2), callID: id)
        _ = try await calls.accept(by: Caller(username: "cat", connectionID: 3), callID: id)
        // Cat's connection closes: a leave.
        await calls.connectionClosed(3)
        #expect(f.delivery.callEvents(to: "ann").contains("left:cat"))
        #expect(await calls.liveCallCount == 1)
        // Cat comes back on a new connection while the call lasts.
        _ = try await calls.accept(by: Caller(username: "cat", connectionID: 4), callID: id)
        #expect(try await calls.end(by: ann, callID: id) == "left")
        #expect(try await calls.end(by: Caller(username: "bob", connectionID: 2), callID: id) == "hangup")
        #expect(await calls.liveCallCount == 0)
        #expect(f.delivery.callEvents(to: "cat").last == "ended:hangup")
        let history = try await calls.history(for: Caller(username: "cat", connectionID: 4), limit: 10, before: nil)
        #expect(history.first?.groupName == "team")
        #expect(history.first?.status(for: "cat") == "completed")
    }

    @Test func mediaRequestsNeedAParticipantAndSignalsAreRelayed() async throws {
        try await f.users("ann", "bob")
        for u in ["ann", "bob"] { f.delivery.setOnline(u) }
        let calls = service(recording: true)
        let ann = Caller(username: "ann", connectionID: 1)
        let id = try await calls.start(by: ann, callee: "bob", groupName: nil, media: nil, record: true).record.id
        #expect(media.log.contains("record \(id) true"))
        #expect(try await calls.publish(by: ann, callID: id, offer: "v=0 offer") == "v=0 answer")
        await #expect(throws: ChatError.badRequest("offer does not parse")) {
            try await calls.publish(by: ann, callID: id, offer: "garbage")
        }
        try await calls.publishTrack(by: ann, callID: id, mid: "2", source: "screen", muted: nil)
        #expect(media.log.contains("track \(id) 2 screen"))
        try await calls.signal(by: ann, callID: id, to: "bob", payload: ["sdp": "x"])
        #expect(f.delivery.callEvents(to: "bob").contains("signal:ann"))
        await #expect(throws: ChatError.self) { try await calls.signal(by: ann, callID: id, to: "nobody", payload: [:]) }
        // The SFU lost the caller's consent: a leave, which ends a 1:1 call.
        await calls.handle(.lost(call: id, participant: 1, reason: "consent_lost"))
        #expect(await calls.liveCallCount == 0)
        #expect(f.delivery.callEvents(to: "bob").last == "ended:connection_lost")
    }

    @Test func recordingNeedsARecordDirectory() async throws {
        try await f.users("ann", "bob")
        let calls = service(recording: false)
        await #expect(throws: ChatError.forbidden("recording is not enabled on this server")) {
            try await calls.start(by: Caller(username: "ann", connectionID: 1), callee: "bob", groupName: nil, media: nil,
                                  record: true)
        }
    }
}
