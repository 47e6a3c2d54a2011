import Chat
import Logging

/// One WebSocket connection's state and request handling. Owned by the task
/// reading the connection, so requests are answered in order; everything it
/// sends goes through the connection's `OutboundQueue`.
struct WebSocketSession {
    let context: SignalingContext
    let queue: OutboundQueue
    private var state: SessionState

    init(context: SignalingContext, queue: OutboundQueue, state: SessionState? = nil) {
        self.context = context
        self.queue = queue
        self.state = state ?? SessionState(context: context, queue: queue)
    }

    var service: ChatService { context.service }
    var caller: Caller? { state.caller }

    // MARK: Frames

    /// Handles one complete frame. `allowed` is false when the connection is
    /// over its rate: the frame is answered `rate_limited` (echoing its
    /// `request_id`) and not processed.
    mutating func handle(frame bytes: [UInt8], allowed: Bool = true) async {
        context.metrics.framesIn.increment()
        let value: JSONValue
        do {
            value = try JSONValue.parse(bytes)
        } catch {
            fail(ChatError(.badJSON, "frame is not valid JSON"), requestID: nil)
            return
        }
        guard let object = value.objectValue else {
            fail(ChatError(.badJSON, "frame must be a JSON object"), requestID: nil)
            return
        }
        var requestID: String?
        if let raw = object["request_id"], !raw.isNull {
            guard let s = raw.stringValue, s.count <= 64 else {
                fail(.badRequest("'request_id' must be a string of at most 64 characters"), requestID: nil)
                return
            }
            requestID = s
        }
        guard allowed else {
            fail(ChatError(.rateLimited, "too many requests; slow down"), requestID: requestID)
            return
        }
        guard let rawType = object["type"] else {
            fail(.badRequest("missing field 'type'"), requestID: requestID)
            return
        }
        guard let typeString = rawType.stringValue else {
            fail(.badRequest("field 'type' must be a string"), requestID: requestID)
            return
        }
        let type = typeString.trimmingWhitespace().lowercased()
        do {
            try await dispatch(type, RequestFields(object: object), requestID: requestID)
        } catch let error as ChatError {
            fail(error, requestID: requestID)
        } catch {
            context.logger.error("request failed", metadata: ["type": "\(type)", "error": "\(error)"])
            fail(ChatError(.internal, "internal error"), requestID: requestID)
        }
    }

    func fail(_ error: ChatError, requestID: String?) {
        context.metrics.countError(error.code)
        queue.send(WireFormat.error(error, requestID: requestID))
    }

    func reply(_ object: JSONObject, requestID: String?) {
        var object = object
        if let requestID { object.fields.insert((key: "request_id", value: .string(requestID)), at: 1) }
        queue.send(object)
    }

    private func requireCaller() throws -> Caller {
        guard let caller else { throw ChatError(.notAuthenticated, "log in first") }
        return caller
    }

    static let callTypes: Set<String> = [
        "call_start", "call_accept", "call_reject", "call_end", "call_history", "publish_offer", "subscribe_answer",
        "ice_candidate", "publish_track", "call_signal",
    ]

    private mutating func dispatch(_ type: String, _ f: RequestFields, requestID: String?) async throws {
        switch type {
        case "register":
            let outcome = try await service.register(username: try f.string("username"), password: try f.string("password"),
                                                     displayName: try f.optionalString("display_name"))
            switch outcome {
            case .success:
                reply(["type": "registration_response", "status": "register_success"], requestID: requestID)
            case let .failure(reason):
                reply(["type": "registration_response", "status": "register_fail", "reason": .string(reason)], requestID: requestID)
            }
        case "login":
            try await login(f, requestID: requestID)
        case "logout":
            _ = try requireCaller()
            if let token = state.token { try await service.logout(token: token) }
            await state.leave()
            reply(["type": "logout_response", "status": "logout_success"], requestID: requestID)
        default:
            let caller = try requireCaller()
            try await dispatchAuthenticated(type, f, caller: caller, requestID: requestID)
        }
    }

    private func dispatchAuthenticated(_ type: String, _ f: RequestFields, caller: Caller, requestID: String?) async throws {
        switch type {
        case "send_message":
            let message = try await service.sendDirect(from: caller, to: try f.string("recipient"), content: try f.string("content"),
                                                       clientMessageID: try clientMessageID(f), extras: try f.extras())
            context.metrics.messagesStored.increment()
            var o: JSONObject = ["type": "message_sent", "message_id": .string(message.id),
                                 "timestamp": .string(Timestamp.format(message.createdAt))]
            if let c = message.clientMessageID { o["client_message_id"] = .string(c) }
            reply(o, requestID: requestID)
        case "send_group_message":
            let message = try await service.sendGroup(from: caller, groupName: try f.string("groupname"),
                                                      content: try f.string("content"), clientMessageID: try clientMessageID(f),
                                                      extras: try f.extras())
            context.metrics.messagesStored.increment()
            var o: JSONObject = ["type": "group_message_sent", "message_id": .string(message.id),
                                 "timestamp": .string(Timestamp.format(message.createdAt))]
            if let c = message.clientMessageID { o["client_message_id"] = .string(c) }
            reply(o, requestID: requestID)
        case "broadcast_message":
            let sent = try await service.broadcast(from: caller, to: try f.stringArray("recipients"),
                                                   content: try f.string("content"), clientMessageID: try clientMessageID(f))
            context.metrics.messagesStored.increment(by: Int64(sent.count))
            var ids = JSONObject()
            for (recipient, message) in sent { ids[recipient] = .string(message.id) }
            reply(["type": "broadcast_sent", "message_ids": .object(ids),
                   "timestamp": .string(Timestamp.format(sent.first?.message.createdAt ?? 0))], requestID: requestID)
        case "edit_message":
            let edited = try await service.edit(by: caller, messageID: try f.string("message_id"), content: try f.string("content"))
            reply(WireFormat.event(.edited(edited)), requestID: requestID)
        case "delete_message":
            let deleted = try await service.delete(by: caller, messageID: try f.string("message_id"))
            reply(WireFormat.event(.deleted(deleted)), requestID: requestID)
        case "mark_read":
            let id = try f.string("message_id")
            try await service.markRead(by: caller, messageID: id)
            reply(["type": "marked_read", "message_id": .string(id)], requestID: requestID)
        case "delete_chat":
            let ref = try await service.deleteChat(by: caller, try f.chatRef())
            var o: JSONObject = ["type": "chat_deleted"]
            Self.add(ref, to: &o)
            reply(o, requestID: requestID)
        case "typing":
            let state = try f.string("state").lowercased()
            guard state == "started" || state == "stopped" else {
                throw ChatError.badRequest("field 'state' must be 'started' or 'stopped'")
            }
            try await service.typing(by: caller, try f.chatRef(), started: state == "started")
        case "fetch_history":
            var query = HistoryQuery(start: try f.optionalTime("start_time"), end: try f.optionalTime("end_time"),
                                     limit: try f.optionalInt("limit") ?? Limits.defaultHistoryLimit)
            if let before = try f.optionalString("before_id") {
                guard let seq = MessageID.parse(before) else { throw ChatError.notFound("unknown message '\(before)'") }
                query.beforeSeq = seq
            }
            guard (1...Limits.maxHistoryLimit).contains(query.limit) else {
                throw ChatError.badRequest("field 'limit' must be 1–\(Limits.maxHistoryLimit)")
            }
            let (ref, messages, hasMore) = try await service.history(for: caller, try f.chatRef(), query: query)
            var o: JSONObject = ["type": "history"]
            Self.add(ref, to: &o)
            o["messages"] = .array(messages.map { .object(WireFormat.message($0)) })
            o["has_more"] = .bool(hasMore)
            reply(o, requestID: requestID)
        case "search_messages":
            let limit = try f.optionalInt("limit") ?? Limits.defaultSearchLimit
            guard (1...Limits.maxSearchLimit).contains(limit) else {
                throw ChatError.badRequest("field 'limit' must be 1–\(Limits.maxSearchLimit)")
            }
            let query = try f.string("query")
            let results = try await service.search(for: caller, query: query, limit: limit)
            reply(["type": "search_results", "query": .string(query),
                   "messages": .array(results.map { .object(WireFormat.message($0)) })], requestID: requestID)
        case "create_group":
            let name = try f.optionalString("group_name") ?? f.string("groupname")
            switch try await service.createGroup(by: caller, name: name) {
            case let .success(group):
                reply(["type": "create_group_response", "status": "create_group_success", "group_id": .string(group.wireID),
                       "group_name": .string(group.name)], requestID: requestID)
            case let .failure(reason):
                reply(["type": "create_group_response", "status": "create_group_fail", "reason": .string(reason)],
                      requestID: requestID)
            }
        case "join_group", "leave_group":
            let groupID = try f.string("group_id")
            let outcome = type == "join_group"
                ? try await service.joinGroup(by: caller, groupID: groupID)
                : try await service.leaveGroup(by: caller, groupID: groupID)
            switch outcome {
            case let .success(group):
                reply(["type": .string("\(type)_response"), "status": .string("\(type)_success"), "group_id": .string(group.wireID),
                       "group_name": .string(group.name)], requestID: requestID)
            case let .failure(reason):
                reply(["type": .string("\(type)_response"), "status": .string("\(type)_fail"), "reason": .string(reason)],
                      requestID: requestID)
            }
        case "list_groups":
            let groups = try await service.groups(of: caller)
            reply(["type": "groups", "groups": .array(groups.map { .object(WireFormat.group($0)) })], requestID: requestID)
        case "invite":
            let (group, invitee) = try await service.invite(by: caller, groupID: try f.string("group_id"),
                                                            username: try f.string("username"))
            reply(["type": "invite_response", "status": "invite_success", "group_id": .string(group.wireID),
                   "username": .string(invitee)], requestID: requestID)
        case "get_contacts":
            let contacts = try await service.contacts(of: caller)
            reply(["type": "contacts", "contacts": .array(contacts.map { .object(WireFormat.contact($0)) })], requestID: requestID)
        case "add_contact":
            let contact = try await service.addContact(by: caller, username: try f.string("username"))
            reply(["type": "contact_added", "contact": .object(WireFormat.contact(contact))], requestID: requestID)
        case "remove_contact":
            let username = try await service.removeContact(by: caller, username: try f.string("username"))
            reply(["type": "contact_removed", "username": .string(username)], requestID: requestID)
        case "update_profile":
            let user = try await service.updateProfile(by: caller, displayName: try f.optionalString("display_name"),
                                                       avatarAttachmentID: try f.optionalString("avatar_attachment_id"),
                                                       settings: try f.optionalObject("settings"))
            reply(["type": "profile_updated", "user": .object(WireFormat.user(user))], requestID: requestID)
        case _ where Self.callTypes.contains(type):
            throw ChatError.badRequest("calls are not available on this server yet")
        default:
            throw ChatError(.unknownType, "unknown type '\(type)'")
        }
    }

    private func clientMessageID(_ f: RequestFields) throws -> String? {
        guard let id = try f.optionalString("client_message_id") else { return nil }
        guard !id.isEmpty, id.utf8.count <= 128 else {
            throw ChatError.badRequest("'client_message_id' must be 1–128 bytes")
        }
        return id
    }

    static func add(_ ref: ChatService.ChatRef, to o: inout JSONObject) {
        switch ref {
        case let .direct(name): o["recipient"] = .string(name)
        case let .group(name): o["groupname"] = .string(name)
        }
    }

    // MARK: Sessions

    private mutating func login(_ f: RequestFields, requestID: String?) async throws {
        let grant: (user: UserRecord, token: String)?
        if let token = try f.optionalString("token") {
            grant = try await service.resume(token: token).map { ($0, token) }
        } else {
            let username = try f.string("username")
            let password = try f.string("password")
            grant = try await service.login(username: username, password: password).map { ($0.user, $0.token) }
        }
        guard let grant else {
            reply(["type": "login_response", "status": "login_fail", "reason": "invalid credentials"], requestID: requestID)
            return
        }
        context.metrics.logins.increment()
        let queue = self.queue
        let iceServers = context.configuration.iceServers
        await state.attach(user: grant.user, token: grant.token) { pending in
            var o: JSONObject = ["type": "login_response", "status": "login_success", "token": .string(grant.token),
                                 "user": .object(WireFormat.user(grant.user)),
                                 "pending_messages": .array(pending.map { .object(WireFormat.message($0)) })]
            if let servers = iceServers?(grant.user.username) {
                o["ice_servers"] = .array(servers.map { .object(WireFormat.iceServer($0)) })
            }
            if let requestID { o.fields.insert((key: "request_id", value: .string(requestID)), at: 1) }
            queue.send(o)
        }
    }

    mutating func leave() async { await state.leave() }
}

extension String {
    func trimmingWhitespace() -> String {
        guard let first = firstIndex(where: { !$0.isWhitespace }), let last = lastIndex(where: { !$0.isWhitespace }) else {
            return ""
        }
        return String(self[first...last])
    }
}
