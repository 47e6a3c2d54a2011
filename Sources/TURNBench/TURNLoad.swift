import NIOCore
import NIOPosix
import RTCBase
import STUN

/// Builders below run only after Allocate has set credentials.
private func need(_ c: LongTermCredentials?) throws(STUNError) -> LongTermCredentials {
    guard let c else { throw .integrityMissing }
    return c
}

/// One TURN client socket: answers its control transactions (with
/// retransmission, RFC 8489 §6.2.1) and, on the data path, sends or counts
/// ChannelData. All state is touched on the channel's event loop.
final class TURNClientHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    let server: SocketAddress
    private var context: ChannelHandlerContext?
    private var pending: [STUNTransactionID: EventLoopPromise<[UInt8]>] = [:]

    // Data path.
    var step: UInt32 = 0
    var delivered = 0
    var sent = 0
    var pairIndex: UInt32 = 0
    var payloadSize = 1200
    var channelNumber: UInt16 = 0x4000
    private var sequence: UInt64 = 0
    private var unflushed = false

    init(server: SocketAddress) { self.server = server }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    /// Sends `bytes` and retransmits at 500 ms, 1 s, 2 s, 4 s until answered; fails after ~7.5 s.
    func transact(_ bytes: [UInt8], transactionID: STUNTransactionID, on loop: any EventLoop) -> EventLoopFuture<[UInt8]> {
        let promise = loop.makePromise(of: [UInt8].self)
        pending[transactionID] = promise
        transmit(bytes, transactionID: transactionID, attempt: 0, loop: loop)
        return promise.futureResult
    }

    private func transmit(_ bytes: [UInt8], transactionID: STUNTransactionID, attempt: Int, loop: any EventLoop) {
        guard pending[transactionID] != nil else { return }
        guard attempt < 5, let context else {
            pending.removeValue(forKey: transactionID)?.fail(TURNBenchError("no answer to a TURN request after \(attempt) tries"))
            return
        }
        var buffer = context.channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        context.writeAndFlush(wrapOutboundOut(AddressedEnvelope(remoteAddress: server, data: buffer)), promise: nil)
        loop.scheduleTask(in: .milliseconds(500 << Int64(attempt))) { [self] in
            transmit(bytes, transactionID: transactionID, attempt: attempt + 1, loop: loop)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        envelope.data.withUnsafeReadableBytes { bytes in
            if let message = RelayPayload.read(bytes) {
                if message.step == step { delivered += 1 }
                return
            }
            guard STUNMessageType.looksLikeSTUN(bytes), let tid = STUNTransactionID(bytes: bytes[8..<20]),
                  let promise = pending.removeValue(forKey: tid) else { return }
            promise.succeed(Array(bytes))
        }
    }

    /// Writes one ChannelData message (flushed by `flushIfNeeded`).
    func sendData() {
        guard let context else { return }
        let size = payloadSize
        var buffer = context.channel.allocator.buffer(capacity: size + 4)
        let (channel, step, pair, seq) = (channelNumber, step, pairIndex, sequence)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size + 4) { raw in
            RelayPayload.write(channel: channel, size: size, step: step, pair: pair, sequence: seq, into: raw)
        }
        sequence &+= 1
        sent += 1
        unflushed = true
        context.write(wrapOutboundOut(AddressedEnvelope(remoteAddress: server, data: buffer)), promise: nil)
    }

    func flushIfNeeded() {
        guard unflushed else { return }
        unflushed = false
        context?.flush()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {}
}

/// A TURN client: its socket and, after `allocate()`, its relayed address.
/// Driven by one task at a time (setup is sequential per client).
final class TURNClient: @unchecked Sendable {
    let channel: any Channel
    let handler: TURNClientHandler
    let username: String
    let password: String
    private(set) var credentials: LongTermCredentials?
    private(set) var relayed: TransportAddress?

    private init(channel: any Channel, handler: TURNClientHandler, username: String, password: String) {
        self.channel = channel
        self.handler = handler
        self.username = username
        self.password = password
    }

    static func open(server: ServerUnderTest, loop: any EventLoop) async throws -> TURNClient {
        let handler = TURNClientHandler(server: server.address)
        let channel = try await DatagramBootstrap(group: loop)
            .channelOption(.socketOption(.so_rcvbuf), value: 1 << 21)
            .channelOption(.socketOption(.so_sndbuf), value: 1 << 21)
            .channelOption(.datagramVectorReadMessageCount, value: 16)
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 16 * 2048))
            .channelInitializer { channel in channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(handler) } }
            .bind(host: "127.0.0.1", port: 0).get()
        return TURNClient(channel: channel, handler: handler, username: server.username, password: server.password)
    }

    /// One authenticated request: answers a 401 with the long-term key for the
    /// server's realm and nonce and a 438 with the new nonce (RFC 8489 §9.2.3-9.2.4).
    func request(_ method: STUNMethod,
                 build: @escaping (STUNTransactionID, LongTermCredentials?) throws(STUNError) -> [UInt8]) async throws -> STUNMessage {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<4 {
            let tid = STUNTransactionID.random(using: &rng)
            let bytes = try build(tid, credentials)
            let loop = channel.eventLoop
            let handler = self.handler
            let answer = try await loop.flatSubmit { handler.transact(bytes, transactionID: tid, on: loop) }.get()
            switch try TURNClientMessages.parseReply(answer, method: method, transactionID: tid, credentials: credentials) {
            case .success(let message):
                return message
            case .challenge(let realm, let nonce):
                credentials = LongTermCredentials(username: username, password: password, realm: realm, nonce: nonce)
            case .staleNonce(let nonce):
                guard credentials != nil else { throw TURNBenchError("\(method): 438 before any 401") }
                credentials?.nonce = nonce
            case .failure(let code):
                throw TURNBenchError("\(method) refused: \(code)")
            }
        }
        throw TURNBenchError("\(method): still challenged after 4 tries")
    }

    func allocate() async throws -> TransportAddress {
        let message = try await request(.allocate) { tid, c throws(STUNError) in try TURNClientMessages.allocate(transactionID: tid, credentials: c) }
        for case .xorRelayedAddress(let address) in message.attributes {
            relayed = address
            return address
        }
        throw TURNBenchError("Allocate success without XOR-RELAYED-ADDRESS")
    }

    private func requireCredentials() throws -> LongTermCredentials {
        guard let credentials else { throw TURNBenchError("no credentials: allocate first") }
        return credentials
    }

    /// CreatePermission then ChannelBind towards `peer` (both install the permission; RFC 8656 §9, §12).
    func bind(channel number: UInt16, to peer: TransportAddress) async throws {
        _ = try requireCredentials()
        _ = try await request(.createPermission) { tid, c throws(STUNError) in
            try TURNClientMessages.createPermission(transactionID: tid, peer: peer, credentials: try need(c))
        }
        _ = try await request(.channelBind) { tid, c throws(STUNError) in
            try TURNClientMessages.channelBind(transactionID: tid, channel: number, peer: peer, credentials: try need(c))
        }
        let handler = self.handler
        try await channel.eventLoop.submit { handler.channelNumber = number }.get()
    }

    /// Refresh with LIFETIME 0 (frees the relay port at once), then close the socket.
    func close() async {
        if credentials != nil, relayed != nil {
            _ = try? await request(.refresh) { tid, c throws(STUNError) in
                try TURNClientMessages.refresh(transactionID: tid, lifetime: 0, credentials: try need(c))
            }
        }
        try? await channel.close()
    }
}

/// Paces ChannelData sends for the clients on one event loop: every
/// millisecond it sends what the rate says is due. If the loop falls behind
/// by more than 5 ms worth it drops the backlog instead of bursting (a burst
/// would overflow socket buffers and look like server loss); the shortfall
/// shows up as a step the generator could not deliver.
final class Pacer: @unchecked Sendable {
    let senders: [TURNClientHandler]
    let rate: Double
    let start: UInt64
    let end: UInt64
    let planned: Int
    let done: EventLoopPromise<Void>
    private var next = 0
    private var sent = 0
    private var skipped = 0
    private var task: RepeatedTask?

    init(senders: [TURNClientHandler], rate: Double, start: UInt64, seconds: Double, done: EventLoopPromise<Void>) {
        self.senders = senders
        self.rate = rate
        self.start = start
        self.end = start + UInt64(seconds * 1e9)
        self.planned = Int((rate * seconds).rounded())
        self.done = done
    }

    func run(on loop: any EventLoop) {
        task = loop.scheduleRepeatedTask(initialDelay: .zero, delay: .milliseconds(1)) { [self] task in
            tick(task)
        }
    }

    private func tick(_ task: RepeatedTask) {
        let now = monotonicNanos()
        guard now >= start, !senders.isEmpty else { return }
        let due = now >= end ? planned : min(planned, Int(rate * Double(now - start) / 1e9))
        var want = due - sent - skipped
        let cap = max(8, Int(rate * 0.005))
        if want > cap {
            skipped += want - cap
            want = cap
        }
        if want > 0 {
            for _ in 0..<want {
                senders[next].sendData()
                next = next + 1 == senders.count ? 0 : next + 1
            }
            sent += want
            for s in senders { s.flushIfNeeded() }
        }
        if now >= end {
            task.cancel()
            done.succeed()
        }
    }
}

/// A sender and a receiver, each with its own allocation; the sender's
/// ChannelData goes to the receiver's relayed address through both.
struct RelayPair {
    var sender: TURNClient
    var receiver: TURNClient
}

func setUpPairs(count: Int, server: ServerUnderTest, loops: [any EventLoop]) async throws -> [RelayPair] {
    try await withThrowingTaskGroup(of: (Int, RelayPair).self) { group in
        for i in 0..<count {
            group.addTask {
                let loop = loops[i % loops.count]
                let a = try await TURNClient.open(server: server, loop: loop)
                let b = try await TURNClient.open(server: server, loop: loop)
                async let relayA = a.allocate()
                async let relayB = b.allocate()
                let (ra, rb) = try await (relayA, relayB)
                try await a.bind(channel: 0x4000, to: rb)
                try await b.bind(channel: 0x4000, to: ra)
                try await loop.submit { a.handler.pairIndex = UInt32(i) }.get()
                return (i, RelayPair(sender: a, receiver: b))
            }
        }
        var pairs = [RelayPair?](repeating: nil, count: count)
        for try await (i, pair) in group { pairs[i] = pair }
        return pairs.compactMap { $0 }
    }
}

/// One step: `rate` ChannelData messages per second in total for `seconds`,
/// then up to a second for stragglers. Only messages tagged with this step count.
func runRelayStep(step: UInt32, rate: Int, seconds: Double, pairs: [RelayPair], loops: [any EventLoop],
                  payloadSize: Int) async throws -> (result: RelayResult, generatorLimited: Bool) {
    var byLoop: [ObjectIdentifier: (loop: any EventLoop, senders: [TURNClientHandler], receivers: [TURNClientHandler])] = [:]
    for p in pairs {
        let loop = p.sender.channel.eventLoop
        var entry = byLoop[ObjectIdentifier(loop)] ?? (loop, [], [])
        entry.senders.append(p.sender.handler)
        entry.receivers.append(p.receiver.handler)
        byLoop[ObjectIdentifier(loop)] = entry
    }
    let groups = Array(byLoop.values)
    for g in groups {
        let (senders, receivers) = (g.senders, g.receivers)
        try await g.loop.submit {
            for h in senders + receivers {
                h.step = step
                h.sent = 0
                h.delivered = 0
                h.payloadSize = payloadSize
            }
        }.get()
    }
    let start = monotonicNanos() + 5_000_000
    var done: [EventLoopFuture<Void>] = []
    var planned = 0
    for g in groups {
        let share = Double(rate) * Double(g.senders.count) / Double(pairs.count)
        let promise = g.loop.makePromise(of: Void.self)
        let pacer = Pacer(senders: g.senders, rate: share, start: start, seconds: seconds, done: promise)
        planned += pacer.planned
        done.append(promise.futureResult)
        try await g.loop.submit { pacer.run(on: g.loop) }.get()
    }
    for f in done { try await f.get() }

    @Sendable func counts() async throws -> (sent: Int, delivered: Int) {
        var sent = 0, delivered = 0
        for g in groups {
            let (senders, receivers) = (g.senders, g.receivers)
            let c = try await g.loop.submit { (senders.reduce(0) { $0 + $1.sent }, receivers.reduce(0) { $0 + $1.delivered }) }.get()
            sent += c.0
            delivered += c.1
        }
        return (sent, delivered)
    }
    let graceEnd = monotonicNanos() + 1_000_000_000
    var c = try await counts()
    while c.delivered < c.sent, monotonicNanos() < graceEnd {
        try await Task.sleep(nanoseconds: 20_000_000)
        c = try await counts()
    }
    let result = RelayResult(rate: rate, sent: c.sent, delivered: c.delivered, seconds: seconds)
    return (result, c.sent < planned * 97 / 100)
}

/// Allocations without traffic, to weigh what one costs the server.
func openAllocations(count: Int, server: ServerUnderTest, loops: [any EventLoop], concurrency: Int = 64) async throws -> [TURNClient] {
    var clients: [TURNClient] = []
    var next = 0
    try await withThrowingTaskGroup(of: TURNClient.self) { group in
        func add() {
            let i = next
            next += 1
            group.addTask {
                let client = try await TURNClient.open(server: server, loop: loops[i % loops.count])
                _ = try await client.allocate()
                return client
            }
        }
        while next < min(concurrency, count) { add() }
        while let client = try await group.next() {
            clients.append(client)
            if next < count { add() }
        }
    }
    return clients
}

func closeAll(_ clients: [TURNClient], concurrency: Int = 64) async {
    await withTaskGroup(of: Void.self) { group in
        var next = 0
        while next < min(concurrency, clients.count) {
            let c = clients[next]; next += 1
            group.addTask { await c.close() }
        }
        while await group.next() != nil {
            if next < clients.count {
                let c = clients[next]; next += 1
                group.addTask { await c.close() }
            }
        }
    }
}
