import Foundation
import Glibc
import Logging
import NIOCore
import RTCBase
import STUN
import Synchronization
import TURN
import UDPIO

/// The UDP half of the TURN server and the owner of its engine: one thread
/// running its own epoll loop over the UDP listener and every relay socket.
///
/// Why not NIO here: NIO's datagram channel costs a few heap objects per
/// datagram (the envelope, its socket address, the pipeline's boxing) and
/// one buffer per relay socket. This loop reads with recvmmsg into one set
/// of preallocated slots, lets the engine route each datagram in place, and
/// sends with sendmmsg straight from those slots (ChannelData payloads are
/// never copied) — no allocation per packet, one receive buffer for all
/// relays. TCP and TLS stay on NIO (`TURNStreams`) and reach the engine
/// through the inbox; what the engine sends them goes back to their event
/// loop in one batch per cycle.
///
/// The engine is a plain value only this thread touches, driven with the
/// clock read once per batch (sans-IO, as everywhere in Parley).
final class TURNEdge: @unchecked Sendable {
    struct Settings {
        var listenerBatch = 64
        var relayBatch = 16
        var slotSize = 2048
        var slots = 256
        var listenerBuffer = 4 << 20
        var relayBuffer = 1 << 20
        var segmentation = true
    }

    /// Work handed over from other threads.
    enum Inbound: Sendable {
        /// One whole message a stream framer cut from a TCP/TLS connection.
        case streamMessage([UInt8], client: TransportAddress, transport: TURNTransport)
        case streamClosed(TURNConnectionID)
        /// Runs on the edge's thread (queries, shutdown).
        case task(@Sendable (TURNEdge) -> Void)
    }

    private var engine: TURNServer
    let logger: Logger
    private let metrics: TURNMetrics?
    private let settings: Settings
    let listenerFD: Int32
    /// The address the listener is bound to (its port is the TURN port).
    let listenerAddress: TransportAddress
    /// Where relay sockets are bound (the engine names them by the public address).
    private let relayBindIP: IPAddress
    private let streams: TURNStreams

    private let poll: EventPoll
    private let wakeup: Wakeup
    private var relayFDs: [UInt16: Int32] = [:]
    private var relayByFD: [Int32: TransportAddress] = [:]
    private let slots: ReceiveSlots
    private let queue: SendQueue
    private var streamOutput: [TURNStreams.Output] = []

    private let inbox = Mutex<(items: [Inbound], stopped: Bool)>(([], false))
    private var running = true
    private var nextMetrics: Instant?
    private(set) var receiveErrors = 0
    private var truncated = 0
    private let finished = Mutex<CheckedContinuation<Void, Never>?>(nil)
    private let exited = Atomic<Bool>(false)

    private static let listenerToken: UInt64 = 1 << 32
    private static let wakeToken: UInt64 = 1 << 33

    init(engine: TURNServer, listen: TransportAddress, relayBindIP: IPAddress, streams: TURNStreams, settings: Settings,
         metrics: TURNMetrics?, logger: Logger) throws {
        self.engine = engine
        self.logger = logger
        self.metrics = metrics
        self.settings = settings
        self.relayBindIP = relayBindIP
        self.streams = streams
        poll = try EventPoll()
        wakeup = try Wakeup()
        listenerFD = try UDPSocket.bind(listen, receiveBuffer: settings.listenerBuffer, sendBuffer: settings.listenerBuffer)
        listenerAddress = UDPSocket.localAddress(listenerFD) ?? listen
        slots = ReceiveSlots(slotCount: settings.slots, slotSize: settings.slotSize)
        queue = SendQueue(capacity: 512, arenaSize: 256 * 1024, segmentation: settings.segmentation)
        do {
            try poll.add(listenerFD, token: TURNEdge.listenerToken)
            try poll.add(wakeup.fd, token: TURNEdge.wakeToken)
        } catch {
            close(listenerFD)
            throw error
        }
    }

    /// The sockets; the poll set and the wakeup close with this object.
    private func closeSockets() {
        for fd in relayFDs.values { close(fd) }
        relayFDs = [:]
        relayByFD = [:]
        close(listenerFD)
    }

    // MARK: - Thread

    /// Starts the loop on its own thread.
    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "parley-turn-udp"
        thread.start()
    }

    /// Hands `items` to the loop and wakes it. After `stop()`, tasks run on
    /// the caller's thread (the loop has let go of its state) and the rest is dropped.
    func post(_ items: [Inbound]) {
        let accepted = inbox.withLock { box -> Bool in
            guard !box.stopped else { return false }
            box.items.append(contentsOf: items)
            return true
        }
        if accepted {
            wakeup.signal()
        } else {
            // The loop is closing down: wait until it has let go of its state.
            while !exited.load(ordering: .acquiring) { sched_yield() }
            for case .task(let body) in items { body(self) }
        }
    }

    /// Runs `body` on the loop's thread and returns its result.
    func submit<T: Sendable>(_ body: @escaping @Sendable (TURNEdge) -> T) async -> T {
        await withCheckedContinuation { continuation in
            post([.task { edge in continuation.resume(returning: body(edge)) }])
        }
    }

    /// Stops the loop, closes every socket, and returns once the thread is done.
    func stop() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            finished.withLock { $0 = continuation }
            post([.task { edge in edge.running = false }])
            if exited.load(ordering: .acquiring) { finished.withLock { $0.take() }?.resume() }
        }
    }

    private func run() {
        if metrics != nil { nextMetrics = MonotonicClock.now() }
        while running {
            let timeout = waitMilliseconds(now: MonotonicClock.now())
            let ready = poll.wait(timeoutMilliseconds: timeout)
            if ready < 0 {
                logger.error("TURN epoll_wait failed", metadata: ["errno": "\(-ready)"])
                break
            }
            var now = MonotonicClock.now()
            for e in 0..<ready {
                let token = poll.token(e)
                if token == TURNEdge.listenerToken {
                    readListener(now: &now)
                } else if token == TURNEdge.wakeToken {
                    drainInbox(now: now)
                } else {
                    let fd = Int32(truncatingIfNeeded: token)
                    if let relay = relayByFD[fd] { readRelay(fd, relay: relay, now: now) }
                }
            }
            if let deadline = engine.pollTimeout(), deadline <= now {
                engine.handleTimeout(now: now)
                drainActions(now: now)
            }
            endCycle()
            if let at = nextMetrics, at <= now {
                syncMetrics()
                nextMetrics = now + .milliseconds(250)
            }
        }
        // Shutdown: nothing more is accepted; run what was posted meanwhile.
        let left = inbox.withLock { box -> [Inbound] in
            box.stopped = true
            defer { box.items = [] }
            return box.items
        }
        for case .task(let body) in left { body(self) }
        endCycle()
        syncMetrics()
        closeSockets()
        exited.store(true, ordering: .releasing)
        finished.withLock { $0.take() }?.resume()
    }

    private func waitMilliseconds(now: Instant) -> Int32 {
        var deadline = engine.pollTimeout()
        if let m = nextMetrics { deadline = deadline.map { min($0, m) } ?? m }
        guard let deadline else { return 1000 }
        let nanos = (deadline - now).nanoseconds
        if nanos <= 0 { return 0 }
        return Int32(min(1000, (nanos + 999_999) / 1_000_000))
    }

    /// Sends what the cycle queued, then lets the receive slots go.
    private func endCycle() {
        queue.flush()
        slots.reset()
        if !streamOutput.isEmpty {
            streams.deliver(streamOutput)
            streamOutput.removeAll(keepingCapacity: true)
        }
    }

    // MARK: - Input

    /// Datagrams from clients: read until the socket is empty or a few
    /// batches went by (so relays get their turn).
    private func readListener(now: inout Instant) {
        for _ in 0..<4 {
            if slots.free < settings.listenerBatch { endCycle() }
            let (first, count) = slots.receive(from: listenerFD, limit: settings.listenerBatch)
            if count < 0 { receiveErrors += 1 }
            guard count > 0 else { return }
            for slot in first..<(first + count) { clientDatagram(slot, now: now) }
            if count < settings.listenerBatch { return }
            now = MonotonicClock.now()
        }
    }

    private func clientDatagram(_ slot: Int, now: Instant) {
        let d = slots.datagram(slot)
        guard let client = SocketAddressBytes.read(d.source, length: d.sourceLength) else { return }
        if d.truncated { truncated += 1 }
        let bytes = d.bytes
        guard let first = bytes.first else {
            engine.handleClientPacket(bytes, from: client, transport: .udp, now: now)
            return
        }
        if first & 0xC0 == 0x40 {
            // ChannelData: the payload leaves from the receive slot.
            guard let route = engine.routeChannelData(bytes, from: client, transport: .udp, now: now),
                  let relayFD = relayFDs[route.relay.port] else { return }
            queue.append(fd: relayFD, to: route.peer, payload: UnsafeRawBufferPointer(rebasing: bytes[route.payload]))
            return
        }
        var handled = true
        queue.append(fd: listenerFD, to: client, reserving: TURNServer.bindingResponseCapacity) { out in
            switch engine.answerBinding(bytes, from: client, now: now, into: out) {
            case .answered(let count): return count
            case .dropped: return nil
            case .notHandled:
                handled = false
                return nil
            }
        }
        guard !handled else { return }
        engine.handleClientPacket(bytes, from: client, transport: .udp, now: now)
        drainActions(now: now)
    }

    private func readRelay(_ fd: Int32, relay: TransportAddress, now: Instant) {
        if slots.free < settings.relayBatch { endCycle() }
        let (first, count) = slots.receive(from: fd, limit: settings.relayBatch)
        if count < 0 { receiveErrors += 1 }
        guard count > 0 else { return }
        for slot in first..<(first + count) {
            let d = slots.datagram(slot)
            guard let peer = SocketAddressBytes.read(d.source, length: d.sourceLength) else { continue }
            if d.truncated { truncated += 1 }
            let bytes = d.bytes
            switch engine.routePeerData(bytes, relay: relay, from: peer, now: now) {
            case .channelData(let channel, let client, let transport, let padding)?:
                switch transport {
                case .udp:
                    // A 4-byte header from the queue's arena, the payload from the slot.
                    queue.append(fd: listenerFD, to: client, reserving: 4, payload: bytes) { out in
                        out.storeBytes(of: channel.bigEndian, toByteOffset: 0, as: UInt16.self)
                        out.storeBytes(of: UInt16(truncatingIfNeeded: bytes.count).bigEndian, toByteOffset: 2, as: UInt16.self)
                        return 4
                    }
                case .tcp(let id), .tls(let id):
                    var framed = [UInt8]()
                    framed.reserveCapacity(4 + bytes.count + padding)
                    framed.append(UInt8(channel >> 8))
                    framed.append(UInt8(truncatingIfNeeded: channel))
                    framed.append(UInt8(truncatingIfNeeded: bytes.count >> 8))
                    framed.append(UInt8(truncatingIfNeeded: bytes.count))
                    framed.append(contentsOf: bytes)
                    framed.append(contentsOf: repeatElement(0, count: padding))
                    streamOutput.append(.write(id, framed))
                }
            case .queued?:
                drainActions(now: now)
            case nil:
                break
            }
        }
    }

    private func drainInbox(now: Instant) {
        wakeup.drain()
        let items = inbox.withLock { box -> [Inbound] in
            defer { box.items.removeAll(keepingCapacity: true) }
            return box.items
        }
        for item in items {
            switch item {
            case .streamMessage(let bytes, let client, let transport):
                bytes.withUnsafeBytes { streamMessage($0, from: client, transport: transport, now: now) }
            case .streamClosed(let id):
                engine.handleConnectionClosed(id, now: now)
                drainActions(now: now)
            case .task(let body):
                body(self)
            }
        }
    }

    private func streamMessage(_ bytes: UnsafeRawBufferPointer, from client: TransportAddress, transport: TURNTransport,
                               now: Instant) {
        if let first = bytes.first, first & 0xC0 == 0x40 {
            // The message dies with this call: copy the payload into the queue.
            guard let route = engine.routeChannelData(bytes, from: client, transport: transport, now: now),
                  let relayFD = relayFDs[route.relay.port] else { return }
            queue.append(fd: relayFD, to: route.peer, copying: UnsafeRawBufferPointer(rebasing: bytes[route.payload]))
            return
        }
        engine.handleClientPacket(bytes, from: client, transport: transport, now: now)
        drainActions(now: now)
    }

    // MARK: - Engine actions

    private func drainActions(now: Instant) {
        while let action = engine.pollAction() {
            switch action {
            case .sendToClient(let bytes, let client, let transport):
                switch transport {
                case .udp:
                    bytes.withUnsafeBytes { queue.append(fd: listenerFD, to: client, copying: $0) }
                case .tcp(let id), .tls(let id):
                    streamOutput.append(.write(id, bytes))
                }
            case .sendToPeer(let bytes, let relay, let peer):
                guard let fd = relayFDs[relay.port] else { continue }
                bytes.withUnsafeBytes { queue.append(fd: fd, to: peer, copying: $0) }
            case .bindRelay(let relay, let id):
                bindRelay(relay, id: id, now: now)
            case .closeRelay(let relay):
                closeRelay(port: relay.port)
            case .closeConnection(let id):
                streamOutput.append(.close(id))
            }
        }
    }

    private func bindRelay(_ relay: TransportAddress, id: TURNAllocationID, now: Instant) {
        let fd: Int32
        do {
            // Only queued bytes use kernel memory, so a deep limit costs nothing idle.
            // An IPv6 relay (RFC 8656 §7.2 REQUESTED-ADDRESS-FAMILY) binds its own address.
            let ip = relay.ip.isV4 == relayBindIP.isV4 ? relayBindIP : relay.ip
            fd = try UDPSocket.bind(TransportAddress(ip: ip, port: relay.port),
                                    receiveBuffer: settings.relayBuffer, sendBuffer: settings.relayBuffer)
        } catch {
            logger.debug("relay bind failed", metadata: ["port": "\(relay.port)", "error": "\(error)"])
            engine.relayBindFailed(id, now: now)
            return
        }
        do {
            try poll.add(fd, token: UInt64(UInt32(bitPattern: fd)))
        } catch {
            logger.error("relay socket not watched", metadata: ["port": "\(relay.port)", "error": "\(error)"])
            close(fd)
            engine.relayBindFailed(id, now: now)
            return
        }
        guard engine.relayBound(id, now: now) else {
            close(fd)  // also leaves the poll set
            return
        }
        relayFDs[relay.port] = fd
        relayByFD[fd] = relay
    }

    private func closeRelay(port: UInt16) {
        guard let fd = relayFDs.removeValue(forKey: port) else { return }
        // Datagrams queued for this socket go first: its number may be reused.
        queue.flush()
        relayByFD[fd] = nil
        close(fd)  // also leaves the epoll set
    }

    // MARK: - Introspection (on the loop's thread)

    var relayCount: Int { relayFDs.count }
    var allocationCount: Int { engine.allocationCount }
    var counters: TURNCounters { engine.counters }

    func syncMetrics() {
        metrics?.sync(engine.counters, framingErrors: streams.framingErrors, allocations: engine.allocationCount,
                      relays: relayFDs.count, streams: streams.connectionCount,
                      io: TURNIOCounters(sendFailures: queue.failed, receiveErrors: receiveErrors, truncated: truncated,
                                         segmented: queue.segmented))
    }
}

/// The edge's own socket-level counters.
struct TURNIOCounters {
    var sendFailures = 0
    var receiveErrors = 0
    var truncated = 0
    /// Datagrams sent as part of a GSO run.
    var segmented = 0
}
