import Foundation
import Glibc
import Logging
import RTCBase
import Synchronization
import UDPIO

/// What a `UDPEdge` hosts: one sans-IO engine and the sockets it reads
/// (the TURN server, an SFU worker). Every method runs on the edge's thread,
/// which is the only one that touches the handler.
protocol UDPEdgeHandler: AnyObject, SendableMetatype {
    /// A descriptor the handler registered with `io.poll` under `token` is readable.
    func readable(_ token: UInt64, io: UDPEdgeIO, now: inout Instant)
    /// The engine's next deadline.
    func pollTimeout() -> Instant?
    /// The deadline passed.
    func handleTimeout(io: UDPEdgeIO, now: Instant)
    /// The cycle's datagrams were sent and the receive slots released.
    func cycleEnded()
    /// Copy counters to the metrics registry (a few times a second).
    func syncMetrics(io: UDPEdgeIO)
    /// The loop is stopping: close the handler's sockets.
    func close(io: UDPEdgeIO)
}

/// The IO a handler uses: the poll set, one set of receive slots shared by
/// all its sockets (datagrams may be changed in place, e.g. SRTP decrypted),
/// and one send queue flushed once per cycle.
final class UDPEdgeIO {
    struct Settings {
        var slotSize = 2048
        var slots = 256
        var queueCapacity = 512
        var queueArena = 256 * 1024
        var segmentation = true
    }

    let poll: EventPoll
    let slots: ReceiveSlots
    let queue: SendQueue
    /// Failed recvmmsg calls and datagrams the kernel cut, since start.
    var receiveErrors = 0
    var truncated = 0
    fileprivate var cycleEnded: () -> Void = {}

    init(_ settings: Settings) throws {
        poll = try EventPoll()
        slots = ReceiveSlots(slotCount: settings.slots, slotSize: settings.slotSize)
        queue = SendQueue(capacity: settings.queueCapacity, arenaSize: settings.queueArena,
                          segmentation: settings.segmentation)
    }

    /// Sends what was queued, then lets the receive slots go (call before
    /// reading more when `slots.free` runs low).
    func endCycle() {
        queue.flush()
        slots.reset()
        cycleEnded()
    }

    /// Reads up to `limit` datagrams from `fd` into the next slots and calls
    /// `body` for each with its bytes (mutable, valid until the cycle ends)
    /// and source. Returns how many were read.
    @inline(__always)
    func receive(from fd: Int32, limit: Int,
                 _ body: (UnsafeMutableRawBufferPointer, TransportAddress) -> Void) -> Int {
        if slots.free < limit { endCycle() }
        let (first, count) = slots.receive(from: fd, limit: limit)
        if count < 0 { receiveErrors += 1 }
        guard count > 0 else { return 0 }
        for slot in first..<(first + count) {
            let d = slots.mutableDatagram(slot)
            guard let source = SocketAddressBytes.read(d.source, length: d.sourceLength) else { continue }
            if d.truncated { truncated += 1 }
            body(d.bytes, source)
        }
        return count
    }
}

/// One thread running an epoll loop for a `UDPEdgeHandler`: readable
/// sockets, the engine's timer, an inbox other threads post work to (woken
/// by an eventfd), and a metrics tick. The engine is a plain value only
/// this thread touches, driven with the clock read once per batch.
///
/// Why not NIO: NIO's datagram channel costs a few heap objects per
/// datagram (the envelope, its socket address, the pipeline's boxing); this
/// loop reads with recvmmsg into preallocated slots and sends with sendmmsg
/// (and UDP GSO) from a preallocated queue, so a datagram in or out
/// allocates nothing.
final class UDPEdge<Handler: UDPEdgeHandler>: @unchecked Sendable {
    typealias Task = @Sendable (Handler, UDPEdgeIO) -> Void

    let handler: Handler
    let io: UDPEdgeIO
    let logger: Logger
    /// How often `syncMetrics` runs; nil: never.
    private let metricsInterval: Duration?
    private let wakeup: Wakeup
    private let inbox = Mutex<(items: [Task], stopped: Bool)>(([], false))
    private var running = true
    private var nextMetrics: Instant?
    private let finished = Mutex<CheckedContinuation<Void, Never>?>(nil)
    private let exited = Atomic<Bool>(false)

    /// Tokens at or above this are the edge's own; handlers use lower ones.
    static var reservedTokens: UInt64 { 1 << 40 }
    private static var wakeToken: UInt64 { 1 << 40 }

    /// `handler` has registered its sockets with `io.poll` already.
    init(handler: Handler, io: UDPEdgeIO, metricsInterval: Duration? = .milliseconds(250), logger: Logger) throws {
        self.handler = handler
        self.io = io
        self.metricsInterval = metricsInterval
        self.logger = logger
        wakeup = try Wakeup()
        try io.poll.add(wakeup.fd, token: Self.wakeToken)
        io.cycleEnded = { [unowned handler] in handler.cycleEnded() }
    }

    /// Starts the loop on its own thread.
    func start(name: String) {
        let thread = Thread { [self] in run() }
        thread.name = name
        thread.start()
    }

    /// Hands `tasks` to the loop and wakes it. After `stop()`, tasks run on
    /// the caller's thread once the loop has let go of its state.
    func post(_ tasks: [Task]) {
        let accepted = inbox.withLock { box -> Bool in
            guard !box.stopped else { return false }
            box.items.append(contentsOf: tasks)
            return true
        }
        if accepted {
            wakeup.signal()
        } else {
            while !exited.load(ordering: .acquiring) { sched_yield() }
            for task in tasks { task(handler, io) }
        }
    }

    func post(_ task: @escaping Task) { post([task]) }

    /// Runs `body` on the loop's thread and returns its result.
    func submit<T: Sendable>(_ body: @escaping @Sendable (Handler, UDPEdgeIO) -> T) async -> T {
        await withCheckedContinuation { continuation in
            post { handler, io in continuation.resume(returning: body(handler, io)) }
        }
    }

    /// Stops the loop, closes the handler's sockets, and returns once the thread is done.
    func stop() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            finished.withLock { $0 = continuation }
            post { [self] _, _ in running = false }
            if exited.load(ordering: .acquiring) { finished.withLock { $0.take() }?.resume() }
        }
    }

    private func run() {
        if metricsInterval != nil { nextMetrics = MonotonicClock.now() }
        while running {
            let timeout = waitMilliseconds(now: MonotonicClock.now())
            let ready = io.poll.wait(timeoutMilliseconds: timeout)
            if ready < 0 {
                logger.error("epoll_wait failed", metadata: ["errno": "\(-ready)"])
                break
            }
            var now = MonotonicClock.now()
            for e in 0..<ready {
                let token = io.poll.token(e)
                if token == Self.wakeToken {
                    drainInbox()
                } else {
                    handler.readable(token, io: io, now: &now)
                }
            }
            if let deadline = handler.pollTimeout(), deadline <= now {
                handler.handleTimeout(io: io, now: now)
            }
            io.endCycle()
            if let at = nextMetrics, at <= now, let interval = metricsInterval {
                handler.syncMetrics(io: io)
                nextMetrics = now + interval
            }
        }
        // Shutdown: nothing more is accepted; run what was posted meanwhile.
        let left = inbox.withLock { box -> [Task] in
            box.stopped = true
            defer { box.items = [] }
            return box.items
        }
        for task in left { task(handler, io) }
        io.endCycle()
        handler.syncMetrics(io: io)
        handler.close(io: io)
        exited.store(true, ordering: .releasing)
        finished.withLock { $0.take() }?.resume()
    }

    private func waitMilliseconds(now: Instant) -> Int32 {
        var deadline = handler.pollTimeout()
        if let m = nextMetrics { deadline = deadline.map { min($0, m) } ?? m }
        guard let deadline else { return 1000 }
        let nanos = (deadline - now).nanoseconds
        if nanos <= 0 { return 0 }
        return Int32(min(1000, (nanos + 999_999) / 1_000_000))
    }

    private func drainInbox() {
        wakeup.drain()
        let items = inbox.withLock { box -> [Task] in
            defer { box.items.removeAll(keepingCapacity: true) }
            return box.items
        }
        for task in items { task(handler, io) }
    }
}
