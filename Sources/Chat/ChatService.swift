import Synchronization

/// The chat domain's rules: who may do what, what gets stored, and who hears
/// about it. Edges (WebSocket, line protocol, HTTP) parse requests into calls
/// here and render the results; the store persists; `Delivery` pushes to live
/// connections. The service reads no clock of its own: `now` is injected.
public final class ChatService: Sendable {
    public let store: any ChatStore
    public let delivery: any Delivery
    let hasher: PasswordHasher
    let runner: any BlockingWorkRunner
    let now: @Sendable () -> Millis
    /// Users known to exist (accounts are never removed), and groups with
    /// their members, so the message path does not read them per message.
    /// Every membership change goes through this service, which keeps the
    /// group cache in step (one server per database; see docs/ARCHITECTURE.md).
    private let knownUsers = Mutex<Set<String>>([])
    private let groupCache = Mutex<(groups: [String: GroupRecord], generation: UInt64)>(([:], 0))

    public init(store: any ChatStore, delivery: any Delivery, hasher: PasswordHasher = PasswordHasher(),
                runner: any BlockingWorkRunner = InPlaceRunner(), now: @escaping @Sendable () -> Millis)
    {
        self.store = store
        self.delivery = delivery
        self.hasher = hasher
        self.runner = runner
        self.now = now
    }

    // MARK: Accounts

    public enum RegistrationOutcome: Sendable, Equatable {
        case success
        case failure(String)
    }

    public func register(username raw: String, password: String, displayName: String?) async throws -> RegistrationOutcome {
        guard let username = Names.normalizedUsername(raw) else { return .failure("invalid username") }
        guard password.count >= Names.minPasswordLength else { return .failure("password too short") }
        guard password.utf8.count <= Names.maxPasswordLength else { return .failure("password too long") }
        let display = displayName.map { $0.trimmingWhitespace() }.flatMap { $0.isEmpty ? nil : $0 } ?? username
        guard display.count <= Names.maxDisplayNameLength else { return .failure("display name too long") }
        if try await store.user(named: username) != nil { return .failure("username taken") }
        let hasher = self.hasher
        let hash = await runner.run { hasher.hash(password) }
        do {
            try await store.createUser(UserRecord(username: username, displayName: display, passwordHash: hash, createdAt: now()))
        } catch ChatStoreError.duplicate {
            return .failure("username taken")
        }
        return .success
    }

    public struct LoginGrant: Sendable {
        public var user: UserRecord
        public var token: String
    }

    /// A new session for a username and password, or nil for any mismatch.
    public func login(username raw: String, password: String) async throws -> LoginGrant? {
        guard let username = Names.normalizedUsername(raw), let user = try await store.user(named: username) else {
            return nil
        }
        let hasher = self.hasher
        let stored = user.passwordHash
        guard await runner.run({ hasher.verify(password, against: stored) }) else { return nil }
        let token = SessionToken.generate()
        try await store.insertToken(hash: SessionToken.storageHash(token), username: username, createdAt: now())
        return LoginGrant(user: user, token: token)
    }

    /// The user a token belongs to, or nil when it is unknown or revoked.
    public func resume(token: String) async throws -> UserRecord? {
        guard !token.isEmpty, token.utf8.count <= 256,
              let username = try await store.username(forTokenHash: SessionToken.storageHash(token))
        else { return nil }
        return try await store.user(named: username)
    }

    public func logout(token: String) async throws {
        try await store.deleteToken(hash: SessionToken.storageHash(token))
    }

    /// Every message that waited for the user, oldest first; each is handed
    /// out once.
    public func takePending(for username: String) async throws -> [StoredMessage] {
        try await store.takePending(username: username)
    }

    /// Called by the hub when a user's first connection opens or last one
    /// closes: records last-seen and tells the users who watch them.
    public func presenceChanged(username: String, online: Bool) async throws {
        var lastSeen: Millis? = now()
        if online {
            lastSeen = try await store.user(named: username)?.lastSeen
        } else {
            try await store.setLastSeen(username: username, at: lastSeen!)
        }
        for watcher in try await store.watchers(of: username) {
            delivery.deliver(.presence(username: username, online: online, lastSeen: lastSeen), to: watcher, excluding: nil)
        }
    }

    // MARK: Messages

    public func sendDirect(from caller: Caller, to rawRecipient: String, content: String, clientMessageID: String?,
                           extras: MessageExtras = MessageExtras()) async throws -> StoredMessage
    {
        try Self.validate(content: content)
        guard let recipient = Names.normalizedUsername(rawRecipient), try await userExists(recipient) else {
            throw ChatError.notFound("unknown user '\(rawRecipient)'")
        }
        var extras = extras
        extras.entities = URLEntity.extract(from: content)
        let draft = MessageDraft(sender: caller.username, target: .direct(recipient: recipient), content: content,
                                 clientMessageID: clientMessageID, createdAt: now(), extras: extras)
        let offline = delivery.isOnline(recipient) ? [] : [recipient]
        let (message, inserted) = try await store.insertMessages([draft], pendingFor: [offline])[0]
        if inserted { try await fanOut(message, to: [recipient], offlineAtStore: offline, caller: caller) }
        return message
    }

    public func sendGroup(from caller: Caller, groupName rawName: String, content: String, clientMessageID: String?,
                          extras: MessageExtras = MessageExtras()) async throws -> StoredMessage
    {
        try Self.validate(content: content)
        let group = try await memberGroup(named: rawName, caller: caller.username)
        var extras = extras
        extras.entities = URLEntity.extract(from: content)
        let draft = MessageDraft(sender: caller.username, target: .group(id: group.id, name: group.name), content: content,
                                 clientMessageID: clientMessageID, createdAt: now(), extras: extras)
        let recipients = group.members.filter { $0 != caller.username }
        let offline = recipients.filter { !delivery.isOnline($0) }
        let (message, inserted) = try await store.insertMessages([draft], pendingFor: [offline])[0]
        if inserted { try await fanOut(message, to: recipients, offlineAtStore: offline, caller: caller) }
        return message
    }

    /// One ordinary direct message per recipient, stored together.
    public func broadcast(from caller: Caller, to rawRecipients: [String], content: String, clientMessageID: String?)
        async throws -> [(recipient: String, message: StoredMessage)]
    {
        try Self.validate(content: content)
        guard !rawRecipients.isEmpty else { throw ChatError.badRequest("'recipients' is empty") }
        var recipients: [String] = []
        for raw in rawRecipients {
            guard let name = Names.normalizedUsername(raw) else { throw ChatError.notFound("unknown user '\(raw)'") }
            if !recipients.contains(name) { recipients.append(name) }
        }
        guard recipients.count <= Limits.maxBroadcastRecipients else {
            throw ChatError.badRequest("at most \(Limits.maxBroadcastRecipients) recipients")
        }
        let existing = try await store.existingUsers(recipients)
        if let missing = recipients.first(where: { !existing.contains($0) }) {
            throw ChatError.notFound("unknown user '\(missing)'")
        }
        let at = now()
        let entities = URLEntity.extract(from: content)
        let drafts = recipients.map {
            MessageDraft(sender: caller.username, target: .direct(recipient: $0), content: content,
                         clientMessageID: clientMessageID, createdAt: at, extras: MessageExtras(entities: entities))
        }
        let offline = recipients.map { delivery.isOnline($0) ? [] : [$0] }
        let stored = try await store.insertMessages(drafts, pendingFor: offline)
        for (i, result) in stored.enumerated() where result.inserted {
            try await fanOut(result.message, to: [recipients[i]], offlineAtStore: offline[i], caller: caller)
        }
        return stored.enumerated().map { (recipients[$0.offset], $0.element.message) }
    }

    /// Live delivery after a message is durably stored. Recipients offline when
    /// it was stored already have a pending entry; those whose last connection
    /// closed since get one now. Any of them who connected meanwhile is
    /// served by claiming the entry, so each message reaches each recipient
    /// exactly once (live or in `pending_messages`).
    func fanOut(_ message: StoredMessage, to recipients: [String], offlineAtStore: [String], caller: Caller) async throws {
        var pendingUsers = offlineAtStore
        for user in recipients where !offlineAtStore.contains(user) {
            let excluded = user == caller.username ? caller.connectionID : nil
            if delivery.deliver(.message(message), to: user, excluding: excluded) == 0, user != caller.username {
                try await store.addPending(username: user, seqs: [message.seq])
                pendingUsers.append(user)
            }
        }
        if !recipients.contains(caller.username) {
            // The sender's other devices stay in sync.
            delivery.deliver(.message(message), to: caller.username, excluding: caller.connectionID)
        }
        for user in pendingUsers where delivery.isOnline(user) {
            if try await store.claimPending(username: user, seq: message.seq) {
                delivery.deliver(.message(message), to: user, excluding: nil)
            }
        }
    }

    public func edit(by caller: Caller, messageID: String, content: String) async throws -> StoredMessage {
        try Self.validate(content: content)
        let original = try await ownMessage(messageID, caller: caller.username)
        let edited: StoredMessage
        do {
            edited = try await store.editMessage(seq: original.seq, content: content,
                                                 entities: URLEntity.extract(from: content), at: now())
        } catch ChatStoreError.notFound {
            throw ChatError.notFound("unknown message '\(messageID)'")
        }
        try await notifyParties(of: edited, .edited(edited), caller: caller)
        return edited
    }

    public func delete(by caller: Caller, messageID: String) async throws -> StoredMessage {
        var message = try await ownMessage(messageID, caller: caller.username)
        let at = now()
        do {
            try await store.deleteMessage(seq: message.seq, at: at)
        } catch ChatStoreError.notFound {
            throw ChatError.notFound("unknown message '\(messageID)'")
        }
        message.deletedAt = at
        message.content = ""
        try await notifyParties(of: message, .deleted(message), caller: caller)
        return message
    }

    public func markRead(by caller: Caller, messageID: String) async throws {
        guard let seq = MessageID.parse(messageID), let message = try await store.message(seq: seq), message.deletedAt == nil
        else { throw ChatError.notFound("unknown message '\(messageID)'") }
        switch message.target {
        case let .direct(recipient):
            guard recipient == caller.username else {
                throw message.sender == caller.username
                    ? ChatError.forbidden("only a recipient can mark a message read")
                    : ChatError.notFound("unknown message '\(messageID)'")
            }
        case let .group(id, _):
            guard let group = try await store.group(id: id), group.members.contains(caller.username) else {
                throw ChatError.notFound("unknown message '\(messageID)'")
            }
            guard message.sender != caller.username else {
                throw ChatError.forbidden("only a recipient can mark a message read")
            }
        }
        let at = now()
        if try await store.markRead(seq: seq, reader: caller.username, at: at) {
            delivery.deliver(.readReceipt(messageID: messageID, reader: caller.username, at: at), to: message.sender,
                             excluding: nil)
        }
    }

    public enum ChatRef: Sendable, Equatable {
        case direct(String)
        case group(String)
    }

    public func deleteChat(by caller: Caller, _ ref: ChatRef) async throws -> ChatRef {
        let (conversation, canonical) = try await readableConversation(ref, caller: caller.username)
        try await store.clearConversation(conversation, for: caller.username)
        return canonical
    }

    public func typing(by caller: Caller, _ ref: ChatRef, started: Bool) async throws {
        switch ref {
        case let .direct(raw):
            guard let recipient = Names.normalizedUsername(raw), try await userExists(recipient) else {
                throw ChatError.notFound("unknown user '\(raw)'")
            }
            delivery.deliver(.typing(sender: caller.username, target: .direct(recipient: recipient), started: started),
                             to: recipient, excluding: nil)
        case let .group(raw):
            let group = try await memberGroup(named: raw, caller: caller.username)
            for member in group.members where member != caller.username {
                delivery.deliver(.typing(sender: caller.username, target: .group(name: group.name), started: started),
                                 to: member, excluding: nil)
            }
        }
    }

    // MARK: History and search

    public func history(for caller: Caller, _ ref: ChatRef, query: HistoryQuery) async throws
        -> (ref: ChatRef, messages: [StoredMessage], hasMore: Bool)
    {
        let (conversation, canonical) = try await readableConversation(ref, caller: caller.username)
        var query = query
        query.limit = min(max(query.limit, 1), Limits.maxHistoryLimit)
        let (messages, hasMore) = try await store.history(conversation, for: caller.username, query: query)
        return (canonical, messages, hasMore)
    }

    public func search(for caller: Caller, query: String, limit: Int) async throws -> [StoredMessage] {
        let words = query.split(whereSeparator: { !$0.isLetter && !$0.isNumber }).map(String.init)
        guard !words.isEmpty else { throw ChatError.badRequest("'query' has no words to search for") }
        guard words.count <= 16 else { throw ChatError.badRequest("'query' has more than 16 words") }
        return try await store.search(words, for: caller.username, limit: min(max(limit, 1), Limits.maxSearchLimit))
    }

    // MARK: Groups

    public enum GroupOutcome: Sendable, Equatable {
        case success(GroupRecord)
        case failure(String)
    }

    public func createGroup(by caller: Caller, name raw: String) async throws -> GroupOutcome {
        guard let name = Names.normalizedGroupName(raw) else { return .failure("invalid group name") }
        do {
            return .success(try await store.createGroup(name: name, owner: caller.username, at: now()))
        } catch ChatStoreError.duplicate {
            return .failure("group name taken")
        }
    }

    public func joinGroup(by caller: Caller, groupID: String) async throws -> GroupOutcome {
        guard let id = GroupID.parse(groupID), let group = try await store.group(id: id) else {
            return .failure("group not found")
        }
        defer { forgetGroup(id: id) }
        guard try await store.addMember(groupID: id, username: caller.username, at: now()) else {
            return .failure("already a member")
        }
        return .success(group)
    }

    public func leaveGroup(by caller: Caller, groupID: String) async throws -> GroupOutcome {
        guard let id = GroupID.parse(groupID), let group = try await store.group(id: id) else {
            return .failure("group not found")
        }
        defer { forgetGroup(id: id) }
        guard try await store.removeMember(groupID: id, username: caller.username) else {
            return .failure("not a member")
        }
        return .success(group)
    }

    public func invite(by caller: Caller, groupID: String, username raw: String) async throws -> (GroupRecord, String) {
        guard let id = GroupID.parse(groupID), let group = try await store.group(id: id) else {
            throw ChatError.notFound("unknown group '\(groupID)'")
        }
        guard group.members.contains(caller.username) else { throw ChatError.forbidden("only members can invite") }
        guard let username = Names.normalizedUsername(raw), try await userExists(username) else {
            throw ChatError.notFound("unknown user '\(raw)'")
        }
        defer { forgetGroup(id: id) }
        guard try await store.addMember(groupID: id, username: username, at: now()) else {
            throw ChatError.conflict("'\(username)' is already a member")
        }
        delivery.deliver(.groupInvite(groupID: group.wireID, groupName: group.name, inviter: caller.username), to: username,
                         excluding: nil)
        return (group, username)
    }

    public func groups(of caller: Caller) async throws -> [GroupRecord] {
        try await store.groups(of: caller.username)
    }

    // MARK: Contacts and profile

    public struct Contact: Sendable, Equatable {
        public var user: UserRecord
        public var online: Bool
    }

    public func contacts(of caller: Caller) async throws -> [Contact] {
        try await store.contacts(of: caller.username).map { Contact(user: $0, online: delivery.isOnline($0.username)) }
    }

    public func addContact(by caller: Caller, username raw: String) async throws -> Contact {
        guard let username = Names.normalizedUsername(raw), let user = try await store.user(named: username) else {
            throw ChatError.notFound("unknown user '\(raw)'")
        }
        guard username != caller.username else { throw ChatError.badRequest("cannot add yourself as a contact") }
        _ = try await store.addContact(owner: caller.username, contact: username, at: now())
        return Contact(user: user, online: delivery.isOnline(username))
    }

    public func removeContact(by caller: Caller, username raw: String) async throws -> String {
        guard let username = Names.normalizedUsername(raw),
              try await store.removeContact(owner: caller.username, contact: username)
        else { throw ChatError.notFound("'\(raw)' is not a contact") }
        return username
    }

    public func updateProfile(by caller: Caller, displayName: String?, avatarAttachmentID: String?, settings: JSONObject?)
        async throws -> UserRecord
    {
        var display: String?
        if let displayName {
            let trimmed = displayName.trimmingWhitespace()
            guard !trimmed.isEmpty, trimmed.count <= Names.maxDisplayNameLength else {
                throw ChatError.badRequest("'display_name' must be 1–\(Names.maxDisplayNameLength) characters")
            }
            display = trimmed
        }
        if let avatarAttachmentID, !avatarAttachmentID.isEmpty {
            throw ChatError.notFound("unknown attachment '\(avatarAttachmentID)'")
        }
        var settingsJSON: String?
        if let settings {
            let text = settings.serialized
            guard text.utf8.count <= Limits.maxSettingsBytes else {
                throw ChatError(.tooLarge, "'settings' is over \(Limits.maxSettingsBytes) bytes")
            }
            settingsJSON = text
        }
        return try await store.updateProfile(username: caller.username, displayName: display,
                                             avatarAttachmentID: avatarAttachmentID, settingsJSON: settingsJSON)
    }

    // MARK: Helpers

    static func validate(content: String) throws {
        guard !content.isEmpty else { throw ChatError.badRequest("'content' is empty") }
        guard content.count <= Limits.maxContentCharacters else {
            throw ChatError(.tooLarge, "'content' is over \(Limits.maxContentCharacters) characters")
        }
    }

    func userExists(_ username: String) async throws -> Bool {
        if knownUsers.withLock({ $0.contains(username) }) { return true }
        guard try await store.user(named: username) != nil else { return false }
        knownUsers.withLock { _ = $0.insert(username) }
        return true
    }

    func cachedGroup(named name: String) async throws -> GroupRecord? {
        let (cached, generation) = groupCache.withLock { ($0.groups[name], $0.generation) }
        if let cached { return cached }
        guard let group = try await store.group(named: name) else { return nil }
        // A membership change while this read ran may have made it stale:
        // cache it only if none happened.
        groupCache.withLock { if $0.generation == generation { $0.groups[name] = group } }
        return group
    }

    /// Drops a group from the cache after its membership changed.
    public func forgetGroup(id: Int64) {
        groupCache.withLock { cache in
            cache.generation &+= 1
            if let name = cache.groups.first(where: { $0.value.id == id })?.key { cache.groups[name] = nil }
        }
    }

    func memberGroup(named raw: String, caller: String) async throws -> GroupRecord {
        guard let name = Names.normalizedGroupName(raw), let group = try await cachedGroup(named: name) else {
            throw ChatError.notFound("unknown group '\(raw)'")
        }
        guard group.members.contains(caller) else { throw ChatError.forbidden("not a member of '\(group.name)'") }
        return group
    }

    func ownMessage(_ messageID: String, caller: String) async throws -> StoredMessage {
        guard let seq = MessageID.parse(messageID), let message = try await store.message(seq: seq), message.deletedAt == nil
        else { throw ChatError.notFound("unknown message '\(messageID)'") }
        guard message.sender == caller else {
            // Only people who can see a message learn that it exists.
            if try await canRead(message, caller) { throw ChatError.forbidden("only the sender may change a message") }
            throw ChatError.notFound("unknown message '\(messageID)'")
        }
        return message
    }

    func canRead(_ message: StoredMessage, _ user: String) async throws -> Bool {
        switch message.target {
        case let .direct(recipient): return message.sender == user || recipient == user
        case let .group(id, _): return try await store.group(id: id)?.members.contains(user) ?? false
        }
    }

    func parties(of message: StoredMessage) async throws -> [String] {
        switch message.target {
        case let .direct(recipient): return message.sender == recipient ? [recipient] : [message.sender, recipient]
        case let .group(id, _): return try await store.group(id: id)?.members ?? [message.sender]
        }
    }

    func notifyParties(of message: StoredMessage, _ event: ChatEvent, caller: Caller) async throws {
        for user in try await parties(of: message) {
            delivery.deliver(event, to: user, excluding: user == caller.username ? caller.connectionID : nil)
        }
    }

    func readableConversation(_ ref: ChatRef, caller: String) async throws -> (Conversation, ChatRef) {
        switch ref {
        case let .direct(raw):
            guard let other = Names.normalizedUsername(raw), try await userExists(other) else {
                throw ChatError.notFound("unknown user '\(raw)'")
            }
            return (.direct(caller, other), .direct(other))
        case let .group(raw):
            let group = try await memberGroup(named: raw, caller: caller)
            return (.group(id: group.id), .group(group.name))
        }
    }
}

extension String {
    func trimmingWhitespace() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
              let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })
        else { return "" }
        return String(scalars[first...last])
    }
}
