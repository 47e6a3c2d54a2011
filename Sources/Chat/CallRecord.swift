/// One call as call history keeps it (PROTOCOL.md `call_history`): who
/// called whom, who was invited and who joined, when it was answered and
/// how it ended.
public struct CallRecord: Sendable, Equatable {
    public var seq: Int64
    public var caller: String
    /// The callee of a 1:1 call.
    public var callee: String?
    /// The group of a group call.
    public var groupID: Int64?
    public var groupName: String?
    public var media: [String]
    public var startedAt: Millis
    /// When the first person other than the caller joined.
    public var answeredAt: Millis?
    public var endedAt: Millis?
    /// `hangup`, `rejected`, `timeout`, `busy`, `disconnected`, …
    public var endReason: String?
    public var recorded: Bool
    /// The caller first, then everyone invited.
    public var parties: [CallParty]

    public init(seq: Int64, caller: String, callee: String?, groupID: Int64?, groupName: String?, media: [String],
                startedAt: Millis, answeredAt: Millis? = nil, endedAt: Millis? = nil, endReason: String? = nil,
                recorded: Bool = false, parties: [CallParty]) {
        self.seq = seq
        self.caller = caller
        self.callee = callee
        self.groupID = groupID
        self.groupName = groupName
        self.media = media
        self.startedAt = startedAt
        self.answeredAt = answeredAt
        self.endedAt = endedAt
        self.endReason = endReason
        self.recorded = recorded
        self.parties = parties
    }

    /// The id on the wire: `c` and the sequence number.
    public var id: String { "c\(seq)" }

    public static func parse(_ id: String) -> Int64? {
        guard id.first == "c" else { return nil }
        return Int64(id.dropFirst())
    }

    /// Everyone who joined the media, in joining order.
    public var participants: [String] {
        parties.filter { $0.joinedAt != nil }.sorted { ($0.joinedAt ?? 0) < ($1.joinedAt ?? 0) }.map(\.username)
    }

    /// What the call was for `user` (docs/PROTOCOL.md, Calls): `ringing`
    /// and `ongoing` while it lasts; then for the caller `completed`,
    /// `cancelled`, `no_answer`, `rejected` or `busy`, and for an invitee
    /// `completed`, `missed` or `rejected`.
    public func status(for user: String) -> String {
        guard endedAt != nil else { return answeredAt == nil ? "ringing" : "ongoing" }
        let party = parties.first { $0.username == user }
        if user == caller {
            if answeredAt != nil { return "completed" }
            switch endReason {
            case "busy": return "busy"
            case "rejected": return "rejected"
            case "timeout": return "no_answer"
            default: return "cancelled"
            }
        }
        if party?.joinedAt != nil { return "completed" }
        if party?.declined == true { return "rejected" }
        return "missed"
    }
}

extension CallRecord {
    /// The call as `user` sees it: a `call_history` entry (PROTOCOL.md)
    /// and the backup's form of it.
    public func document(for user: String) -> JSONObject {
        var o: JSONObject = ["call_id": .string(id), "caller": .string(caller),
                             "participants": .array(participants.map { .string($0) }),
                             "started_at": .string(Timestamp.format(startedAt)),
                             "ended_at": endedAt.map { .string(Timestamp.format($0)) } ?? .null,
                             "status": .string(status(for: user))]
        if let callee { o["callee"] = .string(callee) }
        if let groupName { o["groupname"] = .string(groupName) }
        o["media"] = .array(media.map { .string($0) })
        o["answered_at"] = answeredAt.map { .string(Timestamp.format($0)) } ?? .null
        if let endReason { o["reason"] = .string(endReason) }
        o["invited"] = .array(parties.filter { !$0.isCaller }.map { .string($0.username) })
        if recorded { o["recorded"] = .bool(true) }
        return o
    }
}

public struct CallParty: Sendable, Equatable {
    public var username: String
    public var isCaller: Bool
    /// First time this user joined the media; nil if never.
    public var joinedAt: Millis?
    /// The user rejected the call.
    public var declined: Bool

    public init(username: String, isCaller: Bool, joinedAt: Millis? = nil, declined: Bool = false) {
        self.username = username
        self.isCaller = isCaller
        self.joinedAt = joinedAt
        self.declined = declined
    }
}

/// What `ChatStore.insertCall` needs.
public struct CallDraft: Sendable, Equatable {
    public var caller: String
    public var callee: String?
    public var groupID: Int64?
    public var groupName: String?
    public var media: [String]
    /// The callee, or the group's members other than the caller.
    public var invited: [String]
    public var startedAt: Millis
    public var recorded: Bool

    public init(caller: String, callee: String?, groupID: Int64?, groupName: String?, media: [String], invited: [String],
                startedAt: Millis, recorded: Bool) {
        self.caller = caller
        self.callee = callee
        self.groupID = groupID
        self.groupName = groupName
        self.media = media
        self.invited = invited
        self.startedAt = startedAt
        self.recorded = recorded
    }
}
