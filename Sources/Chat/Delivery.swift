/// Something that happens to a user while connected, pushed to every open
/// connection of that user. Each edge renders it in its own protocol.
public enum ChatEvent: Sendable {
    case message(StoredMessage)
    case edited(StoredMessage)
    case deleted(StoredMessage)
    case readReceipt(messageID: String, reader: String, at: Millis)
    case typing(sender: String, target: TypingTarget, started: Bool)
    case presence(username: String, online: Bool, lastSeen: Millis?)
    case groupInvite(groupID: String, groupName: String, inviter: String)
}

public enum TypingTarget: Sendable, Equatable {
    case direct(recipient: String)
    case group(name: String)
}

/// Identifies one open connection (a device) of a user.
public typealias ConnectionID = UInt64

/// The live side of delivery: who is connected, and a push that reaches every
/// open connection of a user. The signaling hub implements it.
public protocol Delivery: Sendable {
    /// Pushes the event to every open connection of `username` except
    /// `excluding`, and returns how many connections it reached.
    @discardableResult
    func deliver(_ event: ChatEvent, to username: String, excluding: ConnectionID?) -> Int
    func isOnline(_ username: String) -> Bool
}

/// Runs CPU-heavy work (password hashing) away from the threads that serve
/// connections. The default runs it in place.
public protocol BlockingWorkRunner: Sendable {
    func run<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T
}

public struct InPlaceRunner: BlockingWorkRunner {
    public init() {}
    public func run<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T { work() }
}

/// The user and connection a request comes from.
public struct Caller: Sendable, Equatable {
    public var username: String
    public var connectionID: ConnectionID

    public init(username: String, connectionID: ConnectionID) {
        self.username = username
        self.connectionID = connectionID
    }
}
