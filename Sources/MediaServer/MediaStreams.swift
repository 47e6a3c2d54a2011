import Logging
import NIOCore
import NIOPosix
import RTCBase
import Synchronization

/// ICE over TCP for one media worker (RFC 6544, the passive side): a TCP
/// listener on the same port number as the worker's UDP port, for clients
/// whose UDP is blocked. Each connection carries RFC 4571 frames (a 16-bit
/// length, then one STUN, DTLS, RTP or RTCP datagram); frames go to the
/// worker's engine as datagrams from the connection's remote address, and
/// what the engine sends to that address goes back framed.
final class MediaStreams: @unchecked Sendable {
    let loop: any EventLoop
    private let logger: Logger
    // Touched only on `loop`:
    private var channels: [TransportAddress: any Channel] = [:]
    var server: (any Channel)?
    private var closed = false
    /// Read from the engine's thread on every send: who is a TCP peer.
    private let connected = Mutex<Set<TransportAddress>>([])
    private let count = Atomic<Int>(0)
    private let framingErrors = Atomic<Int>(0)
    /// Delivers one frame to the worker (set once the edge exists).
    var deliver: (@Sendable ([UInt8], TransportAddress) -> Void)?

    init(loop: any EventLoop, logger: Logger) {
        self.loop = loop
        self.logger = logger
    }

    var connectionCount: Int { count.load(ordering: .relaxed) }
    var framingErrorCount: Int { framingErrors.load(ordering: .relaxed) }

    /// From the engine's thread.
    @inline(__always)
    func isConnected(_ address: TransportAddress) -> Bool {
        guard count.load(ordering: .relaxed) > 0 else { return false }
        return connected.withLock { $0.contains(address) }
    }

    /// From the engine's thread: one datagram to a TCP peer, framed (RFC 4571 §2).
    func send(_ datagram: [UInt8], to address: TransportAddress) {
        guard datagram.count <= 0xFFFF else { return }
        loop.execute {
            guard let channel = self.channels[address] else { return }
            var buffer = channel.allocator.buffer(capacity: datagram.count + 2)
            buffer.writeInteger(UInt16(datagram.count))
            buffer.writeBytes(datagram)
            channel.writeAndFlush(buffer, promise: nil)
        }
    }

    func register(_ channel: any Channel, address: TransportAddress) -> Bool {
        guard !closed else { return false }
        channels[address] = channel
        connected.withLock { _ = $0.insert(address) }
        count.store(channels.count, ordering: .relaxed)
        return true
    }

    func unregister(_ address: TransportAddress) {
        channels[address] = nil
        connected.withLock { _ = $0.remove(address) }
        count.store(channels.count, ordering: .relaxed)
    }

    func countFramingError() { framingErrors.add(1, ordering: .relaxed) }

    /// Binds the listener on `host:port`.
    func listen(host: String, port: Int) async throws {
        let server = try await ServerBootstrap(group: loop)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 256)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(FramedMediaHandler(streams: self))
                }
            }
            .bind(host: host, port: port).get()
        try await loop.submit { self.server = server }.get()
    }

    func close() -> EventLoopFuture<Void> {
        loop.flatSubmit {
            self.closed = true
            let all = [self.server].compactMap { $0 } + Array(self.channels.values)
            self.server = nil
            self.channels = [:]
            self.connected.withLock { $0 = [] }
            self.count.store(0, ordering: .relaxed)
            return EventLoopFuture.andAllComplete(all.map { $0.close().recover { _ in } }, on: self.loop)
        }
    }
}

/// One ICE-TCP connection: RFC 4571 framing.
final class FramedMediaHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let streams: MediaStreams
    private var address: TransportAddress?
    private var pending = ByteBuffer()
    static let maxFrame = 4096

    init(streams: MediaStreams) { self.streams = streams }

    func channelActive(context: ChannelHandlerContext) {
        guard let remote = context.channel.remoteAddress, let address = AddressConversion.transportAddress(remote),
              streams.register(context.channel, address: address) else {
            context.close(promise: nil)
            return
        }
        self.address = address
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let address else { return }
        var buffer = unwrapInboundIn(data)
        pending.writeBuffer(&buffer)
        while let length = pending.getInteger(at: pending.readerIndex, as: UInt16.self) {
            guard length > 0, Int(length) <= Self.maxFrame else {
                // A media frame is never empty or this large: the stream is
                // not RFC 4571 and cannot be resynchronised.
                streams.countFramingError()
                context.close(promise: nil)
                return
            }
            guard pending.readableBytes >= 2 + Int(length) else { break }
            pending.moveReaderIndex(forwardBy: 2)
            guard let frame = pending.readBytes(length: Int(length)) else { break }
            streams.deliver?(frame, address)
        }
        pending.discardReadBytes()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let address { streams.unregister(address) }
        address = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
