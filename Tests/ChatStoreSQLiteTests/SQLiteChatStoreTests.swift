import Chat
import ChatStoreSQLite
import Foundation
import Testing

/// A fresh database in its own temporary directory, removed afterwards.
final class TempStore {
    let directory: URL
    let store: SQLiteChatStore

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("parley-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        store = try SQLiteChatStore(path: directory.appendingPathComponent("db.sqlite").path)
    }

    func reopen() throws -> SQLiteChatStore {
        try SQLiteChatStore(path: directory.appendingPathComponent("db.sqlite").path)
    }

    deinit { try? FileManager.default.removeItem(at: directory) }
}

func user(_ name: String, at: Millis = 1) -> UserRecord {
    UserRecord(username: name, displayName: name.uppercased(), passwordHash: "x", createdAt: at)
}

func direct(_ from: String, _ to: String, _ text: String, at: Millis, client: String? = nil) -> MessageDraft {
    MessageDraft(sender: from, target: .direct(recipient: to), content: text, clientMessageID: client, createdAt: at)
}

@Suite struct SQLiteChatStoreTests {
    @Test func migrationsAreVersionedAndIdempotent() throws {
        let temp = try TempStore()
        #expect(try temp.store.appliedMigrations() == ["v1-chat", "v2-fts", "v3-history-by-time", "v4-calls"])
        #expect(try temp.reopen().appliedMigrations() == ["v1-chat", "v2-fts", "v3-history-by-time", "v4-calls"])
    }

    @Test func usersAreUniqueAndSurviveReopen() async throws {
        let temp = try TempStore()
        try await temp.store.createUser(user("ann"))
        await #expect(throws: ChatStoreError.duplicate) { try await temp.store.createUser(user("ann")) }
        let reopened = try temp.reopen()
        #expect(try await reopened.user(named: "ann")?.displayName == "ANN")
        #expect(try await reopened.existingUsers(["ann", "bob"]) == ["ann"])
    }

    @Test func tokensResolveUntilDeleted() async throws {
        let temp = try TempStore()
        try await temp.store.createUser(user("ann"))
        try await temp.store.insertToken(hash: "h1", username: "ann", createdAt: 5)
        #expect(try await temp.store.username(forTokenHash: "h1") == "ann")
        try await temp.store.deleteToken(hash: "h1")
        #expect(try await temp.store.username(forTokenHash: "h1") == nil)
    }

    @Test func clientMessageIDMakesRetriesSafe() async throws {
        let temp = try TempStore()
        defer { withExtendedLifetime(temp) {} }
        let store = temp.store
        let first = try await store.insertMessages([direct("ann", "bob", "hi", at: 10, client: "c1")], pendingFor: [["bob"]])
        let again = try await store.insertMessages([direct("ann", "bob", "hi", at: 11, client: "c1")], pendingFor: [["bob"]])
        #expect(first[0].inserted)
        #expect(!again[0].inserted)
        #expect(again[0].message.seq == first[0].message.seq)
        #expect(try await store.takePending(username: "bob").count == 1)
    }

    @Test func pendingIsTakenOnceOldestFirst() async throws {
        let temp = try TempStore()
        defer { withExtendedLifetime(temp) {} }
        let store = temp.store
        for i in 1...3 {
            _ = try await store.insertMessages([direct("ann", "bob", "m\(i)", at: Millis(i))], pendingFor: [["bob"]])
        }
        let seq2 = try #require(try await store.history(.direct("ann", "bob"), for: "ann", query: HistoryQuery()).messages[1].seq)
        #expect(try await store.claimPending(username: "bob", seq: seq2))
        #expect(try await !store.claimPending(username: "bob", seq: seq2))
        #expect(try await store.takePending(username: "bob").map(\.content) == ["m1", "m3"])
        #expect(try await store.takePending(username: "bob").isEmpty)
    }

    @Test func historyRangesPagesAndClears() async throws {
        let temp = try TempStore()
        defer { withExtendedLifetime(temp) {} }
        let store = temp.store
        for i in 1...10 {
            _ = try await store.insertMessages([direct(i % 2 == 0 ? "ann" : "bob", i % 2 == 0 ? "bob" : "ann", "n\(i)", at: Millis(i * 100))],
                                               pendingFor: [[]])
        }
        let conversation = Conversation.direct("bob", "ann")
        let all = try await store.history(conversation, for: "ann", query: HistoryQuery(limit: 50))
        #expect(all.messages.map(\.content) == (1...10).map { "n\($0)" })
        #expect(!all.hasMore)
        let page = try await store.history(conversation, for: "ann", query: HistoryQuery(limit: 3))
        #expect(page.messages.map(\.content) == ["n8", "n9", "n10"])
        #expect(page.hasMore)
        let older = try await store.history(conversation, for: "ann", query: HistoryQuery(beforeSeq: page.messages[0].seq, limit: 3))
        #expect(older.messages.map(\.content) == ["n5", "n6", "n7"])
        let ranged = try await store.history(conversation, for: "ann", query: HistoryQuery(start: 300, end: 500))
        #expect(ranged.messages.map(\.content) == ["n3", "n4", "n5"])

        try await store.deleteMessage(seq: all.messages[0].seq, at: 2000)
        _ = try await store.editMessage(seq: all.messages[1].seq, content: "edited", entities: [], at: 2001)
        let firstTwo = try await store.history(conversation, for: "bob", query: HistoryQuery(end: 200))
        #expect(firstTwo.messages.map(\.content) == ["edited"])
        #expect(firstTwo.messages[0].editedAt == 2001)

        try await store.clearConversation(conversation, for: "ann")
        #expect(try await store.history(conversation, for: "ann", query: HistoryQuery()).messages.isEmpty)
        #expect(try await store.history(conversation, for: "bob", query: HistoryQuery()).messages.count == 9)
        _ = try await store.insertMessages([direct("bob", "ann", "after", at: 3000)], pendingFor: [[]])
        #expect(try await store.history(conversation, for: "ann", query: HistoryQuery()).messages.map(\.content) == ["after"])
    }

    @Test func fullTextSearchIsLimitedToReadableConversations() async throws {
        let temp = try TempStore()
        defer { withExtendedLifetime(temp) {} }
        let store = temp.store
        for name in ["ann", "bob", "cat"] { try await store.createUser(user(name)) }
        let group = try await store.createGroup(name: "team", owner: "ann", at: 1)
        _ = try await store.addMember(groupID: group.id, username: "bob", at: 2)
        _ = try await store.insertMessages([
            direct("ann", "bob", "meeting at five", at: 10),
            direct("cat", "ann", "secret meeting plans", at: 11),
            MessageDraft(sender: "bob", target: .group(id: group.id, name: "team"), content: "team meetings moved",
                         clientMessageID: nil, createdAt: 12),
        ], pendingFor: [[], [], []])
        #expect(Set(try await store.search(["meeting"], for: "bob", limit: 10).map(\.content))
            == ["meeting at five", "team meetings moved"])
        #expect(try await store.search(["meeting"], for: "cat", limit: 10).map(\.content) == ["secret meeting plans"])
        #expect(try await store.search(["meet"], for: "ann", limit: 10).count == 3)
        #expect(try await store.search(["\"", "OR", "meeting*"], for: "ann", limit: 10).isEmpty)
        _ = try await store.removeMember(groupID: group.id, username: "bob")
        #expect(try await store.search(["moved"], for: "bob", limit: 10).isEmpty)
        let deletedSeq = try #require(try await store.search(["five"], for: "ann", limit: 1).first?.seq)
        try await store.deleteMessage(seq: deletedSeq, at: 20)
        #expect(try await store.search(["five"], for: "ann", limit: 10).isEmpty)
    }

    @Test func groupsAndContacts() async throws {
        let temp = try TempStore()
        defer { withExtendedLifetime(temp) {} }
        let store = temp.store
        for name in ["ann", "bob"] { try await store.createUser(user(name)) }
        let group = try await store.createGroup(name: "g1", owner: "ann", at: 1)
        await #expect(throws: ChatStoreError.duplicate) { _ = try await store.createGroup(name: "g1", owner: "bob", at: 2) }
        #expect(try await store.addMember(groupID: group.id, username: "bob", at: 3))
        #expect(try await !store.addMember(groupID: group.id, username: "bob", at: 4))
        #expect(try await store.group(named: "g1")?.members == ["ann", "bob"])
        #expect(try await store.groups(of: "bob").map(\.name) == ["g1"])
        #expect(try await store.removeMember(groupID: group.id, username: "bob"))
        #expect(try await store.groups(of: "bob").isEmpty)

        #expect(try await store.addContact(owner: "ann", contact: "bob", at: 5))
        #expect(try await store.contacts(of: "ann").map(\.username) == ["bob"])
        #expect(try await store.watchers(of: "bob") == ["ann"])
        #expect(try await store.removeContact(owner: "ann", contact: "bob"))
        #expect(try await store.watchers(of: "bob").isEmpty)
    }

    @Test func historyFollowsMessageTimeForImportedMessages() async throws {
        let temp = try TempStore()
        defer { withExtendedLifetime(temp) {} }
        let store = temp.store
        _ = try await store.insertMessages([direct("ann", "bob", "new", at: 5000)], pendingFor: [[]])
        _ = try await store.insertMessages([direct("bob", "ann", "old", at: 1000, client: "import:m1")], pendingFor: [[]])
        let all = try await store.history(.direct("ann", "bob"), for: "ann", query: HistoryQuery())
        #expect(all.messages.map(\.content) == ["old", "new"])
        let before = try await store.history(.direct("ann", "bob"), for: "ann",
                                             query: HistoryQuery(beforeSeq: all.messages[1].seq))
        #expect(before.messages.map(\.content) == ["old"])
        #expect(try await store.messages(visibleTo: "bob", afterSeq: 0, limit: 10).count == 2)
        #expect(try await store.messages(visibleTo: "cat", afterSeq: 0, limit: 10).isEmpty)
    }

    @Test func concurrentInsertsAreGroupCommittedAndAllDurable() async throws {
        let temp = try TempStore()
        defer { withExtendedLifetime(temp) {} }
        let store = temp.store
        let seqs = try await withThrowingTaskGroup(of: Int64.self) { group in
            for i in 0..<300 {
                group.addTask {
                    try await store.insertMessages([direct("u\(i % 7)", "bob", "n\(i)", at: Millis(i), client: "c\(i)")],
                                                   pendingFor: [["bob"]])[0].message.seq
                }
            }
            return try await group.reduce(into: [Int64]()) { $0.append($1) }
        }
        #expect(Set(seqs).count == 300)
        #expect(try await temp.reopen().takePending(username: "bob").count == 300)
    }

    @Test func receiptsAreRecordedOnce() async throws {
        let temp = try TempStore()
        defer { withExtendedLifetime(temp) {} }
        let store = temp.store
        let seq = try await store.insertMessages([direct("ann", "bob", "x", at: 1)], pendingFor: [[]])[0].message.seq
        #expect(try await store.markRead(seq: seq, reader: "bob", at: 2))
        #expect(try await !store.markRead(seq: seq, reader: "bob", at: 3))
    }
}

@Suite struct CallHistoryStoreTests {
    @Test func callsAreStoredJoinedAndEnded() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("parley-calls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try SQLiteChatStore(path: dir.appendingPathComponent("db.sqlite").path)
        let call = try await store.insertCall(CallDraft(caller: "ann", callee: "bob", groupID: nil, groupName: nil,
                                                       media: ["audio", "video"], invited: ["bob"], startedAt: 1000,
                                                       recorded: false))
        #expect(call.id == "c\(call.seq)")
        #expect(call.parties.map(\.username) == ["ann", "bob"])
        #expect(call.status(for: "bob") == "ringing")
        try await store.callJoined(seq: call.seq, username: "bob", at: 1500)
        try await store.endCall(seq: call.seq, at: 2000, reason: "hangup")
        try await store.endCall(seq: call.seq, at: 3000, reason: "again")
        let stored = try #require(try await store.call(seq: call.seq))
        #expect(stored.answeredAt == 1500)
        #expect(stored.endedAt == 2000)
        #expect(stored.endReason == "hangup")
        #expect(stored.participants == ["ann", "bob"])
        #expect(stored.status(for: "ann") == "completed")
        let missed = try await store.insertCall(CallDraft(caller: "ann", callee: "bob", groupID: nil, groupName: nil,
                                                         media: ["audio"], invited: ["bob"], startedAt: 4000, recorded: false))
        #expect(try await store.endOpenCalls(at: 5000, reason: "server_restart") == 1)
        #expect(try await store.call(seq: missed.seq)?.status(for: "bob") == "missed")
        let history = try await store.calls(for: "bob", beforeSeq: nil, limit: 10)
        #expect(history.map(\.seq) == [missed.seq, call.seq])
        #expect(try await store.calls(for: "bob", beforeSeq: missed.seq, limit: 10).map(\.seq) == [call.seq])
        #expect(try await store.calls(for: "eve", beforeSeq: nil, limit: 10).isEmpty)
    }
}
