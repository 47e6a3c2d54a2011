import Chat
import Foundation
import GRDB
import Synchronization

/// The embedded default store: one SQLite database in WAL mode, through GRDB.
/// Writes are serialized by GRDB's writer; reads run concurrently on the
/// pool's readers.
public final class SQLiteChatStore: ChatStore {
    public enum Durability: String, Sendable {
        /// Survives a crash of the process (kill -9) but may lose the last
        /// commits on power loss (WAL with synchronous=NORMAL).
        case normal
        /// Every commit is fsynced before it returns (synchronous=FULL).
        case full
    }

    let pool: DatabasePool
    private let inserts = Mutex<(queue: [InsertRequest], draining: Bool)>(([], false))

    /// Opens (creating if needed) the database at `path` and runs every
    /// pending schema migration.
    public init(path: String, durability: Durability = .normal) throws {
        var config = Configuration()
        config.busyMode = .timeout(10)
        let sync = durability == .full ? "FULL" : "NORMAL"
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = \(sync)")
            try db.execute(sql: "PRAGMA foreign_keys = ON")
        }
        pool = try DatabasePool(path: path, configuration: config)
        try Self.migrator.migrate(pool)
    }

    /// The schema versions applied so far, oldest first.
    public func appliedMigrations() throws -> [String] {
        try pool.read { db in try Self.migrator.appliedMigrations(db) }
    }

    /// A cheap query proving the database answers (for `/health`).
    public func ping() async throws {
        _ = try await pool.read { db in try Int.fetchOne(db, sql: "SELECT 1") }
    }

    // MARK: Users and sessions

    public func createUser(_ user: UserRecord) async throws {
        do {
            try await pool.write { db in
                try db.execute(
                    sql: """
                        INSERT INTO users(username, display_name, password_hash, avatar_attachment_id, settings_json, created_at, last_seen)
                        VALUES (?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [user.username, user.displayName, user.passwordHash, user.avatarAttachmentID, user.settingsJSON,
                                user.createdAt, user.lastSeen])
            }
        } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
            throw ChatStoreError.duplicate
        }
    }

    public func user(named username: String) async throws -> UserRecord? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM users WHERE username = ?", arguments: [username]).map(Self.user(from:))
        }
    }

    public func existingUsers(_ usernames: [String]) async throws -> Set<String> {
        guard !usernames.isEmpty else { return [] }
        return try await pool.read { db in
            let marks = Array(repeating: "?", count: usernames.count).joined(separator: ",")
            return Set(try String.fetchAll(db, sql: "SELECT username FROM users WHERE username IN (\(marks))",
                                           arguments: StatementArguments(usernames)))
        }
    }

    public func updateProfile(username: String, displayName: String?, avatarAttachmentID: String?, settingsJSON: String?)
        async throws -> UserRecord
    {
        try await pool.write { db in
            if let displayName {
                try db.execute(sql: "UPDATE users SET display_name = ? WHERE username = ?", arguments: [displayName, username])
            }
            if let avatarAttachmentID {
                try db.execute(sql: "UPDATE users SET avatar_attachment_id = ? WHERE username = ?",
                               arguments: [avatarAttachmentID.isEmpty ? nil : avatarAttachmentID, username])
            }
            if let settingsJSON {
                try db.execute(sql: "UPDATE users SET settings_json = ? WHERE username = ?", arguments: [settingsJSON, username])
            }
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM users WHERE username = ?", arguments: [username]) else {
                throw ChatStoreError.notFound
            }
            return Self.user(from: row)
        }
    }

    public func setLastSeen(username: String, at: Millis) async throws {
        try await pool.write { db in
            try db.execute(sql: "UPDATE users SET last_seen = ? WHERE username = ?", arguments: [at, username])
        }
    }

    public func insertToken(hash: String, username: String, createdAt: Millis) async throws {
        try await pool.write { db in
            try db.execute(sql: "INSERT INTO tokens(token_hash, username, created_at) VALUES (?, ?, ?)",
                           arguments: [hash, username, createdAt])
        }
    }

    public func username(forTokenHash hash: String) async throws -> String? {
        try await pool.read { db in
            try String.fetchOne(db, sql: "SELECT username FROM tokens WHERE token_hash = ?", arguments: [hash])
        }
    }

    public func deleteToken(hash: String) async throws {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM tokens WHERE token_hash = ?", arguments: [hash])
        }
    }

    // MARK: Messages

    public typealias InsertResult = [(message: StoredMessage, inserted: Bool)]

    /// Group commit: concurrent inserts are written in one transaction, so
    /// message throughput is not bounded by one commit per message. Each
    /// caller still returns only after its own messages are committed.
    public func insertMessages(_ drafts: [MessageDraft], pendingFor: [[String]]) async throws -> InsertResult {
        try await withCheckedThrowingContinuation { continuation in
            let startDrainer = inserts.withLock { state -> Bool in
                state.queue.append(InsertRequest(drafts: drafts, pendingFor: pendingFor, continuation: continuation))
                if state.draining { return false }
                state.draining = true
                return true
            }
            if startDrainer { Task { await self.drainInserts() } }
        }
    }

    struct InsertRequest: Sendable {
        var drafts: [MessageDraft]
        var pendingFor: [[String]]
        var continuation: CheckedContinuation<InsertResult, any Error>
    }

    /// Writes what is queued, then what queued meanwhile, until nothing is.
    private func drainInserts() async {
        while true {
            let batch = inserts.withLock { state -> [InsertRequest] in
                let batch = state.queue
                state.queue.removeAll(keepingCapacity: true)
                if batch.isEmpty { state.draining = false }
                return batch
            }
            if batch.isEmpty { return }
            do {
                let results = try await pool.write { db in
                    try batch.map { try Self.insert(db, $0.drafts, pendingFor: $0.pendingFor) }
                }
                for (request, result) in zip(batch, results) { request.continuation.resume(returning: result) }
            } catch {
                // One bad request must not fail the others: retry each alone.
                for request in batch {
                    do {
                        let result = try await pool.write { db in
                            try Self.insert(db, request.drafts, pendingFor: request.pendingFor)
                        }
                        request.continuation.resume(returning: result)
                    } catch {
                        request.continuation.resume(throwing: error)
                    }
                }
            }
        }
    }

    static func insert(_ db: Database, _ drafts: [MessageDraft], pendingFor: [[String]]) throws -> InsertResult {
        var results: InsertResult = []
        results.reserveCapacity(drafts.count)
        for (index, draft) in drafts.enumerated() {
            let conversation = draft.conversation.key
            if let clientID = draft.clientMessageID,
               let row = try Row.fetchOne(
                   db, sql: "SELECT * FROM messages WHERE sender = ? AND conversation = ? AND client_message_id = ?",
                   arguments: [draft.sender, conversation, clientID])
            {
                results.append((Self.message(from: row), false))
                continue
            }
            var recipient: String?
            var groupID: Int64?
            var groupName: String?
            switch draft.target {
            case let .direct(r): recipient = r
            case let .group(id, name): groupID = id; groupName = name
            }
            try db.execute(
                sql: """
                    INSERT INTO messages(conversation, sender, recipient, group_id, group_name, content, client_message_id, created_at, extras_json)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [conversation, draft.sender, recipient, groupID, groupName, draft.content, draft.clientMessageID,
                            draft.createdAt, draft.extras.storageJSON])
            let seq = db.lastInsertedRowID
            if index < pendingFor.count {
                for user in pendingFor[index] {
                    try db.execute(sql: "INSERT OR IGNORE INTO pending(username, seq) VALUES (?, ?)", arguments: [user, seq])
                }
            }
            results.append((StoredMessage(seq: seq, sender: draft.sender, target: draft.target, content: draft.content,
                                          clientMessageID: draft.clientMessageID, createdAt: draft.createdAt,
                                          extras: draft.extras), true))
        }
        return results
    }

    public func message(seq: Int64) async throws -> StoredMessage? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM messages WHERE seq = ?", arguments: [seq]).map(Self.message(from:))
        }
    }

    public func editMessage(seq: Int64, content: String, entities: [URLEntity], at: Millis) async throws -> StoredMessage {
        try await pool.write { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM messages WHERE seq = ? AND deleted_at IS NULL",
                                             arguments: [seq])
            else { throw ChatStoreError.notFound }
            var message = Self.message(from: row)
            message.content = content
            message.editedAt = at
            message.extras.entities = entities
            try db.execute(sql: "UPDATE messages SET content = ?, edited_at = ?, extras_json = ? WHERE seq = ?",
                           arguments: [content, at, message.extras.storageJSON, seq])
            return message
        }
    }

    public func deleteMessage(seq: Int64, at: Millis) async throws {
        try await pool.write { db in
            // The text goes (and with it the FTS entry); the row stays so ids
            // are never reused and receipts keep their target.
            try db.execute(sql: "UPDATE messages SET content = '', extras_json = NULL, deleted_at = ? WHERE seq = ? AND deleted_at IS NULL",
                           arguments: [at, seq])
            if db.changesCount == 0 { throw ChatStoreError.notFound }
        }
    }

    public func markRead(seq: Int64, reader: String, at: Millis) async throws -> Bool {
        try await changesRow("INSERT OR IGNORE INTO receipts(seq, reader, read_at) VALUES (?, ?, ?)", [seq, reader, at])
    }

    public func addPending(username: String, seqs: [Int64]) async throws {
        guard !seqs.isEmpty else { return }
        try await pool.write { db in
            for seq in seqs {
                try db.execute(sql: "INSERT OR IGNORE INTO pending(username, seq) VALUES (?, ?)", arguments: [username, seq])
            }
        }
    }

    public func claimPending(username: String, seq: Int64) async throws -> Bool {
        try await changesRow("DELETE FROM pending WHERE username = ? AND seq = ?", [username, seq])
    }

    public func takePending(username: String) async throws -> [StoredMessage] {
        try await pool.write { db in
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT m.* FROM pending p JOIN messages m ON m.seq = p.seq
                    WHERE p.username = ? AND m.deleted_at IS NULL ORDER BY p.seq
                    """,
                arguments: [username])
            try db.execute(sql: "DELETE FROM pending WHERE username = ?", arguments: [username])
            return rows.map(Self.message(from:))
        }
    }

    public func clearConversation(_ conversation: Conversation, for username: String) async throws {
        try await pool.write { db in
            let last = try Int64.fetchOne(db, sql: "SELECT max(seq) FROM messages WHERE conversation = ?",
                                          arguments: [conversation.key]) ?? 0
            try db.execute(
                sql: """
                    INSERT INTO conversation_clears(username, conversation, cleared_seq) VALUES (?, ?, ?)
                    ON CONFLICT(username, conversation) DO UPDATE SET cleared_seq = excluded.cleared_seq
                    """,
                arguments: [username, conversation.key, last])
        }
    }

    public func history(_ conversation: Conversation, for username: String, query: HistoryQuery) async throws
        -> (messages: [StoredMessage], hasMore: Bool)
    {
        try await pool.read { db in
            var sql = """
                SELECT * FROM messages WHERE conversation = ? AND deleted_at IS NULL
                AND seq > coalesce((SELECT cleared_seq FROM conversation_clears WHERE username = ? AND conversation = ?), 0)
                """
            var arguments: StatementArguments = [conversation.key, username, conversation.key]
            if let start = query.start { sql += " AND created_at >= ?"; arguments += [start] }
            if let end = query.end { sql += " AND created_at <= ?"; arguments += [end] }
            if let before = query.beforeSeq {
                // Time order (imported messages keep their original times),
                // with the sequence number breaking ties.
                sql += " AND (created_at, seq) < ((SELECT created_at FROM messages WHERE seq = ?), ?)"
                arguments += [before, before]
            }
            sql += " ORDER BY created_at DESC, seq DESC LIMIT ?"
            arguments += [query.limit + 1]
            var rows = try Row.fetchAll(db, sql: sql, arguments: arguments)
            let hasMore = rows.count > query.limit
            if hasMore { rows.removeLast() }
            return (rows.reversed().map(Self.message(from:)), hasMore)
        }
    }

    public func search(_ words: [String], for username: String, limit: Int) async throws -> [StoredMessage] {
        guard let match = Self.ftsQuery(words) else { return [] }
        return try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT m.* FROM messages_fts f JOIN messages m ON m.seq = f.rowid
                    WHERE messages_fts MATCH ? AND m.deleted_at IS NULL
                    AND ((m.group_id IS NULL AND (m.sender = ? OR m.recipient = ?))
                         OR m.group_id IN (SELECT group_id FROM group_members WHERE username = ?))
                    AND m.seq > coalesce((SELECT cleared_seq FROM conversation_clears c
                                          WHERE c.username = ? AND c.conversation = m.conversation), 0)
                    ORDER BY bm25(messages_fts), m.seq DESC LIMIT ?
                    """,
                arguments: [match, username, username, username, username, limit]
            ).map(Self.message(from:))
        }
    }

    public func messages(visibleTo username: String, afterSeq: Int64, limit: Int) async throws -> [StoredMessage] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT m.* FROM messages m
                    WHERE m.seq > ? AND m.deleted_at IS NULL
                    AND ((m.group_id IS NULL AND (m.sender = ? OR m.recipient = ?))
                         OR m.group_id IN (SELECT group_id FROM group_members WHERE username = ?))
                    AND m.seq > coalesce((SELECT cleared_seq FROM conversation_clears c
                                          WHERE c.username = ? AND c.conversation = m.conversation), 0)
                    ORDER BY m.seq LIMIT ?
                    """,
                arguments: [afterSeq, username, username, username, username, limit]
            ).map(Self.message(from:))
        }
    }

    /// Each word becomes a quoted FTS5 string (so user text can never be FTS
    /// syntax); the last one matches as a prefix.
    static func ftsQuery(_ words: [String]) -> String? {
        let cleaned = words.map { $0.replacingOccurrences(of: "\"", with: "\"\"") }.filter { !$0.isEmpty }
        guard !cleaned.isEmpty else { return nil }
        return cleaned.enumerated().map { i, w in i == cleaned.count - 1 ? "\"\(w)\"*" : "\"\(w)\"" }.joined(separator: " ")
    }

    // MARK: Groups

    public func createGroup(name: String, owner: String, at: Millis) async throws -> GroupRecord {
        do {
            return try await pool.write { db in
                try db.execute(sql: "INSERT INTO chat_groups(name, owner, created_at) VALUES (?, ?, ?)", arguments: [name, owner, at])
                let id = db.lastInsertedRowID
                try db.execute(sql: "INSERT INTO group_members(group_id, username, joined_at) VALUES (?, ?, ?)",
                               arguments: [id, owner, at])
                return GroupRecord(id: id, name: name, owner: owner, createdAt: at, members: [owner])
            }
        } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
            throw ChatStoreError.duplicate
        }
    }

    public func group(id: Int64) async throws -> GroupRecord? {
        try await pool.read { db in try Self.group(db, where: "id = ?", id) }
    }

    public func group(named name: String) async throws -> GroupRecord? {
        try await pool.read { db in try Self.group(db, where: "name = ?", name) }
    }

    public func addMember(groupID: Int64, username: String, at: Millis) async throws -> Bool {
        try await changesRow("INSERT OR IGNORE INTO group_members(group_id, username, joined_at) VALUES (?, ?, ?)",
                             [groupID, username, at])
    }

    public func removeMember(groupID: Int64, username: String) async throws -> Bool {
        try await changesRow("DELETE FROM group_members WHERE group_id = ? AND username = ?", [groupID, username])
    }

    public func groups(of username: String) async throws -> [GroupRecord] {
        try await pool.read { db in
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT g.* FROM chat_groups g JOIN group_members gm ON gm.group_id = g.id
                    WHERE gm.username = ? ORDER BY g.id
                    """,
                arguments: [username])
            return try rows.map { try Self.group(db, $0) }
        }
    }

    static func group(_ db: Database, where clause: String, _ value: any DatabaseValueConvertible) throws -> GroupRecord? {
        try Row.fetchOne(db, sql: "SELECT * FROM chat_groups WHERE \(clause)", arguments: [value]).map { try group(db, $0) }
    }

    static func group(_ db: Database, _ row: Row) throws -> GroupRecord {
        let id: Int64 = row["id"]
        return GroupRecord(id: id, name: row["name"], owner: row["owner"], createdAt: row["created_at"],
                           members: try members(db, id))
    }

    static func members(_ db: Database, _ groupID: Int64) throws -> [String] {
        try String.fetchAll(db, sql: "SELECT username FROM group_members WHERE group_id = ? ORDER BY joined_at, username",
                            arguments: [groupID])
    }

    // MARK: Contacts

    public func addContact(owner: String, contact: String, at: Millis) async throws -> Bool {
        try await changesRow("INSERT OR IGNORE INTO contacts(owner, contact, added_at) VALUES (?, ?, ?)", [owner, contact, at])
    }

    public func removeContact(owner: String, contact: String) async throws -> Bool {
        try await changesRow("DELETE FROM contacts WHERE owner = ? AND contact = ?", [owner, contact])
    }

    public func contacts(of owner: String) async throws -> [UserRecord] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: "SELECT u.* FROM contacts c JOIN users u ON u.username = c.contact WHERE c.owner = ? ORDER BY u.username",
                arguments: [owner]
            ).map(Self.user(from:))
        }
    }

    public func watchers(of username: String) async throws -> [String] {
        try await pool.read { db in
            try String.fetchAll(db, sql: "SELECT owner FROM contacts WHERE contact = ?", arguments: [username])
        }
    }

    // MARK: Call history

    public func insertCall(_ draft: CallDraft) async throws -> CallRecord {
        try await pool.write { db in
            try db.execute(sql: """
                INSERT INTO calls(caller, callee, group_id, group_name, media, started_at, recorded)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """, arguments: [draft.caller, draft.callee, draft.groupID, draft.groupName,
                                 draft.media.joined(separator: ","), draft.startedAt, draft.recorded])
            let seq = db.lastInsertedRowID
            try db.execute(sql: "INSERT INTO call_parties(call_seq, username, is_caller, joined_at) VALUES (?, ?, 1, ?)",
                           arguments: [seq, draft.caller, draft.startedAt])
            for user in draft.invited where user != draft.caller {
                try db.execute(sql: "INSERT OR IGNORE INTO call_parties(call_seq, username, is_caller) VALUES (?, ?, 0)",
                               arguments: [seq, user])
            }
            return try Self.call(db, seq)!
        }
    }

    public func callJoined(seq: Int64, username: String, at: Millis) async throws {
        try await pool.write { db in
            // A group member added since the call started becomes a party as they join.
            try db.execute(sql: "INSERT OR IGNORE INTO call_parties(call_seq, username, is_caller) VALUES (?, ?, 0)",
                           arguments: [seq, username])
            try db.execute(sql: "UPDATE call_parties SET joined_at = ? WHERE call_seq = ? AND username = ? AND joined_at IS NULL",
                           arguments: [at, seq, username])
            try db.execute(sql: """
                UPDATE calls SET answered_at = ? WHERE seq = ? AND answered_at IS NULL AND caller != ?
                """, arguments: [at, seq, username])
        }
    }

    public func callDeclined(seq: Int64, username: String) async throws {
        _ = try await changesRow("UPDATE call_parties SET declined = 1 WHERE call_seq = ? AND username = ?", [seq, username])
    }

    public func setCallRecorded(seq: Int64, recorded: Bool) async throws {
        _ = try await changesRow("UPDATE calls SET recorded = ? WHERE seq = ?", [recorded, seq])
    }

    public func endCall(seq: Int64, at: Millis, reason: String) async throws {
        _ = try await changesRow("UPDATE calls SET ended_at = ?, end_reason = ? WHERE seq = ? AND ended_at IS NULL",
                                 [at, reason, seq])
    }

    public func call(seq: Int64) async throws -> CallRecord? {
        try await pool.read { db in try Self.call(db, seq) }
    }

    public func calls(for username: String, beforeSeq: Int64?, limit: Int) async throws -> [CallRecord] {
        try await pool.read { db in
            let seqs = try Int64.fetchAll(
                db, sql: "SELECT call_seq FROM call_parties WHERE username = ? AND call_seq < ? ORDER BY call_seq DESC LIMIT ?",
                arguments: [username, beforeSeq ?? Int64.max, limit])
            return try seqs.compactMap { try Self.call(db, $0) }
        }
    }

    public func endOpenCalls(at: Millis, reason: String) async throws -> Int {
        try await pool.write { db in
            try db.execute(sql: "UPDATE calls SET ended_at = ?, end_reason = ? WHERE ended_at IS NULL", arguments: [at, reason])
            return db.changesCount
        }
    }

    static func call(_ db: Database, _ seq: Int64) throws -> CallRecord? {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM calls WHERE seq = ?", arguments: [seq]) else { return nil }
        let parties = try Row.fetchAll(
            db, sql: "SELECT * FROM call_parties WHERE call_seq = ? ORDER BY is_caller DESC, username", arguments: [seq]
        ).map { CallParty(username: $0["username"], isCaller: $0["is_caller"], joinedAt: $0["joined_at"], declined: $0["declined"]) }
        let media: String = row["media"]
        return CallRecord(seq: seq, caller: row["caller"], callee: row["callee"], groupID: row["group_id"],
                          groupName: row["group_name"], media: media.split(separator: ",").map(String.init),
                          startedAt: row["started_at"], answeredAt: row["answered_at"], endedAt: row["ended_at"],
                          endReason: row["end_reason"], recorded: row["recorded"], parties: parties)
    }

    // MARK: Rows

    /// Runs one statement in its own write transaction; true when it changed
    /// a row.
    private func changesRow(_ sql: String, _ arguments: StatementArguments) async throws -> Bool {
        try await pool.write { db in
            try db.execute(sql: sql, arguments: arguments)
            return db.changesCount > 0
        }
    }

    static func user(from row: Row) -> UserRecord {
        UserRecord(username: row["username"], displayName: row["display_name"], passwordHash: row["password_hash"],
                   avatarAttachmentID: row["avatar_attachment_id"], settingsJSON: row["settings_json"],
                   createdAt: row["created_at"], lastSeen: row["last_seen"])
    }

    static func message(from row: Row) -> StoredMessage {
        let target: MessageTarget
        if let groupID: Int64 = row["group_id"] {
            target = .group(id: groupID, name: row["group_name"] ?? "")
        } else {
            target = .direct(recipient: row["recipient"] ?? "")
        }
        return StoredMessage(seq: row["seq"], sender: row["sender"], target: target, content: row["content"],
                             clientMessageID: row["client_message_id"], createdAt: row["created_at"],
                             editedAt: row["edited_at"], deletedAt: row["deleted_at"],
                             extras: MessageExtras(storageJSON: row["extras_json"]))
    }
}
