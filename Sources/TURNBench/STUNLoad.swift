import NIOCore
import NIOPosix
import RTCBase
import STUN

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

/// One UDP socket keeping `window` Binding requests in flight (closed loop:
/// each valid answer sends the next request). Transaction ids are
/// `(socket's random high word, generation << 16 | slot)`, so an answer finds
/// its slot without a dictionary. Everything runs on the channel's event loop.
final class BindingLoadHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    let server: SocketAddress
    let window: Int
    let timeoutNanos: UInt64
    let idHigh = UInt32.random(in: 0...UInt32.max)
    private var context: ChannelHandlerContext?
    private var mapped: TransportAddress?
    private var slotLow: [UInt64]
    private var slotSentAt: [UInt64]
    private var slotBusy: [Bool]
    private var generation: UInt64 = 0
    private var sending = false
    private(set) var counters = BindingCounters()

    init(server: SocketAddress, window: Int, timeoutNanos: UInt64) {
        self.server = server
        self.window = window
        self.timeoutNanos = timeoutNanos
        slotLow = Array(repeating: 0, count: window)
        slotSentAt = Array(repeating: 0, count: window)
        slotBusy = Array(repeating: false, count: window)
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func start() {
        guard let context else { return }
        mapped = transportAddress(context.channel.localAddress)
        sending = true
        for slot in 0..<window { send(slot: slot, now: monotonicNanos()) }
        context.flush()
    }

    func stopSending() { sending = false }

    private func send(slot: Int, now: UInt64) {
        guard let context else { return }
        generation &+= 1
        let low = (generation << 16) | UInt64(slot)
        var buffer = context.channel.allocator.buffer(capacity: BindingProbe.requestSize)
        let tid = STUNTransactionID(high: idHigh, low: low)
        let written = try? buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: BindingProbe.requestSize) { raw in
            try BindingProbe.writeRequest(transactionID: tid, into: raw)
        }
        guard written != nil else { return }
        slotLow[slot] = low
        slotSentAt[slot] = now
        slotBusy[slot] = true
        counters.sent += 1
        context.write(wrapOutboundOut(AddressedEnvelope(remoteAddress: server, data: buffer)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        guard let mapped else { return }
        let checked = envelope.data.withUnsafeReadableBytes { bytes -> Result<STUNTransactionID, BindingCheckError> in
            do throws(BindingCheckError) { return .success(try BindingProbe.validateResponse(bytes, mapped: mapped)) } catch { return .failure(error) }
        }
        switch checked {
        case .failure(let error):
            counters.invalid += 1
            if counters.firstInvalid == nil { counters.firstInvalid = "\(error)" }
        case .success(let tid):
            let slot = Int(tid.low & 0xFFFF)
            guard tid.high == idHigh, slot < window, slotBusy[slot], slotLow[slot] == tid.low else {
                counters.stale += 1
                return
            }
            slotBusy[slot] = false
            counters.received += 1
            if sending { send(slot: slot, now: monotonicNanos()) }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) { context.flush() }

    /// Gives up on requests older than the timeout (counted lost) and refills their slots.
    func sweep() {
        let now = monotonicNanos()
        var refilled = false
        for slot in 0..<window where slotBusy[slot] && now - slotSentAt[slot] > timeoutNanos {
            slotBusy[slot] = false
            counters.lost += 1
            if sending {
                send(slot: slot, now: now)
                refilled = true
            }
        }
        if refilled { context?.flush() }
    }

    func snapshot() -> BindingCounters {
        var c = counters
        c.outstanding = slotBusy.reduce(0) { $0 + ($1 ? 1 : 0) }
        return c
    }

    /// After the grace period: what is still unanswered is lost.
    func finish() {
        for slot in 0..<window where slotBusy[slot] {
            slotBusy[slot] = false
            counters.lost += 1
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // ICMP port unreachable and the like surface here; the request will time out and count as lost.
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
/// `warmup + duration` seconds; counts answers over `duration` only.
func runBindingLoad(server: ServerUnderTest, loops: [any EventLoop], sockets: Int, window: Int, duration: Double,
                    warmup: Double, say: @escaping @Sendable (String) -> Void) async throws -> STUNLoadResult {
    var handlers: [[BindingLoadHandler]] = Array(repeating: [], count: loops.count)
    var channels: [any Channel] = []
    defer { for c in channels { c.close(promise: nil) } }
    for i in 0..<sockets {
        let li = i % loops.count
        let handler = BindingLoadHandler(server: server.address, window: window, timeoutNanos: 1_000_000_000)
        let channel = try await DatagramBootstrap(group: loops[li])
            .channelOption(.socketOption(.so_rcvbuf), value: 1 << 20)
            .channelOption(.datagramVectorReadMessageCount, value: 32)
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 32 * 256))
            .channelInitializer { channel in channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(handler) } }
            .bind(host: "127.0.0.1", port: 0).get()
        channels.append(channel)
        handlers[li].append(handler)
    }
    let byLoop = handlers
    @Sendable func total() async throws -> BindingCounters {
        var sum = BindingCounters()
        for (li, loop) in loops.enumerated() {
            let mine = byLoop[li]
            sum.add(try await loop.submit { mine.reduce(into: BindingCounters()) { $0.add($1.snapshot()) } }.get())
        }
        return sum
    }
    var sweeps: [RepeatedTask] = []
    for (li, loop) in loops.enumerated() {
        let mine = handlers[li]
        try await loop.submit { for h in mine { h.start() } }.get()
        sweeps.append(loop.scheduleRepeatedTask(initialDelay: .milliseconds(100), delay: .milliseconds(100)) { _ in
            for h in mine { h.sweep() }
        })
    }
    defer { for s in sweeps { s.cancel() } }

    try await Task.sleep(nanoseconds: UInt64(warmup * 1e9))
    let start = try await total()
    let startTime = monotonicNanos()
    let cpuStart = server.cpuSeconds()
    var previous = start
    var previousTime = startTime
    let seconds = Int(duration.rounded(.up))
    for second in 1...max(1, seconds) {
        let at = startTime + UInt64(min(Double(second), duration) * 1e9)
        let now = monotonicNanos()
        if at > now { try await Task.sleep(nanoseconds: at - now) }
        let snap = try await total()
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

    for (li, loop) in loops.enumerated() {
        let mine = handlers[li]
        try await loop.submit { for h in mine { h.stopSending() } }.get()
    }
    let graceEnd = monotonicNanos() + 1_000_000_000
    while monotonicNanos() < graceEnd, try await total().outstanding > 0 {
        try await Task.sleep(nanoseconds: 20_000_000)
    }
    for (li, loop) in loops.enumerated() {
        let mine = handlers[li]
        try await loop.submit { for h in mine { h.finish() } }.get()
    }
    let totals = try await total()
    var cores: Double?
    if let cpuStart, let cpuEnd, measured > 0 { cores = (cpuEnd - cpuStart) / measured }
    return STUNLoadResult(responsesPerSecond: Double(end.received - start.received) / measured, seconds: measured,
                          totals: totals, serverCores: cores)
}
