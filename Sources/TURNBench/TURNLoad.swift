import NIOCore
import NIOPosix
import RTCBase
import STUN

/// Builders below run only after Allocate has set credentials.
func need(_ c: LongTermCredentials?) throws(STUNError) -> LongTermCredentials {
    guard let c else { throw .integrityMissing }
    return c
}

/// One TURN client socket for the allocation-weighing part of the bench:
/// answers its control transactions (with retransmission, RFC 8489 §6.2.1).
/// All state is touched on the channel's event loop.
final class TURNClientHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    let server: SocketAddress
    private var context: ChannelHandlerContext?
    private var pending: [STUNTransactionID: EventLoopPromise<[UInt8]>] = [:]

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
            guard STUNMessageType.looksLikeSTUN(bytes), let tid = STUNTransactionID(bytes: bytes[8..<20]),
                  let promise = pending.removeValue(forKey: tid) else { return }
            promise.succeed(Array(bytes))
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {}
}

/// A TURN client: its socket and, after `allocate()`, its relayed address.
/// Driven by one task at a time (setup is sequential per client).
final class TURNClient: @unchecked Sendable {
    let channel: any Channel
    let handler: TURNClientHandler
    private var retry: TURNCredentialRetry
    var credentials: LongTermCredentials? { retry.credentials }
    private(set) var relayed: TransportAddress?

    private init(channel: any Channel, handler: TURNClientHandler, username: String, password: String) {
        self.channel = channel
        self.handler = handler
        retry = TURNCredentialRetry(username: username, password: password)
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
        for _ in 0..<TURNCredentialRetry.attempts {
            let tid = STUNTransactionID.random(using: &rng)
            let bytes = try build(tid, credentials)
            let loop = channel.eventLoop
            let handler = self.handler
            let answer = try await loop.flatSubmit { handler.transact(bytes, transactionID: tid, on: loop) }.get()
            if let message = try retry.handle(answer, method: method, transactionID: tid) { return message }
        }
        throw retry.exhausted(method)
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
