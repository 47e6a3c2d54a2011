/// Backup and migration: one JSON document with everything a user has
/// (profile, contacts, groups, messages, call history), and loading such a
/// document into an account on this or another server.
///
/// Importing is safe to repeat and cannot forge anything: it restores the
/// profile, contacts and group memberships of the importing account, and the
/// messages that account *sent* (each keyed by its original id, so a second
/// import adds nothing). Messages received come back when their senders
/// import their own documents.
public struct Backup: Sendable {
    public static let formatVersion = 1
    let service: ChatService

    public init(service: ChatService) { self.service = service }

    var store: any ChatStore { service.store }

    public func export(username: String) async throws -> JSONObject {
        guard let user = try await store.user(named: username) else { throw ChatError.notFound("unknown user") }
        var profile: JSONObject = ["username": .string(user.username), "display_name": .string(user.displayName),
                                   "created_at": .string(Timestamp.format(user.createdAt))]
        profile["avatar_attachment_id"] = JSONValue(user.avatarAttachmentID)
        if let settings = user.settingsJSON, let value = try? JSONValue.parse(Array(settings.utf8)) {
            profile["settings"] = value
        }
        let contacts = try await store.contacts(of: username).map { JSONValue.string($0.username) }
        let groups = try await store.groups(of: username).map { g -> JSONValue in
            .object(["group_id": .string(g.wireID), "group_name": .string(g.name), "owner": .string(g.owner),
                     "members": .array(g.members.map { .string($0) })])
        }
        var messages: [JSONValue] = []
        var after: Int64 = 0
        while true {
            let page = try await store.messages(visibleTo: username, afterSeq: after, limit: 1000)
            for m in page { messages.append(.object(Self.document(m))) }
            guard let last = page.last, page.count == 1000 else { break }
            after = last.seq
        }
        var calls: [JSONValue] = []
        var before: Int64?
        while true {
            let page = try await store.calls(for: username, beforeSeq: before, limit: 500)
            for c in page { calls.append(.object(c.document(for: username))) }
            guard let last = page.last, page.count == 500 else { break }
            before = last.seq
        }
        return ["format": "parley-backup", "version": .number(Double(Self.formatVersion)),
                "exported_at": .string(Timestamp.format(service.now())), "user": .object(profile),
                "contacts": .array(contacts), "groups": .array(groups), "messages": .array(messages),
                "call_history": .array(calls)]
    }

    static func document(_ m: StoredMessage) -> JSONObject {
        var o: JSONObject = ["message_id": .string(m.id), "sender": .string(m.sender)]
        switch m.target {
        case let .direct(recipient): o["recipient"] = .string(recipient)
        case let .group(_, name): o["groupname"] = .string(name)
        }
        o["content"] = .string(m.content)
        o["timestamp"] = .string(Timestamp.format(m.createdAt))
        if let edited = m.editedAt { o["edited_at"] = .string(Timestamp.format(edited)) }
        if let loc = m.extras.location { o["location"] = .object(["lat": .number(loc.lat), "lon": .number(loc.lon)]) }
        return o
    }

    public struct ImportSummary: Sendable, Equatable {
        public var contacts = 0
        public var groups = 0
        public var messages = 0
        public var skipped = 0
    }

    public func importDocument(_ document: JSONObject, into username: String) async throws -> ImportSummary {
        guard document["format"]?.stringValue == "parley-backup" else {
            throw ChatError.badRequest("not a parley-backup document")
        }
        guard let version = document["version"]?.doubleValue, Int(version) == Self.formatVersion else {
            throw ChatError.badRequest("unsupported backup version")
        }
        var summary = ImportSummary()
        let caller = Caller(username: username, connectionID: 0)
        if let profile = document["user"]?.objectValue {
            _ = try await service.updateProfile(by: caller, displayName: profile["display_name"]?.stringValue,
                                                avatarAttachmentID: nil, settings: profile["settings"]?.objectValue)
        }
        for contact in document["contacts"]?.arrayValue ?? [] {
            guard let name = contact.stringValue, name != username else { continue }
            if (try? await service.addContact(by: caller, username: name)) != nil { summary.contacts += 1 }
        }
        for group in document["groups"]?.arrayValue ?? [] {
            guard let raw = group.objectValue?["group_name"]?.stringValue, let name = Names.normalizedGroupName(raw) else {
                continue
            }
            if let existing = try await store.group(named: name) {
                if try await store.addMember(groupID: existing.id, username: username, at: service.now()) { summary.groups += 1 }
                service.forgetGroup(id: existing.id)
            } else if case .success = try await service.createGroup(by: caller, name: name) {
                summary.groups += 1
            }
        }
        var drafts: [MessageDraft] = []
        for item in document["messages"]?.arrayValue ?? [] {
            guard let m = item.objectValue, m["sender"]?.stringValue == username, let id = m["message_id"]?.stringValue,
                  let content = m["content"]?.stringValue, !content.isEmpty, content.count <= Limits.maxContentCharacters,
                  let time = m["timestamp"]?.stringValue.flatMap(Timestamp.parse)
            else { summary.skipped += 1; continue }
            let target: MessageTarget
            if let recipient = m["recipient"]?.stringValue.flatMap(Names.normalizedUsername),
               try await store.user(named: recipient) != nil
            {
                target = .direct(recipient: recipient)
            } else if let name = m["groupname"]?.stringValue.flatMap(Names.normalizedGroupName),
                      let group = try await store.group(named: name), group.members.contains(username)
            {
                target = .group(id: group.id, name: group.name)
            } else {
                summary.skipped += 1
                continue
            }
            var extras = MessageExtras(entities: URLEntity.extract(from: content))
            if let loc = m["location"]?.objectValue, let lat = loc["lat"]?.doubleValue, let lon = loc["lon"]?.doubleValue,
               (-90...90).contains(lat), (-180...180).contains(lon)
            {
                extras.location = Location(lat: lat, lon: lon)
            }
            drafts.append(MessageDraft(sender: username, target: target, content: content,
                                       clientMessageID: "import:" + String(id.prefix(100)), createdAt: time, extras: extras))
        }
        for start in stride(from: 0, to: drafts.count, by: 500) {
            let chunk = Array(drafts[start..<min(start + 500, drafts.count)])
            let results = try await store.insertMessages(chunk, pendingFor: Array(repeating: [], count: chunk.count))
            summary.messages += results.filter(\.inserted).count
        }
        return summary
    }
}
