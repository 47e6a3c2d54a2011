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
    case call(CallEvent)
}

/// What call signaling pushes (PROTOCOL.md, Calls; docs/PROTOCOL.md).
public enum CallEvent: Sendable {
    /// `recorded`: the caller asked for the call to be recorded.
    case incoming(callID: String, caller: String, media: [String], groupName: String?, recorded: Bool)
    case ended(callID: String, reason: String)
    /// Someone joined or left the call's media.
    case joined(callID: String, user: String)
    case left(callID: String, user: String)
    case subscribeOffer(callID: String, sdp: String)
    case tracks(callID: String, tracks: [CallTrack])
    /// Relayed verbatim for peer-to-peer calls.
    case signal(callID: String, from: String, payload: JSONObject)
    case recording(callID: String, enabled: Bool, by: String)
}

/// A forwarded track as `tracks` lists it.
public struct CallTrack: Sendable, Equatable {
    public var trackID: String
    public var user: String
    public var kind: String
    public var source: String
    public var muted: Bool
    /// The m-section of the subscribe connection that carries it.
    public var mid: String
    /// Its `a=msid` value ("stream-id track-id").
    public var msid: String

    public init(trackID: String, user: String, kind: String, source: String, muted: Bool, mid: String, msid: String) {
        self.trackID = trackID
        self.user = user
        self.kind = kind
        self.source = source
        self.muted = muted
        self.mid = mid
        self.msid = msid
    }
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
    /// Pushes the event to one connection of `username` (a call's
    /// participant); false when it is not open.
    @discardableResult
    func deliver(_ event: ChatEvent, to username: String, connection: ConnectionID) -> Bool
    func isOnline(_ username: String) -> Bool
}

extension Delivery {
    /// For deliveries that cannot address one connection: all of the user's.
    @discardableResult
    public func deliver(_ event: ChatEvent, to username: String, connection: ConnectionID) -> Bool {
        deliver(event, to: username, excluding: nil) > 0
    }
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
