/// Milliseconds since the Unix epoch, UTC. Every time in the domain and the
/// stores is one of these; only the edges format them.
public typealias Millis = Int64

public struct UserRecord: Sendable, Equatable {
    public var username: String
    public var displayName: String
    public var passwordHash: String
    public var avatarAttachmentID: String?
    /// The `settings` object of `update_profile`, kept as the JSON text given.
    public var settingsJSON: String?
    public var createdAt: Millis
    public var lastSeen: Millis?

    public init(username: String, displayName: String, passwordHash: String, avatarAttachmentID: String? = nil,
                settingsJSON: String? = nil, createdAt: Millis, lastSeen: Millis? = nil) {
        self.username = username
        self.displayName = displayName
        self.passwordHash = passwordHash
        self.avatarAttachmentID = avatarAttachmentID
        self.settingsJSON = settingsJSON
        self.createdAt = createdAt
        self.lastSeen = lastSeen
    }
}

/// Where a message lives: a direct conversation between two users (order does
/// not matter) or a group.
public enum Conversation: Sendable, Hashable {
    case direct(String, String)
    case group(id: Int64)

    /// The stable key stores index on. Usernames cannot contain `|`.
    public var key: String {
        switch self {
        case let .direct(a, b): return a <= b ? "d:\(a)|\(b)" : "d:\(b)|\(a)"
        case let .group(id): return "g:\(id)"
        }
    }
}

public enum MessageTarget: Sendable, Equatable {
    case direct(recipient: String)
    case group(id: Int64, name: String)
}

/// What a message carries besides its text, stored as one JSON document.
public struct MessageExtras: Sendable, Equatable {
    public var location: Location?
    public var attachments: [JSONValue]
    public var entities: [URLEntity]

    public init(location: Location? = nil, attachments: [JSONValue] = [], entities: [URLEntity] = []) {
        self.location = location
        self.attachments = attachments
        self.entities = entities
    }

    public var isEmpty: Bool { location == nil && attachments.isEmpty && entities.isEmpty }
}

public struct Location: Sendable, Equatable {
    public var lat: Double
    public var lon: Double
    public init(lat: Double, lon: Double) { self.lat = lat; self.lon = lon }
}

public struct MessageDraft: Sendable, Equatable {
    public var sender: String
    public var target: MessageTarget
    public var content: String
    public var clientMessageID: String?
    public var createdAt: Millis
    public var extras: MessageExtras

    public init(sender: String, target: MessageTarget, content: String, clientMessageID: String?, createdAt: Millis,
                extras: MessageExtras = MessageExtras()) {
        self.sender = sender
        self.target = target
        self.content = content
        self.clientMessageID = clientMessageID
        self.createdAt = createdAt
        self.extras = extras
    }

    public var conversation: Conversation {
        switch target {
        case let .direct(recipient): return .direct(sender, recipient)
        case let .group(id, _): return .group(id: id)
        }
    }
}

public struct StoredMessage: Sendable, Equatable {
    /// The store's sequence number; `id` is its wire form.
    public var seq: Int64
    public var sender: String
    public var target: MessageTarget
    public var content: String
    public var clientMessageID: String?
    public var createdAt: Millis
    public var editedAt: Millis?
    public var deletedAt: Millis?
    public var extras: MessageExtras

    public init(seq: Int64, sender: String, target: MessageTarget, content: String, clientMessageID: String?,
                createdAt: Millis, editedAt: Millis? = nil, deletedAt: Millis? = nil, extras: MessageExtras = MessageExtras()) {
        self.seq = seq
        self.sender = sender
        self.target = target
        self.content = content
        self.clientMessageID = clientMessageID
        self.createdAt = createdAt
        self.editedAt = editedAt
        self.deletedAt = deletedAt
        self.extras = extras
    }

    public var id: String { MessageID.format(seq) }

    public var conversation: Conversation {
        switch target {
        case let .direct(recipient): return .direct(sender, recipient)
        case let .group(id, _): return .group(id: id)
        }
    }
}

/// Wire ids are opaque strings; inside they are store sequence numbers.
public enum MessageID {
    public static func format(_ seq: Int64) -> String { "m\(seq)" }
    public static func parse(_ id: String) -> Int64? {
        guard id.hasPrefix("m"), let n = Int64(id.dropFirst()), n > 0 else { return nil }
        return n
    }
}

public enum GroupID {
    public static func format(_ seq: Int64) -> String { "g\(seq)" }
    public static func parse(_ id: String) -> Int64? {
        guard id.hasPrefix("g"), let n = Int64(id.dropFirst()), n > 0 else { return nil }
        return n
    }
}

public struct GroupRecord: Sendable, Equatable {
    public var id: Int64
    public var name: String
    public var owner: String
    public var createdAt: Millis
    public var members: [String]

    public init(id: Int64, name: String, owner: String, createdAt: Millis, members: [String]) {
        self.id = id
        self.name = name
        self.owner = owner
        self.createdAt = createdAt
        self.members = members
    }

    public var wireID: String { GroupID.format(id) }
}

/// Criteria of `fetch_history`; every bound is optional.
public struct HistoryQuery: Sendable, Equatable {
    public var start: Millis?
    public var end: Millis?
    public var beforeSeq: Int64?
    public var limit: Int

    public init(start: Millis? = nil, end: Millis? = nil, beforeSeq: Int64? = nil, limit: Int = 50) {
        self.start = start
        self.end = end
        self.beforeSeq = beforeSeq
        self.limit = limit
    }
}

extension MessageExtras {
    /// The stored form: one JSON object, or nil when there is nothing extra.
    public var storageJSON: String? {
        if isEmpty { return nil }
        var object = JSONObject()
        if let location { object["location"] = .object(["lat": .number(location.lat), "lon": .number(location.lon)]) }
        if !attachments.isEmpty { object["attachments"] = .array(attachments) }
        if !entities.isEmpty {
            object["entities"] = .array(entities.map {
                .object(["type": "url", "url": .string($0.url), "offset": .number(Double($0.offset)),
                         "length": .number(Double($0.length))])
            })
        }
        return object.serialized
    }

    public init(storageJSON: String?) {
        self.init()
        guard let storageJSON, let object = try? JSONValue.parse(storageJSON).objectValue else { return }
        if let loc = object["location"]?.objectValue, let lat = loc["lat"]?.doubleValue, let lon = loc["lon"]?.doubleValue {
            location = Location(lat: lat, lon: lon)
        }
        attachments = object["attachments"]?.arrayValue ?? []
        entities = (object["entities"]?.arrayValue ?? []).compactMap { value in
            guard let e = value.objectValue, let url = e["url"]?.stringValue, let offset = e["offset"]?.doubleValue,
                  let length = e["length"]?.doubleValue else { return nil }
            return URLEntity(url: url, offset: Int(offset), length: Int(length))
        }
    }
}
