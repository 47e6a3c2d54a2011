import Chat

/// The plain-text line protocol (PROTOCOL.md, "Line protocol"): parsing
/// command lines and rendering pushed events as lines.
enum LineProtocol {
    static let maxLineBytes = 16384

    /// Content on the wire has `\n` for a newline and `\\` for a backslash.
    static func escape(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 == UInt8(ascii: "\\") || $0 == 0x0A || $0 == 0x0D }) else { return text }
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": out.append(contentsOf: "\\\\".unicodeScalars)
            case "\n": out.append(contentsOf: "\\n".unicodeScalars)
            case "\r": out.append(contentsOf: "\\r".unicodeScalars)
            default: out.append(scalar)
            }
        }
        return String(out)
    }

    static func unescape(_ text: Substring) -> String {
        guard text.utf8.contains(UInt8(ascii: "\\")) else { return String(text) }
        var out = String.UnicodeScalarView()
        var escaping = false
        for scalar in text.unicodeScalars {
            if escaping {
                switch scalar {
                case "n": out.append("\n")
                case "r": out.append("\r")
                default: out.append(scalar)
                }
                escaping = false
            } else if scalar == "\\" {
                escaping = true
            } else {
                out.append(scalar)
            }
        }
        if escaping { out.append("\\") }
        return String(out)
    }

    /// `<message_id> <sender> <timestamp> <message...>`, as history lists it.
    static func historyLine(_ m: StoredMessage) -> String {
        "\(m.id) \(m.sender) \(Timestamp.format(m.createdAt)) \(escape(m.content))"
    }

    /// The pushed line for an event, or nil for events the protocol has no
    /// line for (typing, presence, receipts).
    static func line(for event: ChatEvent) -> String? {
        guard case let .message(m) = event else { return nil }
        return receiveLine(m)
    }

    /// `receive <sender|#group> <sender> <timestamp> <message...>`.
    static func receiveLine(_ m: StoredMessage) -> String {
        let conversation: String
        switch m.target {
        case .direct: conversation = m.sender
        case let .group(_, name): conversation = "#" + name
        }
        return "receive \(conversation) \(m.sender) \(Timestamp.format(m.createdAt)) \(escape(m.content))"
    }
}

/// One line-protocol connection's state and command handling.
struct LineSession {
    let context: SignalingContext
    let queue: OutboundQueue
    private var state: SessionState

    init(context: SignalingContext, queue: OutboundQueue) {
        self.context = context
        self.queue = queue
        self.state = SessionState(context: context, queue: queue)
    }

    var service: ChatService { context.service }

    private func send(_ line: String) { queue.sendLine(line) }

    func fail(_ error: ChatError) {
        context.metrics.countError(error.code)
        send("error \(error.code.rawValue) \(error.reason)")
    }

    mutating func handle(line raw: String) async {
        context.metrics.framesIn.increment()
        let line = raw.hasSuffix("\r") ? String(raw.dropLast()) : raw
        guard !line.isEmpty else { return }
        let (command, rest) = Self.split(Substring(line))
        do {
            try await dispatch(Substring(command.lowercased()), rest)
        } catch let error as ChatError {
            fail(error)
        } catch {
            context.logger.error("line command failed", metadata: ["command": "\(command)", "error": "\(error)"])
            fail(ChatError(.internal, "internal error"))
        }
    }

    static func split(_ s: Substring) -> (Substring, Substring) {
        guard let space = s.firstIndex(of: " ") else { return (s, "") }
        return (s[..<space], s[s.index(after: space)...])
    }

    private static func words(_ rest: Substring, _ count: Int, usage: String) throws -> [String] {
        let parts = rest.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard parts.count == count else { throw ChatError.badRequest("usage: \(usage)") }
        return parts
    }

    private mutating func dispatch(_ command: Substring, _ rest: Substring) async throws {
        // Commands other than register/login need a login, checked before their words.
        if command != "register", command != "login", Self.commands.contains(command), state.caller == nil {
            throw ChatError(.notAuthenticated, "log in first")
        }
        guard let request = try Self.request(command, rest) else {
            context.metrics.countError(.unknownType)
            send("error unknown_command \(command.prefix(64))")
            return
        }
        let renderer = LineRenderer(queue: queue)
        switch request {
        case .sendDirect, .sendGroup:
            do {
                try await RequestDispatcher.perform(request, state: &state, renderer: renderer)
            } catch let error as ChatError {
                context.metrics.countError(error.code)
                send("send_fail \(error.code.rawValue) \(error.reason)")
            }
        default:
            try await RequestDispatcher.perform(request, state: &state, renderer: renderer)
        }
    }

    static let commands: Set<Substring> = ["register", "login", "logout", "send", "fetch_history", "create_group",
                                           "join_group", "leave_group"]

    /// The request a command line stands for; nil for an unknown command.
    static func request(_ command: Substring, _ rest: Substring) throws -> ClientRequest? {
        switch command {
        case "register":
            let w = try words(rest, 2, usage: "register <username> <password>")
            return .register(username: w[0], password: w[1], displayName: nil)
        case "login":
            let w = try words(rest, 2, usage: "login <username> <password>")
            return .login(.password(username: w[0], password: w[1]))
        case "logout":
            return .logout
        case "send":
            let (target, text) = split(rest)
            guard !target.isEmpty, !text.isEmpty else { throw ChatError.badRequest("usage: send <recipient|#group> <message...>") }
            let content = LineProtocol.unescape(text)
            return target.hasPrefix("#")
                ? .sendGroup(groupName: String(target.dropFirst()), content: content, clientMessageID: nil, extras: MessageExtras())
                : .sendDirect(recipient: String(target), content: content, clientMessageID: nil, extras: MessageExtras())
        case "fetch_history":
            let w = try words(rest, 3, usage: "fetch_history <recipient|#group> <start_time> <end_time>")
            guard let start = Timestamp.parse(w[1]), let end = Timestamp.parse(w[2]) else {
                throw ChatError.badRequest("times must be RFC 3339, like 2026-11-21T10:00:00Z")
            }
            let ref: ChatService.ChatRef = w[0].hasPrefix("#") ? .group(String(w[0].dropFirst())) : .direct(w[0])
            return .history(ref, HistoryQuery(start: start, end: end, limit: Limits.maxHistoryLimit))
        case "create_group":
            return .createGroup(name: try words(rest, 1, usage: "create_group <group_name>")[0])
        case "join_group":
            return .joinGroup(groupID: try words(rest, 1, usage: "join_group <group_id>")[0])
        case "leave_group":
            return .leaveGroup(groupID: try words(rest, 1, usage: "leave_group <group_id>")[0])
        default:
            return nil
        }
    }

    mutating func leave() async { await state.leave() }
}

/// Renders outcomes as the line protocol's answer lines (PROTOCOL.md).
struct LineRenderer: OutcomeRenderer {
    let queue: OutboundQueue

    func render(_ outcome: RequestOutcome) {
        switch outcome {
        case .registered(.success): queue.sendLine("register_success")
        case let .registered(.failure(reason)): queue.sendLine("register_fail \(reason)")
        case let .loggedIn(_, _, pending):
            queue.sendLine("login_success")
            for message in pending { queue.sendLine(LineProtocol.receiveLine(message)) }
        case .loginFailed: queue.sendLine("login_fail invalid credentials")
        case .loggedOut: queue.sendLine("logout_success")
        case let .sent(message): queue.sendLine("send_success \(message.id)")
        case let .history(_, messages, _):
            queue.sendLine("history \(messages.count)")
            for message in messages { queue.sendLine(LineProtocol.historyLine(message)) }
        case let .groupCreated(.success(group)): queue.sendLine("create_group_success \(group.wireID)")
        case let .groupCreated(.failure(reason)): queue.sendLine("create_group_fail \(reason)")
        case .groupJoined(.success): queue.sendLine("join_group_success")
        case let .groupJoined(.failure(reason)): queue.sendLine("join_group_fail \(reason)")
        case .groupLeft(.success): queue.sendLine("leave_group_success")
        case let .groupLeft(.failure(reason)): queue.sendLine("leave_group_fail \(reason)")
        case .broadcastSent, .edited, .deleted, .markedRead, .chatDeleted, .nothing, .searchResults, .groups, .invited,
             .contacts, .contactAdded, .contactRemoved, .profileUpdated, .callStarted, .callAccepted, .callEnded,
             .publishAnswer, .callHistory:
            // The line grammar has no such requests.
            break
        }
    }
}
