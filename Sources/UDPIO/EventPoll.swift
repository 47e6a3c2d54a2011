import CSockets
import Glibc

/// A level-triggered epoll set: descriptors registered with a caller-chosen
/// 64-bit token, `wait` fills a preallocated event array.
public final class EventPoll {
    public let fd: Int32
    private let events: UnsafeMutablePointer<epoll_event>
    public let capacity: Int

    public init(capacity: Int = 256) throws(SocketCallError) {
        fd = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard fd >= 0 else { throw SocketCallError(call: "epoll_create1", code: errno) }
        self.capacity = capacity
        events = .allocate(capacity: capacity)
    }

    deinit {
        close(fd)
        events.deallocate()
    }

    /// Watches `descriptor` for readability.
    public func add(_ descriptor: Int32, token: UInt64) throws(SocketCallError) {
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.u64 = token
        guard epoll_ctl(fd, EPOLL_CTL_ADD, descriptor, &event) == 0 else {
            throw SocketCallError(call: "epoll_ctl ADD", code: errno)
        }
    }

    /// Waits up to `timeoutMilliseconds` (-1: forever) for readable
    /// descriptors. Returns how many (read their tokens with `token(_:)`);
    /// 0 on timeout or a signal; -errno on failure.
    public func wait(timeoutMilliseconds: Int32) -> Int {
        let n = epoll_wait(fd, events, Int32(capacity), timeoutMilliseconds)
        if n < 0 { return errno == EINTR ? 0 : -Int(errno) }
        return Int(n)
    }

    @inline(__always)
    public func token(_ index: Int) -> UInt64 { events[index].data.u64 }
}

/// An eventfd another thread writes to wake an `EventPoll` loop.
public final class Wakeup: @unchecked Sendable {
    public let fd: Int32

    public init() throws(SocketCallError) {
        fd = eventfd(0, Int32(EFD_NONBLOCK) | Int32(EFD_CLOEXEC))
        guard fd >= 0 else { throw SocketCallError(call: "eventfd", code: errno) }
    }

    deinit { close(fd) }

    /// From any thread.
    public func signal() {
        var one: UInt64 = 1
        _ = write(fd, &one, 8)
    }

    /// On the loop, when the descriptor is readable.
    public func drain() {
        var value: UInt64 = 0
        _ = read(fd, &value, 8)
    }
}
