import Chat

/// Who a connection is logged in as, shared by the WebSocket and line
/// protocol sessions: attaching to the hub, handing over pending messages,
/// presence on first connect and last disconnect.
struct SessionState: Sendable {
    let context: SignalingContext
    let queue: OutboundQueue
    let connectionID: ConnectionID
    private(set) var username: String?
    private(set) var token: String?

    init(context: SignalingContext, queue: OutboundQueue) {
        self.context = context
        self.queue = queue
        self.connectionID = context.hub.makeConnectionID()
    }

    var caller: Caller? { username.map { Caller(username: $0, connectionID: connectionID) } }

    /// Registers the connection for the user and hands over what waited for
    /// them. Pushes arriving meanwhile are held until `announce` has sent the
    /// pending messages, so nothing overtakes them and nothing is lost.
    mutating func attach(user: UserRecord, token: String, announce: ([StoredMessage]) -> Void) async {
        if username != nil { await leave() }
        username = user.username
        self.token = token
        queue.beginHold()
        let first = context.hub.register(queue, id: connectionID, username: user.username)
        var pending: [StoredMessage] = []
        do {
            pending = try await context.service.takePending(for: user.username)
        } catch {
            context.logger.error("taking pending messages failed", metadata: ["user": "\(user.username)", "error": "\(error)"])
        }
        announce(pending)
        queue.endHold()
        if first { await announcePresence(user.username, online: true) }
    }

    /// Detaches the connection from its user (logout, re-login, close).
    mutating func leave() async {
        guard let username else { return }
        self.username = nil
        token = nil
        // A closed connection (or a logout) is a leave from its call (PROTOCOL.md).
        await context.calls?.connectionClosed(connectionID)
        if context.hub.unregister(id: connectionID, username: username) {
            await announcePresence(username, online: false)
        }
    }

    private func announcePresence(_ username: String, online: Bool) async {
        do {
            try await context.service.presenceChanged(username: username, online: online)
        } catch {
            context.logger.warning("presence update failed", metadata: ["user": "\(username)", "error": "\(error)"])
        }
    }
}
