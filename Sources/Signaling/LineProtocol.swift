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

    private func words(_ rest: Substring, _ count: Int, usage: String) throws -> [String] {
        let parts = rest.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard parts.count == count else { throw ChatError.badRequest("usage: \(usage)") }
        return parts
    }

    private func requireCaller() throws -> Caller {
        guard let caller = state.caller else { throw ChatError(.notAuthenticated, "log in first") }
        return caller
    }

    private mutating func dispatch(_ command: Substring, _ rest: Substring) async throws {
        switch command {
        case "register":
            let w = try words(rest, 2, usage: "register <username> <password>")
            switch try await service.register(username: w[0], password: w[1], displayName: nil) {
            case .success: send("register_success")
            case let .failure(reason): send("register_fail \(reason)")
            }
        case "login":
            let w = try words(rest, 2, usage: "login <username> <password>")
            guard let grant = try await service.login(username: w[0], password: w[1]) else {
                send("login_fail invalid credentials")
                return
            }
            context.metrics.logins.increment()
            let queue = self.queue
            await state.attach(user: grant.user, token: grant.token) { pending in
                queue.sendLine("login_success")
                for message in pending { queue.sendLine(LineProtocol.receiveLine(message)) }
            }
        case "logout":
            _ = try requireCaller()
            if let token = state.token { try await service.logout(token: token) }
            await state.leave()
            send("logout_success")
        case "send":
            let caller = try requireCaller()
            let (target, text) = Self.split(rest)
            guard !target.isEmpty, !text.isEmpty else { throw ChatError.badRequest("usage: send <recipient|#group> <message...>") }
            do {
                let content = LineProtocol.unescape(text)
                let message = target.hasPrefix("#")
                    ? try await service.sendGroup(from: caller, groupName: String(target.dropFirst()), content: content,
                                                  clientMessageID: nil)
                    : try await service.sendDirect(from: caller, to: String(target), content: content, clientMessageID: nil)
                context.metrics.messagesStored.increment()
                send("send_success \(message.id)")
            } catch let error as ChatError {
                context.metrics.countError(error.code)
                send("send_fail \(error.code.rawValue) \(error.reason)")
            }
        case "fetch_history":
            let caller = try requireCaller()
            let w = try words(rest, 3, usage: "fetch_history <recipient|#group> <start_time> <end_time>")
            guard let start = Timestamp.parse(w[1]), let end = Timestamp.parse(w[2]) else {
                throw ChatError.badRequest("times must be RFC 3339, like 2026-11-21T10:00:00Z")
            }
            let ref: ChatService.ChatRef = w[0].hasPrefix("#") ? .group(String(w[0].dropFirst())) : .direct(w[0])
            let (_, messages, _) = try await service.history(
                for: caller, ref, query: HistoryQuery(start: start, end: end, limit: Limits.maxHistoryLimit))
            send("history \(messages.count)")
            for message in messages { send(LineProtocol.historyLine(message)) }
        case "create_group":
            let caller = try requireCaller()
            let w = try words(rest, 1, usage: "create_group <group_name>")
            switch try await service.createGroup(by: caller, name: w[0]) {
            case let .success(group): send("create_group_success \(group.wireID)")
            case let .failure(reason): send("create_group_fail \(reason)")
            }
        case "join_group", "leave_group":
            let caller = try requireCaller()
            let w = try words(rest, 1, usage: "\(command) <group_id>")
            let outcome = command == "join_group"
                ? try await service.joinGroup(by: caller, groupID: w[0])
                : try await service.leaveGroup(by: caller, groupID: w[0])
            switch outcome {
            case .success: send("\(command)_success")
            case let .failure(reason): send("\(command)_fail \(reason)")
            }
        default:
            context.metrics.countError(.unknownType)
            send("error unknown_command \(command.prefix(64))")
        }
    }

    mutating func leave() async { await state.leave() }
}
