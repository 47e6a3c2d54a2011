/// Durable storage of the chat domain. The SQLite store is the embedded
/// default; a PostgreSQL store implements the same protocol. Every method is
/// one transaction: when it returns, what it wrote is durable.
public protocol ChatStore: Sendable {
    // MARK: Users and sessions

    /// Throws `ChatStoreError.duplicate` when the username exists.
    func createUser(_ user: UserRecord) async throws
    func user(named username: String) async throws -> UserRecord?
    /// The subset of `usernames` that exist.
    func existingUsers(_ usernames: [String]) async throws -> Set<String>
    func updateProfile(username: String, displayName: String?, avatarAttachmentID: String?, settingsJSON: String?) async throws
        -> UserRecord
    func setLastSeen(username: String, at: Millis) async throws

    func insertToken(hash: String, username: String, createdAt: Millis) async throws
    func username(forTokenHash hash: String) async throws -> String?
    func deleteToken(hash: String) async throws

    // MARK: Messages

    /// Stores the drafts in one transaction, each with a pending entry for the
    /// users in `pendingFor` at the same index. A draft whose
    /// `(sender, conversation, clientMessageID)` was stored before is not stored
    /// again: the earlier message comes back with `inserted == false`.
    func insertMessages(_ drafts: [MessageDraft], pendingFor: [[String]]) async throws -> [(message: StoredMessage, inserted: Bool)]
    func message(seq: Int64) async throws -> StoredMessage?
    func editMessage(seq: Int64, content: String, entities: [URLEntity], at: Millis) async throws -> StoredMessage
    func deleteMessage(seq: Int64, at: Millis) async throws
    /// Records that `reader` read the message; false when it was already recorded.
    func markRead(seq: Int64, reader: String, at: Millis) async throws -> Bool

    func addPending(username: String, seqs: [Int64]) async throws
    /// Removes one pending entry; true when this call removed it.
    func claimPending(username: String, seq: Int64) async throws -> Bool
    /// Removes and returns every pending message of the user, oldest first.
    func takePending(username: String) async throws -> [StoredMessage]

    /// Hides the conversation's messages up to now from `username` only.
    func clearConversation(_ conversation: Conversation, for username: String) async throws
    /// Messages of one conversation visible to `username`, oldest first, and
    /// whether older ones within the bounds remain.
    func history(_ conversation: Conversation, for username: String, query: HistoryQuery) async throws
        -> (messages: [StoredMessage], hasMore: Bool)
    /// Full-text search over the conversations `username` can read; every
    /// word must match (the last as a prefix), best match first.
    func search(_ words: [String], for username: String, limit: Int) async throws -> [StoredMessage]

    /// Every message `username` can read (direct ones they sent or received,
    /// and those of groups they belong to), oldest first, after `afterSeq`.
    func messages(visibleTo username: String, afterSeq: Int64, limit: Int) async throws -> [StoredMessage]

    // MARK: Groups

    /// Throws `ChatStoreError.duplicate` when the name is taken.
    func createGroup(name: String, owner: String, at: Millis) async throws -> GroupRecord
    func group(id: Int64) async throws -> GroupRecord?
    func group(named name: String) async throws -> GroupRecord?
    /// False when already a member.
    func addMember(groupID: Int64, username: String, at: Millis) async throws -> Bool
    /// False when not a member.
    func removeMember(groupID: Int64, username: String) async throws -> Bool
    func groups(of username: String) async throws -> [GroupRecord]

    // MARK: Contacts

    /// False when already a contact.
    func addContact(owner: String, contact: String, at: Millis) async throws -> Bool
    func removeContact(owner: String, contact: String) async throws -> Bool
    func contacts(of owner: String) async throws -> [UserRecord]
    /// Users who have `username` among their contacts.
    func watchers(of username: String) async throws -> [String]

    // MARK: Call history

    /// Stores a new call with its caller (joined at `startedAt`) and invitees.
    func insertCall(_ draft: CallDraft) async throws -> CallRecord
    /// `username` joined the call's media (the first time counts; a user
    /// not yet a party, a group member added since the start, becomes one);
    /// the first joiner other than the caller answers it.
    func callJoined(seq: Int64, username: String, at: Millis) async throws
    func callDeclined(seq: Int64, username: String) async throws
    func setCallRecorded(seq: Int64, recorded: Bool) async throws
    /// Ends a call that has not ended yet.
    func endCall(seq: Int64, at: Millis, reason: String) async throws
    func call(seq: Int64) async throws -> CallRecord?
    /// Calls `username` was a party to, newest first, older than `beforeSeq`.
    func calls(for username: String, beforeSeq: Int64?, limit: Int) async throws -> [CallRecord]
    /// Ends every call still open (a restart dropped them); returns how many.
    func endOpenCalls(at: Millis, reason: String) async throws -> Int
}
