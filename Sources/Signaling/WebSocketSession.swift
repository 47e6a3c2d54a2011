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

    private mutating func dispatch(_ type: String, _ f: RequestFields, requestID: String?) async throws {
        // Everything but registering and logging in needs a login, checked
        // before the fields are.
        if type != "register", type != "login", state.caller == nil {
            throw ChatError(.notAuthenticated, "log in first")
        }
        let request = try Self.request(type, f)
        try await RequestDispatcher.perform(request, state: &state,
                                            renderer: JSONRenderer(queue: queue, requestID: requestID,
                                                                   iceServers: context.configuration.iceServers))
    }

    /// The request a frame of `type` stands for.
    static func request(_ type: String, _ f: RequestFields) throws -> ClientRequest {
        switch type {
        case "register":
            return .register(username: try f.string("username"), password: try f.string("password"),
                             displayName: try f.optionalString("display_name"))
        case "login":
            if let token = try f.optionalString("token") { return .login(.token(token)) }
            return .login(.password(username: try f.string("username"), password: try f.string("password")))
        case "logout":
            return .logout
        case "send_message":
            return .sendDirect(recipient: try f.string("recipient"), content: try f.string("content"),
                               clientMessageID: try clientMessageID(f), extras: try f.extras())
        case "send_group_message":
            return .sendGroup(groupName: try f.string("groupname"), content: try f.string("content"),
                              clientMessageID: try clientMessageID(f), extras: try f.extras())
        case "broadcast_message":
            return .broadcast(recipients: try f.stringArray("recipients"), content: try f.string("content"),
                              clientMessageID: try clientMessageID(f))
        case "edit_message":
            return .edit(messageID: try f.string("message_id"), content: try f.string("content"))
        case "delete_message":
            return .delete(messageID: try f.string("message_id"))
        case "mark_read":
            return .markRead(messageID: try f.string("message_id"))
        case "delete_chat":
            return .deleteChat(try f.chatRef())
        case "typing":
            let state = try f.string("state").lowercased()
            guard state == "started" || state == "stopped" else {
                throw ChatError.badRequest("field 'state' must be 'started' or 'stopped'")
            }
            return .typing(try f.chatRef(), started: state == "started")
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
            return .history(try f.chatRef(), query)
        case "search_messages":
            let limit = try f.optionalInt("limit") ?? Limits.defaultSearchLimit
            guard (1...Limits.maxSearchLimit).contains(limit) else {
                throw ChatError.badRequest("field 'limit' must be 1–\(Limits.maxSearchLimit)")
            }
            return .search(query: try f.string("query"), limit: limit)
        case "create_group":
            return .createGroup(name: try f.optionalString("group_name") ?? f.string("groupname"))
        case "join_group":
            return .joinGroup(groupID: try f.string("group_id"))
        case "leave_group":
            return .leaveGroup(groupID: try f.string("group_id"))
        case "list_groups":
            return .listGroups
        case "invite":
            return .invite(groupID: try f.string("group_id"), username: try f.string("username"))
        case "get_contacts":
            return .contacts
        case "add_contact":
            return .addContact(username: try f.string("username"))
        case "remove_contact":
            return .removeContact(username: try f.string("username"))
        case "update_profile":
            return .updateProfile(displayName: try f.optionalString("display_name"),
                                  avatarAttachmentID: try f.optionalString("avatar_attachment_id"),
                                  settings: try f.optionalObject("settings"))
        default:
            guard let call = try callRequest(type, f) else { throw ChatError(.unknownType, "unknown type '\(type)'") }
            return .call(call)
        }
    }

    static let trackSources: Set<String> = ["camera", "microphone", "screen", "screen_audio"]

    /// The Calls frames (PROTOCOL.md; `record_call` and `ice_restart` are
    /// this server's, docs/PROTOCOL.md); nil for another type.
    static func callRequest(_ type: String, _ f: RequestFields) throws -> CallRequest? {
        switch type {
        case "call_start":
            return .start(callee: try f.optionalString("callee"), groupName: try f.optionalString("groupname"),
                          media: try f.optionalStringArray("media"), record: try f.optionalBool("record") ?? false)
        case "call_accept":
            return .accept(callID: try f.string("call_id"))
        case "call_reject":
            return .reject(callID: try f.string("call_id"), reason: try f.optionalString("reason"))
        case "call_end":
            return .end(callID: try f.string("call_id"))
        case "call_history":
            return .history(limit: try f.optionalInt("limit") ?? 50, before: try f.optionalString("before_id"))
        case "publish_offer":
            return .publishOffer(callID: try f.string("call_id"), sdp: try f.string("sdp"))
        case "subscribe_answer":
            return .subscribeAnswer(callID: try f.string("call_id"), sdp: try f.string("sdp"))
        case "ice_candidate":
            let pc = try f.string("pc")
            guard pc == "publish" || pc == "subscribe" else {
                throw ChatError.badRequest("field 'pc' must be 'publish' or 'subscribe'")
            }
            let candidate = try f.optionalString("candidate") ?? ""
            guard candidate.utf8.count <= 2048 else { throw ChatError(.tooLarge, "'candidate' is over 2048 bytes") }
            guard candidate.isEmpty || candidate.hasPrefix("candidate:") else {
                throw ChatError.badRequest("field 'candidate' must be an RFC 8839 'candidate:' line or empty")
            }
            _ = try f.optionalString("sdp_mid")
            _ = try f.optionalInt("sdp_mline_index")
            return .iceCandidate(callID: try f.string("call_id"))
        case "publish_track":
            let source = try f.optionalString("source")
            if let source, !trackSources.contains(source) {
                throw ChatError.badRequest("field 'source' must be one of \(trackSources.sorted().joined(separator: ", "))")
            }
            return .publishTrack(callID: try f.string("call_id"), mid: try f.string("mid"), source: source,
                                 muted: try f.optionalBool("muted"))
        case "call_signal":
            return .signal(callID: try f.string("call_id"), to: try f.string("to"), payload: try f.object("payload"))
        case "record_call":
            guard let enabled = try f.optionalBool("enabled") else { throw ChatError.badRequest("missing field 'enabled'") }
            return .record(callID: try f.string("call_id"), enabled: enabled)
        case "ice_restart":
            let pc = try f.optionalString("pc") ?? "subscribe"
            guard pc == "subscribe" else {
                throw ChatError.badRequest("restart the publish connection's ICE with a new 'publish_offer'")
            }
            return .iceRestart(callID: try f.string("call_id"))
        default:
            return nil
        }
    }

    private static func clientMessageID(_ f: RequestFields) throws -> String? {
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

/// Renders outcomes as the WebSocket's JSON frames (PROTOCOL.md), each
/// echoing the request's `request_id`.
struct JSONRenderer: OutcomeRenderer {
    let queue: OutboundQueue
    let requestID: String?
    let iceServers: (@Sendable (String) -> [ICEServer])?

    func reply(_ object: JSONObject) {
        var object = object
        if let requestID { object.fields.insert((key: "request_id", value: .string(requestID)), at: 1) }
        queue.send(object)
    }

    func render(_ outcome: RequestOutcome) {
        switch outcome {
        case .registered(.success):
            reply(["type": "registration_response", "status": "register_success"])
        case let .registered(.failure(reason)):
            reply(["type": "registration_response", "status": "register_fail", "reason": .string(reason)])
        case let .loggedIn(user, token, pending):
            var o: JSONObject = ["type": "login_response", "status": "login_success", "token": .string(token),
                                 "user": .object(WireFormat.user(user)),
                                 "pending_messages": .array(pending.map { .object(WireFormat.message($0)) })]
            if let servers = iceServers?(user.username) {
                o["ice_servers"] = .array(servers.map { .object(WireFormat.iceServer($0)) })
            }
            reply(o)
        case .loginFailed:
            reply(["type": "login_response", "status": "login_fail", "reason": "invalid credentials"])
        case .loggedOut:
            reply(["type": "logout_response", "status": "logout_success"])
        case let .sent(message):
            let direct: Bool
            if case .direct = message.target { direct = true } else { direct = false }
            var o: JSONObject = ["type": direct ? "message_sent" : "group_message_sent", "message_id": .string(message.id),
                                 "timestamp": .string(Timestamp.format(message.createdAt))]
            if let c = message.clientMessageID { o["client_message_id"] = .string(c) }
            reply(o)
        case let .broadcastSent(sent):
            var ids = JSONObject()
            for (recipient, message) in sent { ids[recipient] = .string(message.id) }
            reply(["type": "broadcast_sent", "message_ids": .object(ids),
                   "timestamp": .string(Timestamp.format(sent.first?.message.createdAt ?? 0))])
        case let .edited(message):
            reply(WireFormat.event(.edited(message)))
        case let .deleted(message):
            reply(WireFormat.event(.deleted(message)))
        case let .markedRead(id):
            reply(["type": "marked_read", "message_id": .string(id)])
        case let .chatDeleted(ref):
            var o: JSONObject = ["type": "chat_deleted"]
            WebSocketSession.add(ref, to: &o)
            reply(o)
        case .nothing:
            break
        case let .history(ref, messages, hasMore):
            var o: JSONObject = ["type": "history"]
            WebSocketSession.add(ref, to: &o)
            o["messages"] = .array(messages.map { .object(WireFormat.message($0)) })
            o["has_more"] = .bool(hasMore)
            reply(o)
        case let .searchResults(query, messages):
            reply(["type": "search_results", "query": .string(query),
                   "messages": .array(messages.map { .object(WireFormat.message($0)) })])
        case let .groupCreated(.success(group)):
            reply(["type": "create_group_response", "status": "create_group_success", "group_id": .string(group.wireID),
                   "group_name": .string(group.name)])
        case let .groupCreated(.failure(reason)):
            reply(["type": "create_group_response", "status": "create_group_fail", "reason": .string(reason)])
        case let .groupJoined(outcome):
            membership("join_group", outcome)
        case let .groupLeft(outcome):
            membership("leave_group", outcome)
        case let .groups(groups):
            reply(["type": "groups", "groups": .array(groups.map { .object(WireFormat.group($0)) })])
        case let .invited(group, username):
            reply(["type": "invite_response", "status": "invite_success", "group_id": .string(group.wireID),
                   "username": .string(username)])
        case let .contacts(contacts):
            reply(["type": "contacts", "contacts": .array(contacts.map { .object(WireFormat.contact($0)) })])
        case let .contactAdded(contact):
            reply(["type": "contact_added", "contact": .object(WireFormat.contact(contact))])
        case let .contactRemoved(username):
            reply(["type": "contact_removed", "username": .string(username)])
        case let .profileUpdated(user):
            reply(["type": "profile_updated", "user": .object(WireFormat.user(user))])
        case let .callStarted(callID):
            reply(["type": "call_started", "call_id": .string(callID)])
        case let .callAccepted(callID, participants):
            reply(["type": "call_accepted", "call_id": .string(callID), "participants": .array(participants.map { .string($0) })])
        case let .callEnded(callID, reason):
            reply(WireFormat.event(.call(.ended(callID: callID, reason: reason))))
        case let .publishAnswer(callID, sdp):
            reply(["type": "publish_answer", "call_id": .string(callID), "sdp": .string(sdp)])
        case let .callHistory(calls, user):
            reply(["type": "call_history", "calls": .array(calls.map { .object($0.document(for: user)) })])
        }
    }

    private func membership(_ type: String, _ outcome: ChatService.GroupOutcome) {
        switch outcome {
        case let .success(group):
            reply(["type": .string("\(type)_response"), "status": .string("\(type)_success"), "group_id": .string(group.wireID),
                   "group_name": .string(group.name)])
        case let .failure(reason):
            reply(["type": .string("\(type)_response"), "status": .string("\(type)_fail"), "reason": .string(reason)])
        }
    }
}
