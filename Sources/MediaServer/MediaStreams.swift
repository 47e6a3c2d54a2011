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
    private var channels: [UInt64: any Channel] = [:]
    private var nextID: UInt64 = 1
    var server: (any Channel)?
    private var closed = false
    private let count = Atomic<Int>(0)
    private let framingErrors = Atomic<Int>(0)
    /// Delivers one frame to the worker: the bytes, the connection's address
    /// in the engine (`address(for:)`), and its real remote address.
    var deliver: (@Sendable ([UInt8], TransportAddress, TransportAddress) -> Void)?

    init(loop: any EventLoop, logger: Logger) {
        self.loop = loop
        self.logger = logger
    }

    var connectionCount: Int { count.load(ordering: .relaxed) }
    var framingErrorCount: Int { framingErrors.load(ordering: .relaxed) }

    /// The address a TCP connection has in the engine: IPv6 `100::<id>`
    /// (RFC 6666's discard-only prefix, which no datagram can come from)
    /// with the peer's port. The engine keys sessions by address, so a TCP
    /// connection from the same IP and port as a UDP peer is never taken
    /// for it (nor the other way round).
    static func address(for id: UInt64, port: UInt16) -> TransportAddress {
        TransportAddress(ip: .v6(high: 0x0100_0000_0000_0000, low: id), port: port)
    }

    /// The connection id of an engine address, if it is a TCP connection's.
    @inline(__always)
    static func connection(of address: TransportAddress) -> UInt64? {
        guard case .v6(let high, let low) = address.ip, high == 0x0100_0000_0000_0000 else { return nil }
        return low
    }

    /// From the engine's thread: one datagram to a TCP peer, framed (RFC 4571 §2).
    func send(_ datagram: [UInt8], to id: UInt64) {
        guard datagram.count <= 0xFFFF else { return }
        loop.execute {
            guard let channel = self.channels[id] else { return }
            var buffer = channel.allocator.buffer(capacity: datagram.count + 2)
            buffer.writeInteger(UInt16(datagram.count))
            buffer.writeBytes(datagram)
            channel.writeAndFlush(buffer, promise: nil)
        }
    }

    /// A new connection (on the loop): its id, or nil once closing.
    func register(_ channel: any Channel) -> UInt64? {
        guard !closed else { return nil }
        let id = nextID
        nextID += 1
        channels[id] = channel
        count.store(channels.count, ordering: .relaxed)
        return id
    }

    func unregister(_ id: UInt64) {
        channels[id] = nil
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
            self.count.store(0, ordering: .relaxed)
            return EventLoopFuture.andAllComplete(all.map { $0.close().recover { _ in } }, on: self.loop)
        }
    }
}

/// One ICE-TCP connection: RFC 4571 framing.
final class FramedMediaHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let streams: MediaStreams
    private var id: UInt64?
    private var remote: TransportAddress?
    private var engineAddress: TransportAddress?
    private var pending = ByteBuffer()
    static let maxFrame = 4096

    init(streams: MediaStreams) { self.streams = streams }

    func channelActive(context: ChannelHandlerContext) {
        guard let peer = context.channel.remoteAddress, let remote = AddressConversion.transportAddress(peer),
              let id = streams.register(context.channel) else {
            context.close(promise: nil)
            return
        }
        self.id = id
        self.remote = remote
        engineAddress = MediaStreams.address(for: id, port: remote.port)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let engineAddress, let remote else { return }
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
            streams.deliver?(frame, engineAddress, remote)
        }
        pending.discardReadBytes()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let id { streams.unregister(id) }
        id = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
