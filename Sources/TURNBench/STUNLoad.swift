import Foundation
import Glibc
import NIOCore
import NIOPosix
import RTCBase
import STUN
import Synchronization
import UDPIO

/// Counters of the STUN load, summed over sockets.
struct BindingCounters: Sendable {
    var sent = 0
    var received = 0
    /// Requests with no valid answer within the timeout (or by the end of the grace period).
    var lost = 0
    /// Answers that failed validation (wrong type, fingerprint, mapped address).
    var invalid = 0
    /// Answers to requests already given up as lost, or with an unknown transaction id.
    var stale = 0
    var outstanding = 0
    var firstInvalid: String?

    mutating func add(_ o: BindingCounters) {
        sent += o.sent; received += o.received; lost += o.lost; invalid += o.invalid; stale += o.stale
        outstanding += o.outstanding
        if firstInvalid == nil { firstInvalid = o.firstInvalid }
    }
}

/// One UDP socket's requests in flight. Transaction ids are `(socket's
/// random high word, generation << 16 | slot)`, so an answer finds its slot
/// without a dictionary.
private final class BindingSocket {
    let fd: Int32
    let mapped: TransportAddress
    let idHigh = UInt32.random(in: 0...UInt32.max)
    var slotLow: [UInt64]
    var slotSentAt: [UInt64]
    var slotBusy: [Bool]
    var generation: UInt64 = 0

    init(fd: Int32, mapped: TransportAddress, window: Int) {
        self.fd = fd
        self.mapped = mapped
        slotLow = Array(repeating: 0, count: window)
        slotSentAt = Array(repeating: 0, count: window)
        slotBusy = Array(repeating: false, count: window)
    }
}

/// A thread driving a share of the sockets, closed loop: each valid answer
/// sends the next request. It reads with recvmmsg and writes with sendmmsg
/// (the same raw-socket path as Parley's TURN edge) so the generator costs
/// well under what the servers it measures spend per request, and one bench
/// CPU can saturate one server CPU.
final class BindingLoadThread: @unchecked Sendable {
    private let server: TransportAddress
    private let window: Int
    private let timeoutNanos: UInt64
    private let sockets: [BindingSocket]
    private let poll: EventPoll
    private let slots = ReceiveSlots(slotCount: 64, slotSize: 256)
    private let queue = SendQueue(capacity: 1024, arenaSize: 64 * 1024)
    private var counters = BindingCounters()
    private var outstanding = 0
    private let published = Mutex(BindingCounters())
    private let sending = Atomic<Bool>(true)
    private let finishing = Atomic<Bool>(false)
    private let done = Mutex<CheckedContinuation<Void, Never>?>(nil)
    private let exited = Atomic<Bool>(false)

    init(server: TransportAddress, sockets count: Int, window: Int, timeoutNanos: UInt64) throws {
        self.server = server
        self.window = window
        self.timeoutNanos = timeoutNanos
        poll = try EventPoll()
        var made: [BindingSocket] = []
        do {
            for i in 0..<count {
                let fd = try UDPSocket.bind(TransportAddress(ip: .v4(0x7F00_0001), port: 0), receiveBuffer: 1 << 20,
                                            sendBuffer: 1 << 20)
                guard let mapped = UDPSocket.localAddress(fd) else {
                    close(fd)
                    throw TURNBenchError("getsockname failed on a bench socket")
                }
                made.append(BindingSocket(fd: fd, mapped: mapped, window: window))
                try poll.add(fd, token: UInt64(i))
            }
        } catch {
            for s in made { close(s.fd) }
            throw error
        }
        sockets = made
    }

    /// Starts sending; the thread inherits the caller's CPU affinity.
    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "parley-bench-stun"
        thread.start()
    }

    func snapshot() -> BindingCounters { published.withLock { $0 } }
    func stopSending() { sending.store(false, ordering: .relaxed) }

    /// Counts what is still unanswered as lost, closes the sockets, returns when the thread is done.
    func finish() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            done.withLock { $0 = continuation }
            finishing.store(true, ordering: .releasing)
            if exited.load(ordering: .acquiring) { done.withLock { $0.take() }?.resume() }
        }
    }

    private func run() {
        let start = monotonicNanos()
        for socket in sockets {
            for slot in 0..<window { send(socket, slot: slot, now: start) }
            queue.flush()
        }
        var nextSweep = start + 100_000_000
        while !finishing.load(ordering: .acquiring) {
            let ready = poll.wait(timeoutMilliseconds: 10)
            let now = monotonicNanos()
            let keepSending = sending.load(ordering: .relaxed)
            for e in 0..<max(0, ready) {
                let socket = sockets[Int(poll.token(e))]
                let (first, count) = slots.receive(from: socket.fd, limit: slots.slotCount)
                for slot in first..<(first + max(0, count)) { answer(socket, slots.datagram(slot).bytes, now: now, send: keepSending) }
                queue.flush()
                slots.reset()
            }
            if now >= nextSweep {
                sweep(now: now, send: keepSending)
                nextSweep = now + 100_000_000
            }
            publish()
        }
        // After the grace period: what is still unanswered is lost.
        for socket in sockets {
            for slot in 0..<window where socket.slotBusy[slot] {
                socket.slotBusy[slot] = false
                counters.lost += 1
                outstanding -= 1
            }
            close(socket.fd)
        }
        publish()
        exited.store(true, ordering: .releasing)
        done.withLock { $0.take() }?.resume()
    }

    private func publish() {
        var c = counters
        c.outstanding = outstanding
        published.withLock { $0 = c }
    }

    private func send(_ socket: BindingSocket, slot: Int, now: UInt64) {
        socket.generation &+= 1
        let low = (socket.generation << 16) | UInt64(slot)
        let tid = STUNTransactionID(high: socket.idHigh, low: low)
        var ok = false
        queue.append(fd: socket.fd, to: server, reserving: BindingProbe.requestSize) { out in
            guard let n = try? BindingProbe.writeRequest(transactionID: tid, into: out) else { return nil }
            ok = true
            return n
        }
        guard ok else { return }
        socket.slotLow[slot] = low
        socket.slotSentAt[slot] = now
        socket.slotBusy[slot] = true
        counters.sent += 1
        outstanding += 1
    }

    private func answer(_ socket: BindingSocket, _ bytes: UnsafeRawBufferPointer, now: UInt64, send keepSending: Bool) {
        let tid: STUNTransactionID
        do throws(BindingCheckError) {
            tid = try BindingProbe.validateResponse(bytes, mapped: socket.mapped)
        } catch {
            counters.invalid += 1
            if counters.firstInvalid == nil { counters.firstInvalid = "\(error)" }
            return
        }
        let slot = Int(tid.low & 0xFFFF)
        guard tid.high == socket.idHigh, slot < window, socket.slotBusy[slot], socket.slotLow[slot] == tid.low else {
            counters.stale += 1
            return
        }
        socket.slotBusy[slot] = false
        counters.received += 1
        outstanding -= 1
        if keepSending { send(socket, slot: slot, now: now) }
    }

    /// Gives up on requests older than the timeout (counted lost) and refills their slots.
    private func sweep(now: UInt64, send keepSending: Bool) {
        for socket in sockets {
            for slot in 0..<window where socket.slotBusy[slot] && now - socket.slotSentAt[slot] > timeoutNanos {
                socket.slotBusy[slot] = false
                counters.lost += 1
                outstanding -= 1
                if keepSending { send(socket, slot: slot, now: now) }
            }
        }
        queue.flush()
    }
}

struct STUNLoadResult: Sendable {
    var responsesPerSecond: Double
    var seconds: Double
    var totals: BindingCounters
    /// Server CPU use over the measured window, in cores (1.0 = one core busy), when its pid is known.
    var serverCores: Double?
    var lostPercent: Double { totals.sent > 0 ? Double(totals.lost) * 100 / Double(totals.sent) : 0 }
}

/// Closed-loop STUN load: `sockets` sockets × `window` requests in flight for
/// `warmup + duration` seconds, on one generator thread per bench event loop
/// (started from that loop, so it keeps its CPU pinning); counts answers over
/// `duration` only.
func runBindingLoad(server: ServerUnderTest, loops: [any EventLoop], sockets: Int, window: Int, duration: Double,
                    warmup: Double, say: @escaping @Sendable (String) -> Void) async throws -> STUNLoadResult {
    guard let target = transportAddress(server.address) else { throw TURNBenchError("bad server address \(server.address)") }
    var threads: [BindingLoadThread] = []
    for (li, loop) in loops.enumerated() {
        let share = sockets / loops.count + (li < sockets % loops.count ? 1 : 0)
        guard share > 0 else { continue }
        let thread = try BindingLoadThread(server: target, sockets: share, window: window, timeoutNanos: 1_000_000_000)
        threads.append(thread)
        try await loop.submit { thread.start() }.get()
    }
    let all = threads
    func total() -> BindingCounters {
        all.reduce(into: BindingCounters()) { $0.add($1.snapshot()) }
    }
    var finished = false
    defer {
        if !finished { for t in all { t.stopSending() }; Task { for t in all { await t.finish() } } }
    }

    try await Task.sleep(nanoseconds: UInt64(warmup * 1e9))
    let start = total()
    let startTime = monotonicNanos()
    let cpuStart = server.cpuSeconds()
    var previous = start
    var previousTime = startTime
    let seconds = Int(duration.rounded(.up))
    for second in 1...max(1, seconds) {
        let at = startTime + UInt64(min(Double(second), duration) * 1e9)
        let now = monotonicNanos()
        if at > now { try await Task.sleep(nanoseconds: at - now) }
        let snap = total()
        let t = monotonicNanos()
        let rate = Double(snap.received - previous.received) / (Double(t - previousTime) / 1e9)
        say("t=\(second)s \(server.kind.rawValue) stun: \(SummaryLine.whole(rate)) resp/s, received \(snap.received - start.received), "
            + "lost \(snap.lost) invalid \(snap.invalid) in flight \(snap.outstanding)")
        previous = snap
        previousTime = t
    }
    let end = previous
    let endTime = previousTime
    let cpuEnd = server.cpuSeconds()
    let measured = Double(endTime - startTime) / 1e9

    for t in all { t.stopSending() }
    let graceEnd = monotonicNanos() + 1_000_000_000
    while monotonicNanos() < graceEnd, total().outstanding > 0 {
        try await Task.sleep(nanoseconds: 20_000_000)
    }
    finished = true
    for t in all { await t.finish() }
    let totals = total()
    var cores: Double?
    if let cpuStart, let cpuEnd, measured > 0 { cores = (cpuEnd - cpuStart) / measured }
    return STUNLoadResult(responsesPerSecond: Double(end.received - start.received) / measured, seconds: measured,
                          totals: totals, serverCores: cores)
}
