import Logging
import NIOCore
import NIOPosix
import RTCBase
import TURN

/// The IO half of the TURN server: it owns one `TURNServer` engine and every
/// socket the engine works through — the UDP listener, the TCP/TLS
/// connections and the relay sockets — all on ONE event loop. The engine is
/// a plain value mutated only from that loop, so nothing on the hot path
/// takes a lock; handlers reach this object through `NIOLoopBound`, which
/// checks the thread in debug builds.
///
/// Writes are batched: handlers write without flushing, and at the end of a
/// read cycle (`channelReadComplete`) or of a timer/bind callback `endCycle`
/// flushes every channel written to, once.
final class TURNEdge {
    let loop: any EventLoop
    var engine: TURNServer
    let logger: Logger
    let metrics: TURNMetrics?
    /// Where relay sockets are bound (the engine names them by the public address).
    let relayBindHost: String
    let vectorReadCount: Int
    let maxDatagramSize: Int

    var listener: (any Channel)?
    var servers: [any Channel] = []
    /// Bound relay sockets by port (relays share one IP, so the port names them).
    var relays: [UInt16: any Channel] = [:]
    var streams: [TURNConnectionID: any Channel] = [:]
    private var nextConnection: UInt64 = 1
    var framingErrors = 0
    private(set) var isClosed = false

    private var timer: Scheduled<Void>?
    private var timerAt: Instant?
    private var metricsTask: Scheduled<Void>?

    /// Channels written to since the last flush.
    private var dirty: [ObjectIdentifier: any Channel] = [:]

    /// Peer → client ChannelData is assembled here (4-byte header, payload,
    /// padding) and sent as slices of this one buffer at the end of the
    /// cycle. Slices are taken only after the cycle's last write, so writing
    /// never copies the storage; once NIO has sent them the storage is ours
    /// again and `clear()` reuses it: no allocation per relayed packet.
    private var arena: ByteBuffer
    private var outbox: [Outgoing] = []
    private struct Outgoing {
        var channel: any Channel
        var address: SocketAddress?
        var offset: Int
        var length: Int
    }

    /// SocketAddress boxes its sockaddr (a heap allocation); relayed packets
    /// go to a handful of addresses, so keep them.
    private var socketAddresses: [TransportAddress: SocketAddress] = [:]

    init(loop: any EventLoop, engine: TURNServer, logger: Logger, metrics: TURNMetrics?, relayBindHost: String,
         vectorReadCount: Int, maxDatagramSize: Int) {
        self.loop = loop
        self.engine = engine
        self.logger = logger
        self.metrics = metrics
        self.relayBindHost = relayBindHost
        self.vectorReadCount = vectorReadCount
        self.maxDatagramSize = maxDatagramSize
        arena = ByteBufferAllocator().buffer(capacity: 256 * 1024)
        outbox.reserveCapacity(vectorReadCount)
    }

    // MARK: - Client input

    /// A datagram on the UDP listener.
    func clientDatagram(_ buffer: ByteBuffer, from remote: SocketAddress) {
        guard !isClosed, let client = AddressConversion.transportAddress(remote) else { return }
        let now = MonotonicClock.now()
        if let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self), first & 0xC0 == 0x40 {
            // Fast path: ChannelData goes out as a slice of the receive buffer.
            let route = buffer.withUnsafeReadableBytes { engine.routeChannelData($0, from: client, transport: .udp, now: now) }
            guard let route, let relay = relays[route.relay.port],
                  let payload = buffer.getSlice(at: buffer.readerIndex + route.payload.lowerBound,
                                                length: route.payload.count) else { return }
            write(AddressedEnvelope(remoteAddress: socketAddress(route.peer), data: payload), to: relay)
            return
        }
        buffer.withUnsafeReadableBytes { engine.handleClientPacket($0, from: client, transport: .udp, now: now) }
        drainActions(now: now)
    }

    /// One message a stream framer cut from a TCP/TLS connection.
    func streamMessage(_ bytes: UnsafeRawBufferPointer, from client: TransportAddress, transport: TURNTransport) {
        guard !isClosed else { return }
        let now = MonotonicClock.now()
        if let first = bytes.first, first & 0xC0 == 0x40 {
            // The payload lives in the framer's buffer: copy it into the arena.
            guard let route = engine.routeChannelData(bytes, from: client, transport: transport, now: now),
                  let relay = relays[route.relay.port] else { return }
            let offset = arena.writerIndex
            arena.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[route.payload]))
            outbox.append(Outgoing(channel: relay, address: socketAddress(route.peer), offset: offset,
                                   length: route.payload.count))
            return
        }
        engine.handleClientPacket(bytes, from: client, transport: transport, now: now)
        drainActions(now: now)
    }

    func registerStream(_ channel: any Channel) -> TURNConnectionID {
        let id = TURNConnectionID(nextConnection)
        nextConnection += 1
        streams[id] = channel
        return id
    }

    func streamClosed(_ id: TURNConnectionID) {
        guard streams.removeValue(forKey: id) != nil, !isClosed else { return }
        engine.handleConnectionClosed(id, now: MonotonicClock.now())
        drainActions(now: MonotonicClock.now())
        endCycle()
    }

    // MARK: - Peer input

    /// A datagram on the relay socket whose public address is `relay`.
    func peerDatagram(_ buffer: ByteBuffer, from remote: SocketAddress, relay: TransportAddress) {
        guard !isClosed, let peer = AddressConversion.transportAddress(remote) else { return }
        let now = MonotonicClock.now()
        let route = buffer.withUnsafeReadableBytes { engine.routePeerData($0, relay: relay, from: peer, now: now) }
        switch route {
        case .channelData(let channel, let client, let transport, let padding)?:
            let target: (any Channel)?
            let address: SocketAddress?
            switch transport {
            case .udp:
                target = listener
                address = socketAddress(client)
            case .tcp(let id), .tls(let id):
                target = streams[id]
                address = nil
            }
            guard let target else { return }
            let offset = arena.writerIndex
            arena.writeInteger(channel)
            arena.writeInteger(UInt16(truncatingIfNeeded: buffer.readableBytes))
            arena.writeImmutableBuffer(buffer)
            if padding > 0 { arena.writeRepeatingByte(0, count: padding) }
            outbox.append(Outgoing(channel: target, address: address, offset: offset, length: arena.writerIndex - offset))
        case .queued?:
            drainActions(now: now)
        case nil:
            break
        }
    }

    func relayClosed(port: UInt16, channel: any Channel) {
        if let current = relays[port], current === channel { relays[port] = nil }
    }

    // MARK: - Engine actions

    func drainActions(now: Instant) {
        while let action = engine.pollAction() {
            switch action {
            case .sendToClient(let bytes, let client, let transport):
                switch transport {
                case .udp:
                    guard let listener else { continue }
                    write(AddressedEnvelope(remoteAddress: socketAddress(client), data: ByteBuffer(bytes: bytes)), to: listener)
                case .tcp(let id), .tls(let id):
                    guard let stream = streams[id] else { continue }
                    stream.write(ByteBuffer(bytes: bytes), promise: nil)
                    markDirty(stream)
                }
            case .sendToPeer(let bytes, let relay, let peer):
                guard let channel = relays[relay.port] else { continue }
                write(AddressedEnvelope(remoteAddress: socketAddress(peer), data: ByteBuffer(bytes: bytes)), to: channel)
            case .bindRelay(let relay, let id):
                bindRelay(relay, id: id)
            case .closeRelay(let relay):
                relays.removeValue(forKey: relay.port)?.close(promise: nil)
            case .closeConnection(let id):
                streams[id]?.close(promise: nil)
            }
        }
    }

    private func bindRelay(_ relay: TransportAddress, id: TURNAllocationID) {
        let bound = NIOLoopBound(self, eventLoop: loop)
        DatagramBootstrap(group: loop)
            // The event loop serves the listener and every relay in turn; a
            // relay's queue must hold what arrives meanwhile (the kernel's
            // default, ~170 full-size datagrams, overflowed at ~12k msg/s).
            // Only queued bytes use memory, so a deep limit costs nothing idle.
            .channelOption(.socketOption(.so_rcvbuf), value: 1 << 20)
            .channelOption(.socketOption(.so_sndbuf), value: 1 << 20)
            .channelOption(.datagramVectorReadMessageCount, value: vectorReadCount)
            // NIO splits one receive buffer evenly among the vector slots.
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: vectorReadCount * maxDatagramSize))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(RelayHandler(edge: bound.value, relay: relay))
                }
            }
            .bind(host: relayBindHost, port: Int(relay.port))
            .assumeIsolated()
            .whenComplete { result in
                let now = MonotonicClock.now()
                switch result {
                case .success(let channel):
                    if self.isClosed || !self.engine.relayBound(id, now: now) {
                        channel.close(promise: nil)
                    } else {
                        self.relays[relay.port] = channel
                    }
                case .failure(let error):
                    self.logger.debug("relay bind failed", metadata: ["port": "\(relay.port)", "error": "\(error)"])
                    if !self.isClosed { self.engine.relayBindFailed(id, now: now) }
                }
                self.drainActions(now: now)
                self.endCycle()
            }
    }

    // MARK: - Output

    private func socketAddress(_ address: TransportAddress) -> SocketAddress {
        if let cached = socketAddresses[address] { return cached }
        if socketAddresses.count >= 4096 { socketAddresses.removeAll(keepingCapacity: true) }
        let made = AddressConversion.socketAddress(address)
        socketAddresses[address] = made
        return made
    }

    private func write(_ envelope: AddressedEnvelope<ByteBuffer>, to channel: any Channel) {
        channel.write(envelope, promise: nil)
        markDirty(channel)
    }

    @inline(__always)
    private func markDirty(_ channel: any Channel) {
        dirty[ObjectIdentifier(channel)] = channel
    }

    /// The end of a read cycle or callback: send what the arena holds, flush
    /// each channel written to once, re-arm the engine's timer.
    func endCycle() {
        if !outbox.isEmpty {
            for item in outbox {
                guard let slice = arena.getSlice(at: item.offset, length: item.length) else { continue }
                if let address = item.address {
                    item.channel.write(AddressedEnvelope(remoteAddress: address, data: slice), promise: nil)
                } else {
                    item.channel.write(slice, promise: nil)
                }
                markDirty(item.channel)
            }
            outbox.removeAll(keepingCapacity: true)
        }
        if !dirty.isEmpty {
            for channel in dirty.values { channel.flush() }
            dirty.removeAll(keepingCapacity: true)
        }
        // Slices sent by now were released by NIO, so this reuses the storage.
        arena.clear()
        armTimer()
    }

    // MARK: - Timers

    private func armTimer() {
        guard !isClosed, let deadline = engine.pollTimeout() else { return }
        if let at = timerAt, at <= deadline { return }
        timer?.cancel()
        timerAt = deadline
        timer = loop.assumeIsolated().scheduleTask(deadline: MonotonicClock.deadline(deadline)) { [self] in
            timerAt = nil
            timer = nil
            guard !isClosed else { return }
            let now = MonotonicClock.now()
            engine.handleTimeout(now: now)
            drainActions(now: now)
            endCycle()
        }
    }

    /// Copies the engine's counters to Prometheus every 250 ms.
    func startMetrics() {
        guard metrics != nil, !isClosed else { return }
        syncMetrics()
        metricsTask = loop.assumeIsolated().scheduleTask(in: .milliseconds(250)) { [self] in startMetrics() }
    }

    func syncMetrics() {
        metrics?.sync(engine.counters, framingErrors: framingErrors, allocations: engine.allocationCount,
                      relays: relays.count, streams: streams.count)
    }

    // MARK: - Shutdown

    /// Closes listeners, connections and relay sockets.
    func close() -> EventLoopFuture<Void> {
        guard !isClosed else { return loop.makeSucceededVoidFuture() }
        isClosed = true
        timer?.cancel()
        metricsTask?.cancel()
        let channels: [any Channel] = (listener.map { [$0] } ?? []) + servers + Array(relays.values) + Array(streams.values)
        listener = nil
        servers = []
        relays = [:]
        streams = [:]
        let closing = channels.map { channel in channel.close().recover { _ in } }
        syncMetrics()
        return EventLoopFuture.andAllComplete(closing, on: loop)
    }
}

// MARK: - Handlers

/// The UDP listener on the TURN port.
final class ListenerHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    private let edge: TURNEdge

    init(edge: TURNEdge) { self.edge = edge }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        edge.clientDatagram(envelope.data, from: envelope.remoteAddress)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        edge.endCycle()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A UDP socket survives errors such as ICMP unreachable: keep serving.
        edge.logger.debug("TURN UDP listener error", metadata: ["error": "\(error)"])
    }
}

/// One relay socket: datagrams from peers.
final class RelayHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    private let edge: TURNEdge
    private let relay: TransportAddress

    init(edge: TURNEdge, relay: TransportAddress) {
        self.edge = edge
        self.relay = relay
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        edge.peerDatagram(envelope.data, from: envelope.remoteAddress, relay: relay)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        edge.endCycle()
    }

    func channelInactive(context: ChannelHandlerContext) {
        edge.relayClosed(port: relay.port, channel: context.channel)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        edge.logger.debug("TURN relay socket error", metadata: ["port": "\(relay.port)", "error": "\(error)"])
    }
}

/// A TURN client over TCP or TLS (behind NIOSSLServerHandler): RFC 8656
/// framing with `TURNStreamFramer`.
final class StreamHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let edge: TURNEdge
    private let secure: Bool
    private var framer: TURNStreamFramer
    private var id: TURNConnectionID?
    private var client: TransportAddress?
    private var transport: TURNTransport = .udp

    init(edge: TURNEdge, secure: Bool, maxMessageSize: Int) {
        self.edge = edge
        self.secure = secure
        framer = TURNStreamFramer(maxMessageSize: maxMessageSize)
    }

    func channelActive(context: ChannelHandlerContext) {
        guard let remote = context.channel.remoteAddress, let client = AddressConversion.transportAddress(remote) else {
            context.close(promise: nil)
            return
        }
        let id = edge.registerStream(context.channel)
        self.id = id
        self.client = client
        transport = secure ? .tls(id) : .tcp(id)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let client else { return }
        let buffer = unwrapInboundIn(data)
        buffer.withUnsafeReadableBytes { framer.append($0) }
        let transport = self.transport
        let edge = self.edge
        do {
            while try framer.withNextMessage({ edge.streamMessage($0, from: client, transport: transport) }) != nil {}
        } catch {
            // RFC 8656 §12.5 gives no way to resynchronise a stream.
            edge.framingErrors += 1
            edge.logger.debug("TURN stream framing error", metadata: ["error": "\(error)"])
            context.close(promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        edge.endCycle()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let id { edge.streamClosed(id) }
        id = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        edge.logger.debug("TURN stream error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }
}
