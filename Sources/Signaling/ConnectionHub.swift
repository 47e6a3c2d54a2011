import Chat
import Synchronization

/// Where pushes to a live connection go. Implementations must be cheap and
/// non-blocking: `push` is called while fanning out to many users.
public protocol ClientSink: AnyObject, Sendable {
    func push(_ event: ChatEvent)
}

/// Every open connection, by user. Sharded so that concurrent deliveries to
/// different users rarely contend for one lock.
public final class ConnectionHub: Delivery {
    private final class Shard: Sendable {
        let users = Mutex<[String: [(id: ConnectionID, sink: any ClientSink)]]>([:])
    }

    private let shards: [Shard]
    private let nextID = Atomic<UInt64>(1)
    private let connectionCount = Atomic<Int>(0)
    private let userCount = Atomic<Int>(0)

    public init(shardCount: Int = 64) {
        shards = (0..<max(1, shardCount)).map { _ in Shard() }
    }

    public func makeConnectionID() -> ConnectionID {
        nextID.wrappingAdd(1, ordering: .relaxed).oldValue
    }

    private func shard(for username: String) -> Shard {
        var hasher = Hasher()
        hasher.combine(username)
        return shards[Int(UInt(bitPattern: hasher.finalize()) % UInt(shards.count))]
    }

    /// Adds a connection; true when it is the user's first.
    @discardableResult
    public func register(_ sink: any ClientSink, id: ConnectionID, username: String) -> Bool {
        let first = shard(for: username).users.withLock { users in
            let wasEmpty = users[username, default: []].isEmpty
            users[username, default: []].append((id: id, sink: sink))
            return wasEmpty
        }
        connectionCount.wrappingAdd(1, ordering: .relaxed)
        if first { userCount.wrappingAdd(1, ordering: .relaxed) }
        return first
    }

    /// Removes a connection; true when it was the user's last.
    @discardableResult
    public func unregister(id: ConnectionID, username: String) -> Bool {
        let (removed, last) = shard(for: username).users.withLock { users -> (Bool, Bool) in
            guard var list = users[username], let index = list.firstIndex(where: { $0.id == id }) else { return (false, false) }
            list.remove(at: index)
            if list.isEmpty {
                users[username] = nil
                return (true, true)
            }
            users[username] = list
            return (true, false)
        }
        if removed { connectionCount.wrappingSubtract(1, ordering: .relaxed) }
        if last { userCount.wrappingSubtract(1, ordering: .relaxed) }
        return last
    }

    @discardableResult
    public func deliver(_ event: ChatEvent, to username: String, excluding: ConnectionID?) -> Int {
        let sinks = shard(for: username).users.withLock { users in users[username] ?? [] }
        var reached = 0
        for entry in sinks where entry.id != excluding {
            entry.sink.push(event)
            reached += 1
        }
        return reached
    }

    @discardableResult
    public func deliver(_ event: ChatEvent, to username: String, connection: ConnectionID) -> Bool {
        let sink = shard(for: username).users.withLock { users in users[username]?.first { $0.id == connection }?.sink }
        sink?.push(event)
        return sink != nil
    }

    public func isOnline(_ username: String) -> Bool {
        shard(for: username).users.withLock { users in users[username] != nil }
    }

    public var connections: Int { connectionCount.load(ordering: .relaxed) }
    public var onlineUsers: Int { userCount.load(ordering: .relaxed) }
}
