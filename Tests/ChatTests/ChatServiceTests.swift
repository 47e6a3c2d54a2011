import Chat
import ChatStoreSQLite
import Foundation
import Synchronization
import Testing

/// A Delivery that records every push, with a settable set of online users.
final class RecordingDelivery: Delivery {
    struct Push { var event: ChatEvent; var user: String; var excluding: ConnectionID? }
    let state = Mutex<(online: [String: Int], pushes: [Push])>(([:], []))

    func setOnline(_ user: String, connections: Int = 1) { state.withLock { $0.online[user] = connections } }
    func setOffline(_ user: String) { state.withLock { $0.online[user] = nil } }
    var pushes: [Push] { state.withLock { $0.pushes } }

    func deliver(_ event: ChatEvent, to username: String, excluding: ConnectionID?) -> Int {
        state.withLock { s in
            let n = s.online[username] ?? 0
            guard n > 0 else { return 0 }
            s.pushes.append(Push(event: event, user: username, excluding: excluding))
            return excluding == nil ? n : n - 1
        }
    }

    func isOnline(_ username: String) -> Bool { state.withLock { ($0.online[username] ?? 0) > 0 } }

    func messages(to user: String) -> [String] {
        pushes.compactMap { p in
            if p.user == user, case let .message(m) = p.event { return m.content }
            return nil
        }
    }
}

final class ServiceFixture {
    let directory: URL
    let store: SQLiteChatStore
    let delivery = RecordingDelivery()
    let service: ChatService
    final class Clock: Sendable {
        let value = Atomic<Int64>(1_000_000)
        func tick() -> Millis { value.wrappingAdd(1, ordering: .relaxed).newValue }
    }

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("parley-svc-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        store = try SQLiteChatStore(path: directory.appendingPathComponent("db.sqlite").path)
        let clock = Clock()
        service = ChatService(store: store, delivery: delivery, hasher: PasswordHasher(iterations: 100),
                              now: { clock.tick() })
    }

    func users(_ names: String...) async throws {
        for n in names { #expect(try await service.register(username: n, password: "password-\(n)", displayName: nil) == .success) }
    }

    deinit { try? FileManager.default.removeItem(at: directory) }
}

func caller(_ name: String, _ connection: ConnectionID = 1) -> Caller { Caller(username: name, connectionID: connection) }

@Suite struct ChatServiceTests {
    @Test func registrationRules() async throws {
        let f = try ServiceFixture()
        #expect(try await f.service.register(username: "Ann", password: "longenough", displayName: "Ann A") == .success)
        #expect(try await f.service.register(username: "ANN", password: "longenough", displayName: nil) == .failure("username taken"))
        #expect(try await f.service.register(username: "bob", password: "short", displayName: nil) == .failure("password too short"))
        #expect(try await f.service.register(username: "b b", password: "longenough", displayName: nil) == .failure("invalid username"))
        let stored = try #require(try await f.store.user(named: "ann"))
        #expect(stored.passwordHash.hasPrefix("pbkdf2-sha512$"))
        #expect(!stored.passwordHash.contains("longenough"))
    }

    @Test func loginResumeAndLogout() async throws {
        let f = try ServiceFixture()
        try await f.users("ann")
        #expect(try await f.service.login(username: "ann", password: "wrong-password") == nil)
        let grant = try #require(try await f.service.login(username: "ANN", password: "password-ann"))
        #expect(try await f.service.resume(token: grant.token)?.username == "ann")
        try await f.service.logout(token: grant.token)
        #expect(try await f.service.resume(token: grant.token) == nil)
    }

    @Test func offlineRecipientGetsMessageAsPendingExactlyOnce() async throws {
        let f = try ServiceFixture()
        try await f.users("ann", "bob")
        f.delivery.setOnline("ann", connections: 2)
        _ = try await f.service.sendDirect(from: caller("ann"), to: "bob", content: "first", clientMessageID: nil)
        _ = try await f.service.sendDirect(from: caller("ann"), to: "bob", content: "second", clientMessageID: nil)
        #expect(f.delivery.messages(to: "bob").isEmpty)
        // The sender's other device is kept in sync, the sending one is not.
        #expect(f.delivery.pushes.filter { $0.user == "ann" }.allSatisfy { $0.excluding == 1 })
        #expect(try await f.service.takePending(for: "bob").map(\.content) == ["first", "second"])
        #expect(try await f.service.takePending(for: "bob").isEmpty)
    }

    @Test func onlineRecipientGetsItLiveAndNotPending() async throws {
        let f = try ServiceFixture()
        try await f.users("ann", "bob")
        f.delivery.setOnline("bob")
        let m = try await f.service.sendDirect(from: caller("ann"), to: "bob", content: "see https://a.example",
                                               clientMessageID: "c1")
        #expect(f.delivery.messages(to: "bob") == ["see https://a.example"])
        #expect(m.extras.entities.map(\.url) == ["https://a.example"])
        #expect(try await f.service.takePending(for: "bob").isEmpty)
        let retry = try await f.service.sendDirect(from: caller("ann"), to: "bob", content: "see https://a.example",
                                                   clientMessageID: "c1")
        #expect(retry.id == m.id)
        #expect(f.delivery.messages(to: "bob").count == 1)
    }

    @Test func groupRulesAndDelivery() async throws {
        let f = try ServiceFixture()
        try await f.users("ann", "bob", "cat")
        guard case let .success(group) = try await f.service.createGroup(by: caller("ann"), name: "Team") else {
            Issue.record("group not created"); return
        }
        #expect(group.name == "team")
        #expect(try await f.service.createGroup(by: caller("bob"), name: "team") == .failure("group name taken"))
        await #expect(throws: ChatError.forbidden("not a member of 'team'")) {
            _ = try await f.service.sendGroup(from: caller("cat"), groupName: "team", content: "hi", clientMessageID: nil)
        }
        #expect(try await f.service.joinGroup(by: caller("bob"), groupID: group.wireID) == .success(group))
        f.delivery.setOnline("bob")
        _ = try await f.service.sendGroup(from: caller("ann"), groupName: "team", content: "hello team", clientMessageID: nil)
        #expect(f.delivery.messages(to: "bob") == ["hello team"])
        await #expect(throws: ChatError.self) {
            _ = try await f.service.history(for: caller("cat"), .group("team"), query: HistoryQuery())
        }
        _ = try await f.service.invite(by: caller("bob"), groupID: group.wireID, username: "cat")
        #expect(try await f.service.history(for: caller("cat"), .group("team"), query: HistoryQuery()).messages.count == 1)
        #expect(try await f.service.takePending(for: "cat").isEmpty)
    }

    @Test func onlyTheSenderEditsOrDeletes() async throws {
        let f = try ServiceFixture()
        try await f.users("ann", "bob", "cat")
        let m = try await f.service.sendDirect(from: caller("ann"), to: "bob", content: "typo", clientMessageID: nil)
        await #expect(throws: ChatError.forbidden("only the sender may change a message")) {
            _ = try await f.service.edit(by: caller("bob"), messageID: m.id, content: "hacked")
        }
        await #expect(throws: ChatError.notFound("unknown message '\(m.id)'")) {
            _ = try await f.service.delete(by: caller("cat"), messageID: m.id)
        }
        f.delivery.setOnline("bob")
        let edited = try await f.service.edit(by: caller("ann"), messageID: m.id, content: "fixed")
        #expect(edited.content == "fixed")
        #expect(f.delivery.pushes.contains { if case .edited = $0.event { $0.user == "bob" } else { false } })
        _ = try await f.service.delete(by: caller("ann"), messageID: m.id)
        #expect(try await f.service.history(for: caller("bob"), .direct("ann"), query: HistoryQuery()).messages.isEmpty)
    }

    @Test func readReceiptsGoToTheSenderOnce() async throws {
        let f = try ServiceFixture()
        try await f.users("ann", "bob")
        f.delivery.setOnline("ann")
        let m = try await f.service.sendDirect(from: caller("ann", 9), to: "bob", content: "read me", clientMessageID: nil)
        await #expect(throws: ChatError.self) { try await f.service.markRead(by: caller("ann"), messageID: m.id) }
        try await f.service.markRead(by: caller("bob"), messageID: m.id)
        try await f.service.markRead(by: caller("bob"), messageID: m.id)
        let receipts = f.delivery.pushes.filter { if case .readReceipt = $0.event { true } else { false } }
        #expect(receipts.count == 1)
        #expect(receipts.first?.user == "ann")
    }

    @Test func presenceReachesWatchers() async throws {
        let f = try ServiceFixture()
        try await f.users("ann", "bob")
        _ = try await f.service.addContact(by: caller("ann"), username: "bob")
        f.delivery.setOnline("ann")
        try await f.service.presenceChanged(username: "bob", online: false)
        let presence = f.delivery.pushes.compactMap { p -> (String, Bool, Millis?)? in
            if case let .presence(u, online, seen) = p.event, p.user == "ann" { return (u, online, seen) }
            return nil
        }
        #expect(presence.count == 1)
        #expect(presence.first?.0 == "bob")
        #expect(presence.first?.1 == false)
        #expect(try await f.store.user(named: "bob")?.lastSeen == presence.first?.2)
    }

    @Test func broadcastStoresOnePerRecipientOrNothing() async throws {
        let f = try ServiceFixture()
        try await f.users("ann", "bob", "cat")
        await #expect(throws: ChatError.notFound("unknown user 'nobody'")) {
            _ = try await f.service.broadcast(from: caller("ann"), to: ["bob", "nobody"], content: "x", clientMessageID: nil)
        }
        #expect(try await f.service.takePending(for: "bob").isEmpty)
        let sent = try await f.service.broadcast(from: caller("ann"), to: ["bob", "CAT", "bob"], content: "at 5",
                                                 clientMessageID: nil)
        #expect(sent.map(\.recipient) == ["bob", "cat"])
        #expect(Set(sent.map(\.message.id)).count == 2)
    }
}
