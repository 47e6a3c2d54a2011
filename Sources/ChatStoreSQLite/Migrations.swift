import GRDB

extension SQLiteChatStore {
    /// Versioned schema. A migration, once released, is never edited: changes
    /// come as a new migration appended here.
    static let migrator: DatabaseMigrator = {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-chat") { db in
            try db.execute(sql: """
                CREATE TABLE users(
                    username TEXT PRIMARY KEY NOT NULL,
                    display_name TEXT NOT NULL,
                    password_hash TEXT NOT NULL,
                    avatar_attachment_id TEXT,
                    settings_json TEXT,
                    created_at INTEGER NOT NULL,
                    last_seen INTEGER
                );
                CREATE TABLE tokens(
                    token_hash TEXT PRIMARY KEY NOT NULL,
                    username TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE,
                    created_at INTEGER NOT NULL
                );
                CREATE INDEX tokens_by_user ON tokens(username);
                CREATE TABLE chat_groups(
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    name TEXT NOT NULL UNIQUE,
                    owner TEXT NOT NULL,
                    created_at INTEGER NOT NULL
                );
                CREATE TABLE group_members(
                    group_id INTEGER NOT NULL REFERENCES chat_groups(id) ON DELETE CASCADE,
                    username TEXT NOT NULL,
                    joined_at INTEGER NOT NULL,
                    PRIMARY KEY(group_id, username)
                ) WITHOUT ROWID;
                CREATE INDEX group_members_by_user ON group_members(username, group_id);
                CREATE TABLE messages(
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    conversation TEXT NOT NULL,
                    sender TEXT NOT NULL,
                    recipient TEXT,
                    group_id INTEGER,
                    group_name TEXT,
                    content TEXT NOT NULL,
                    client_message_id TEXT,
                    created_at INTEGER NOT NULL,
                    edited_at INTEGER,
                    deleted_at INTEGER,
                    extras_json TEXT
                );
                CREATE INDEX messages_by_conversation ON messages(conversation, seq);
                CREATE UNIQUE INDEX messages_by_client_id ON messages(sender, conversation, client_message_id)
                    WHERE client_message_id IS NOT NULL;
                CREATE TABLE pending(
                    username TEXT NOT NULL,
                    seq INTEGER NOT NULL,
                    PRIMARY KEY(username, seq)
                ) WITHOUT ROWID;
                CREATE TABLE receipts(
                    seq INTEGER NOT NULL,
                    reader TEXT NOT NULL,
                    read_at INTEGER NOT NULL,
                    PRIMARY KEY(seq, reader)
                ) WITHOUT ROWID;
                CREATE TABLE conversation_clears(
                    username TEXT NOT NULL,
                    conversation TEXT NOT NULL,
                    cleared_seq INTEGER NOT NULL,
                    PRIMARY KEY(username, conversation)
                ) WITHOUT ROWID;
                CREATE TABLE contacts(
                    owner TEXT NOT NULL,
                    contact TEXT NOT NULL,
                    added_at INTEGER NOT NULL,
                    PRIMARY KEY(owner, contact)
                ) WITHOUT ROWID;
                CREATE INDEX contacts_by_contact ON contacts(contact, owner);
                """)
        }
        migrator.registerMigration("v2-fts") { db in
            // External-content FTS5 index over message text, kept in step by
            // triggers (deleting a message empties its content).
            try db.execute(sql: """
                CREATE VIRTUAL TABLE messages_fts USING fts5(
                    content, content='messages', content_rowid='seq', tokenize='unicode61 remove_diacritics 2'
                );
                CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
                    INSERT INTO messages_fts(rowid, content) VALUES (new.seq, new.content);
                END;
                CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
                    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.seq, old.content);
                END;
                CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN
                    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.seq, old.content);
                    INSERT INTO messages_fts(rowid, content) VALUES (new.seq, new.content);
                END;
                INSERT INTO messages_fts(messages_fts) VALUES ('rebuild');
                """)
        }
        migrator.registerMigration("v3-history-by-time") { db in
            // History is ordered by message time, so imported messages fall
            // into place among those sent here.
            try db.execute(sql: "CREATE INDEX messages_by_conversation_time ON messages(conversation, created_at, seq)")
        }
        migrator.registerMigration("v4-calls") { db in
            // Call history (PROTOCOL.md `call_history`): one row per call,
            // one per party (the caller and everyone invited).
            try db.execute(sql: """
                CREATE TABLE calls(
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    caller TEXT NOT NULL,
                    callee TEXT,
                    group_id INTEGER,
                    group_name TEXT,
                    media TEXT NOT NULL,
                    started_at INTEGER NOT NULL,
                    answered_at INTEGER,
                    ended_at INTEGER,
                    end_reason TEXT,
                    recorded INTEGER NOT NULL DEFAULT 0
                );
                CREATE TABLE call_parties(
                    call_seq INTEGER NOT NULL REFERENCES calls(seq) ON DELETE CASCADE,
                    username TEXT NOT NULL,
                    is_caller INTEGER NOT NULL,
                    joined_at INTEGER,
                    declined INTEGER NOT NULL DEFAULT 0,
                    PRIMARY KEY(call_seq, username)
                ) WITHOUT ROWID;
                CREATE INDEX call_parties_by_user ON call_parties(username, call_seq);
                CREATE INDEX calls_open ON calls(ended_at) WHERE ended_at IS NULL;
                """)
        }
        return migrator
    }()
}
