import Chat

/// How domain values look on the WebSocket (PROTOCOL.md).
enum WireFormat {
    static func message(_ m: StoredMessage) -> JSONObject {
        var o = JSONObject()
        switch m.target {
        case let .direct(recipient):
            o["type"] = "receive_message"
            o["message_id"] = .string(m.id)
            o["sender"] = .string(m.sender)
            o["recipient"] = .string(recipient)
        case let .group(_, name):
            o["type"] = "receive_group_message"
            o["message_id"] = .string(m.id)
            o["groupname"] = .string(name)
            o["sender"] = .string(m.sender)
        }
        o["content"] = .string(m.content)
        o["timestamp"] = .string(Timestamp.format(m.createdAt))
        if let c = m.clientMessageID { o["client_message_id"] = .string(c) }
        if let edited = m.editedAt { o["edited_at"] = .string(Timestamp.format(edited)) }
        if let loc = m.extras.location { o["location"] = .object(["lat": .number(loc.lat), "lon": .number(loc.lon)]) }
        if !m.extras.attachments.isEmpty { o["attachments"] = .array(m.extras.attachments) }
        if !m.extras.entities.isEmpty { o["entities"] = entities(m.extras.entities) }
        return o
    }

    static func entities(_ list: [URLEntity]) -> JSONValue {
        .array(list.map {
            .object(["type": "url", "url": .string($0.url), "offset": .number(Double($0.offset)),
                     "length": .number(Double($0.length))])
        })
    }

    static func user(_ u: UserRecord) -> JSONObject {
        var o: JSONObject = ["username": .string(u.username), "display_name": .string(u.displayName)]
        o["avatar_link"] = avatarLink(u)
        if let settings = u.settingsJSON, let value = try? JSONValue.parse(settings) {
            o["settings"] = value
        } else {
            o["settings"] = .object(JSONObject())
        }
        return o
    }

    static func avatarLink(_ u: UserRecord) -> JSONValue {
        u.avatarAttachmentID.map { .string("/api/attachments/\($0)") } ?? .null
    }

    static func iceServer(_ s: ICEServer) -> JSONObject {
        var o: JSONObject = ["urls": .array(s.urls.map { .string($0) })]
        if let username = s.username { o["username"] = .string(username) }
        if let credential = s.credential { o["credential"] = .string(credential) }
        return o
    }

    static func contact(_ c: ChatService.Contact) -> JSONObject {
        ["username": .string(c.user.username), "display_name": .string(c.user.displayName),
         "avatar_link": avatarLink(c.user), "online": .bool(c.online),
         "last_seen": c.user.lastSeen.map { .string(Timestamp.format($0)) } ?? .null]
    }

    static func group(_ g: GroupRecord) -> JSONObject {
        ["group_id": .string(g.wireID), "group_name": .string(g.name), "members": .array(g.members.map { .string($0) })]
    }

    static func event(_ event: ChatEvent) -> JSONObject {
        switch event {
        case let .message(m):
            return message(m)
        case let .edited(m):
            var o: JSONObject = ["type": "message_edited", "message_id": .string(m.id), "content": .string(m.content),
                                 "edited_at": .string(Timestamp.format(m.editedAt ?? m.createdAt))]
            addConversation(m, to: &o)
            if !m.extras.entities.isEmpty { o["entities"] = entities(m.extras.entities) }
            return o
        case let .deleted(m):
            var o: JSONObject = ["type": "message_deleted", "message_id": .string(m.id)]
            addConversation(m, to: &o)
            return o
        case let .readReceipt(id, reader, at):
            return ["type": "read_receipt", "message_id": .string(id), "reader": .string(reader),
                    "timestamp": .string(Timestamp.format(at))]
        case let .typing(sender, target, started):
            var o: JSONObject = ["type": "typing", "sender": .string(sender)]
            switch target {
            case let .direct(recipient): o["recipient"] = .string(recipient)
            case let .group(name): o["groupname"] = .string(name)
            }
            o["state"] = started ? "started" : "stopped"
            return o
        case let .presence(username, online, lastSeen):
            return ["type": "presence", "username": .string(username), "status": online ? "online" : "offline",
                    "last_seen": lastSeen.map { .string(Timestamp.format($0)) } ?? .null]
        case let .groupInvite(groupID, groupName, inviter):
            return ["type": "group_invite", "group_id": .string(groupID), "group_name": .string(groupName),
                    "inviter": .string(inviter)]
        case let .call(call):
            return Self.call(call)
        }
    }

    static func call(_ event: CallEvent) -> JSONObject {
        switch event {
        case let .incoming(callID, caller, media, groupName, recorded):
            var o: JSONObject = ["type": "call_incoming", "call_id": .string(callID), "caller": .string(caller),
                                 "media": .array(media.map { .string($0) })]
            if let groupName { o["groupname"] = .string(groupName) }
            if recorded { o["record"] = .bool(true) }
            return o
        case let .ended(callID, reason):
            return ["type": "call_ended", "call_id": .string(callID), "reason": .string(reason)]
        case let .joined(callID, user):
            return ["type": "call_joined", "call_id": .string(callID), "user": .string(user)]
        case let .left(callID, user):
            return ["type": "call_left", "call_id": .string(callID), "user": .string(user)]
        case let .subscribeOffer(callID, sdp):
            return ["type": "subscribe_offer", "call_id": .string(callID), "sdp": .string(sdp)]
        case let .tracks(callID, tracks):
            return ["type": "tracks", "call_id": .string(callID), "tracks": .array(tracks.map { t in
                .object(["track_id": .string(t.trackID), "user": .string(t.user), "kind": .string(t.kind),
                         "source": .string(t.source), "muted": .bool(t.muted), "mid": .string(t.mid), "msid": .string(t.msid)])
            })]
        case let .signal(callID, from, payload):
            return ["type": "call_signal", "call_id": .string(callID), "from": .string(from), "payload": .object(payload)]
        case let .recording(callID, enabled, by):
            return ["type": "call_recording", "call_id": .string(callID), "enabled": .bool(enabled), "by": .string(by)]
        }
    }

    static func addConversation(_ m: StoredMessage, to o: inout JSONObject) {
        o["sender"] = .string(m.sender)
        switch m.target {
        case let .direct(recipient): o["recipient"] = .string(recipient)
        case let .group(_, name): o["groupname"] = .string(name)
        }
    }

    static func error(_ error: ChatError, requestID: String?) -> JSONObject {
        var o: JSONObject = ["type": "error"]
        if let requestID { o["request_id"] = .string(requestID) }
        o["code"] = .string(error.code.rawValue)
        o["reason"] = .string(error.reason)
        return o
    }
}
