import Chat

/// A request as the front-ends (WebSocket JSON, the line protocol) parse
/// it: one vocabulary, so what each request does is written once, in
/// `RequestDispatcher`, and each front-end only parses and renders.
enum ClientRequest: Sendable {
    case register(username: String, password: String, displayName: String?)
    case login(Login)
    case logout
    case sendDirect(recipient: String, content: String, clientMessageID: String?, extras: MessageExtras)
    case sendGroup(groupName: String, content: String, clientMessageID: String?, extras: MessageExtras)
    case broadcast(recipients: [String], content: String, clientMessageID: String?)
    case edit(messageID: String, content: String)
    case delete(messageID: String)
    case markRead(messageID: String)
    case deleteChat(ChatService.ChatRef)
    case typing(ChatService.ChatRef, started: Bool)
    case history(ChatService.ChatRef, HistoryQuery)
    case search(query: String, limit: Int)
    case createGroup(name: String)
    case joinGroup(groupID: String)
    case leaveGroup(groupID: String)
    case listGroups
    case invite(groupID: String, username: String)
    case contacts
    case addContact(username: String)
    case removeContact(username: String)
    case updateProfile(displayName: String?, avatarAttachmentID: String?, settings: JSONObject?)
    case call(CallRequest)

    enum Login: Sendable {
        case password(username: String, password: String)
        case token(String)
    }

    /// Whether the request needs a logged-in connection.
    var needsLogin: Bool {
        switch self {
        case .register, .login: false
        default: true
        }
    }
}

/// The Calls requests of PROTOCOL.md (WebSocket only).
enum CallRequest: Sendable {
    case start(callee: String?, groupName: String?, media: [String]?, record: Bool)
    case accept(callID: String)
    case reject(callID: String, reason: String?)
    case end(callID: String)
    case history(limit: Int, before: String?)
    case publishOffer(callID: String, sdp: String)
    case subscribeAnswer(callID: String, sdp: String)
    case iceCandidate(callID: String)
    case publishTrack(callID: String, mid: String, source: String?, muted: Bool?)
    case signal(callID: String, to: String, payload: JSONObject)
    case record(callID: String, enabled: Bool)
    case iceRestart(callID: String)
}

/// What a request produced, for the front-end to render in its own syntax.
enum RequestOutcome: Sendable {
    case registered(ChatService.RegistrationOutcome)
    /// Rendered while pushes to the connection are held, so the pending
    /// messages it carries come before anything that arrived meanwhile.
    case loggedIn(user: UserRecord, token: String, pending: [StoredMessage])
    case loginFailed
    case loggedOut
    case sent(StoredMessage)
    case broadcastSent([(recipient: String, message: StoredMessage)])
    case edited(StoredMessage)
    case deleted(StoredMessage)
    case markedRead(messageID: String)
    case chatDeleted(ChatService.ChatRef)
    /// Typing is never acknowledged.
    case nothing
    case history(ChatService.ChatRef, messages: [StoredMessage], hasMore: Bool)
    case searchResults(query: String, messages: [StoredMessage])
    case groupCreated(ChatService.GroupOutcome)
    case groupJoined(ChatService.GroupOutcome)
    case groupLeft(ChatService.GroupOutcome)
    case groups([GroupRecord])
    case invited(group: GroupRecord, username: String)
    case contacts([ChatService.Contact])
    case contactAdded(ChatService.Contact)
    case contactRemoved(username: String)
    case profileUpdated(UserRecord)
    case callStarted(callID: String)
    case callAccepted(callID: String, participants: [String])
    /// The requester's own view of a call it ended, left or rejected.
    case callEnded(callID: String, reason: String)
    case publishAnswer(callID: String, sdp: String)
    case callHistory([CallRecord], for: String)
}

/// How a front-end shows an outcome.
protocol OutcomeRenderer {
    func render(_ outcome: RequestOutcome)
}

/// Performs requests for one connection: the one place that says which
/// service call each request is, what it counts, and how logging in and
/// out changes the connection.
enum RequestDispatcher {
    static func perform(_ request: ClientRequest, state: inout SessionState, renderer: some OutcomeRenderer) async throws {
        let context = state.context
        let service = context.service
        if case .register(let username, let password, let displayName) = request {
            renderer.render(.registered(try await service.register(username: username, password: password,
                                                                   displayName: displayName)))
            return
        }
        if case .login(let login) = request {
            let grant: (user: UserRecord, token: String)?
            switch login {
            case .token(let token):
                grant = try await service.resume(token: token).map { ($0, token) }
            case .password(let username, let password):
                grant = try await service.login(username: username, password: password).map { ($0.user, $0.token) }
            }
            guard let grant else {
                renderer.render(.loginFailed)
                return
            }
            context.metrics.logins.increment()
            await state.attach(user: grant.user, token: grant.token) { pending in
                renderer.render(.loggedIn(user: grant.user, token: grant.token, pending: pending))
            }
            return
        }
        guard let caller = state.caller else { throw ChatError(.notAuthenticated, "log in first") }
        switch request {
        case .register, .login:
            preconditionFailure("handled above")
        case .logout:
            if let token = state.token { try await service.logout(token: token) }
            await state.leave()
            renderer.render(.loggedOut)
        case let .sendDirect(recipient, content, clientMessageID, extras):
            let message = try await service.sendDirect(from: caller, to: recipient, content: content,
                                                       clientMessageID: clientMessageID, extras: extras)
            context.metrics.messagesStored.increment()
            renderer.render(.sent(message))
        case let .sendGroup(groupName, content, clientMessageID, extras):
            let message = try await service.sendGroup(from: caller, groupName: groupName, content: content,
                                                      clientMessageID: clientMessageID, extras: extras)
            context.metrics.messagesStored.increment()
            renderer.render(.sent(message))
        case let .broadcast(recipients, content, clientMessageID):
            let sent = try await service.broadcast(from: caller, to: recipients, content: content,
                                                   clientMessageID: clientMessageID)
            context.metrics.messagesStored.increment(by: Int64(sent.count))
            renderer.render(.broadcastSent(sent))
        case let .edit(messageID, content):
            renderer.render(.edited(try await service.edit(by: caller, messageID: messageID, content: content)))
        case let .delete(messageID):
            renderer.render(.deleted(try await service.delete(by: caller, messageID: messageID)))
        case let .markRead(messageID):
            try await service.markRead(by: caller, messageID: messageID)
            renderer.render(.markedRead(messageID: messageID))
        case let .deleteChat(ref):
            renderer.render(.chatDeleted(try await service.deleteChat(by: caller, ref)))
        case let .typing(ref, started):
            try await service.typing(by: caller, ref, started: started)
            renderer.render(.nothing)
        case let .history(ref, query):
            let (canonical, messages, hasMore) = try await service.history(for: caller, ref, query: query)
            renderer.render(.history(canonical, messages: messages, hasMore: hasMore))
        case let .search(query, limit):
            renderer.render(.searchResults(query: query, messages: try await service.search(for: caller, query: query,
                                                                                             limit: limit)))
        case let .createGroup(name):
            renderer.render(.groupCreated(try await service.createGroup(by: caller, name: name)))
        case let .joinGroup(groupID):
            renderer.render(.groupJoined(try await service.joinGroup(by: caller, groupID: groupID)))
        case let .leaveGroup(groupID):
            renderer.render(.groupLeft(try await service.leaveGroup(by: caller, groupID: groupID)))
        case .listGroups:
            renderer.render(.groups(try await service.groups(of: caller)))
        case let .invite(groupID, username):
            let (group, invitee) = try await service.invite(by: caller, groupID: groupID, username: username)
            renderer.render(.invited(group: group, username: invitee))
        case .contacts:
            renderer.render(.contacts(try await service.contacts(of: caller)))
        case let .addContact(username):
            renderer.render(.contactAdded(try await service.addContact(by: caller, username: username)))
        case let .removeContact(username):
            renderer.render(.contactRemoved(username: try await service.removeContact(by: caller, username: username)))
        case let .updateProfile(displayName, avatarAttachmentID, settings):
            renderer.render(.profileUpdated(try await service.updateProfile(
                by: caller, displayName: displayName, avatarAttachmentID: avatarAttachmentID, settings: settings)))
        case let .call(call):
            guard let calls = context.calls else { throw ChatError.badRequest("calls are not available on this server") }
            try await perform(call, calls: calls, caller: caller, renderer: renderer)
        }
    }

    private static func perform(_ request: CallRequest, calls: CallService, caller: Caller,
                                renderer: some OutcomeRenderer) async throws {
        switch request {
        case let .start(callee, groupName, media, record):
            let started = try await calls.start(by: caller, callee: callee, groupName: groupName, media: media,
                                                record: record)
            renderer.render(.callStarted(callID: started.record.id))
            if started.busy { await calls.finishBusy(started.record.id) }
        case let .accept(callID):
            renderer.render(.callAccepted(callID: callID, participants: try await calls.accept(by: caller, callID: callID)))
        case let .reject(callID, reason):
            renderer.render(.callEnded(callID: callID, reason: try await calls.reject(by: caller, callID: callID, reason: reason)))
        case let .end(callID):
            renderer.render(.callEnded(callID: callID, reason: try await calls.end(by: caller, callID: callID)))
        case let .history(limit, before):
            renderer.render(.callHistory(try await calls.history(for: caller, limit: limit, before: before), for: caller.username))
        case let .publishOffer(callID, sdp):
            renderer.render(.publishAnswer(callID: callID, sdp: try await calls.publish(by: caller, callID: callID, offer: sdp)))
        case let .subscribeAnswer(callID, sdp):
            try await calls.subscribeAnswer(by: caller, callID: callID, answer: sdp)
            renderer.render(.nothing)
        case let .iceCandidate(callID):
            try await calls.iceCandidate(by: caller, callID: callID)
            renderer.render(.nothing)
        case let .publishTrack(callID, mid, source, muted):
            try await calls.publishTrack(by: caller, callID: callID, mid: mid, source: source, muted: muted)
            renderer.render(.nothing)
        case let .signal(callID, to, payload):
            try await calls.signal(by: caller, callID: callID, to: to, payload: payload)
            renderer.render(.nothing)
        case let .record(callID, enabled):
            try await calls.setRecording(by: caller, callID: callID, enabled: enabled)
            renderer.render(.nothing)
        case let .iceRestart(callID):
            try await calls.restartICE(by: caller, callID: callID)
            renderer.render(.nothing)
        }
    }
}
