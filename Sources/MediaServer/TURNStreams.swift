import Logging
import NIOCore
import RTCBase
import Synchronization
import TURN

/// The TCP and TLS side of the TURN server, on one NIO event loop: it owns
/// the listening sockets and the connections, frames what arrives (RFC 8656
/// §12.5) and hands whole messages to the engine's thread (`TURNEdge`),
/// and writes what the engine sends back, in one batch per engine cycle.
final class TURNStreams: @unchecked Sendable {
    /// What the engine asks of a connection.
    enum Output: Sendable {
        case write(TURNConnectionID, [UInt8])
        case close(TURNConnectionID)
    }

    let loop: any EventLoop
    // Touched only on `loop`:
    private var channels: [TURNConnectionID: any Channel] = [:]
    private var nextID: UInt64 = 1
    var servers: [any Channel] = []
    private var isClosed = false
    // Read by the engine's thread for metrics:
    private let framing = Atomic<Int>(0)
    private let connections = Atomic<Int>(0)

    init(loop: any EventLoop) { self.loop = loop }

    var framingErrors: Int { framing.load(ordering: .relaxed) }
    var connectionCount: Int { connections.load(ordering: .relaxed) }

    func countFramingError() { framing.add(1, ordering: .relaxed) }

    /// A new connection (on the loop); nil once closing.
    func register(_ channel: any Channel) -> TURNConnectionID? {
        guard !isClosed else { return nil }
        let id = TURNConnectionID(nextID)
        nextID += 1
        channels[id] = channel
        connections.store(channels.count, ordering: .relaxed)
        return id
    }

    /// A connection went away (on the loop); false if it was not known.
    func unregister(_ id: TURNConnectionID) -> Bool {
        guard channels.removeValue(forKey: id) != nil else { return false }
        connections.store(channels.count, ordering: .relaxed)
        return true
    }

    /// From the engine's thread: applies `outputs` on the loop, flushing each connection once.
    func deliver(_ outputs: [Output]) {
        loop.execute { self.apply(outputs) }
    }

    private func apply(_ outputs: [Output]) {
        var written: [ObjectIdentifier: any Channel] = [:]
        for output in outputs {
            switch output {
            case .write(let id, let bytes):
                guard let channel = channels[id] else { continue }
                channel.write(ByteBuffer(bytes: bytes), promise: nil)
                written[ObjectIdentifier(channel)] = channel
            case .close(let id):
                channels[id]?.close(promise: nil)
            }
        }
        for channel in written.values { channel.flush() }
    }

    /// Closes the listening sockets and every connection (on the loop).
    func close() -> EventLoopFuture<Void> {
        isClosed = true
        let all = servers + Array(channels.values)
        servers = []
        channels = [:]
        connections.store(0, ordering: .relaxed)
        return EventLoopFuture.andAllComplete(all.map { $0.close().recover { _ in } }, on: loop)
    }
}

/// A TURN client over TCP or TLS (behind NIOSSLServerHandler): RFC 8656
/// framing with `TURNStreamFramer`; each read's whole messages go to the
/// engine's thread together.
final class StreamHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let streams: TURNStreams
    private let edge: UDPEdge<TURNEdge>
    private let secure: Bool
    private var framer: TURNStreamFramer
    private var id: TURNConnectionID?
    private var client: TransportAddress?
    private var transport: TURNTransport = .udp

    init(streams: TURNStreams, edge: UDPEdge<TURNEdge>, secure: Bool, maxMessageSize: Int) {
        self.streams = streams
        self.edge = edge
        self.secure = secure
        framer = TURNStreamFramer(maxMessageSize: maxMessageSize)
    }

    func channelActive(context: ChannelHandlerContext) {
        guard let remote = context.channel.remoteAddress, let client = AddressConversion.transportAddress(remote),
              let id = streams.register(context.channel) else {
            context.close(promise: nil)
            return
        }
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
        var messages: [UDPEdge<TURNEdge>.Task] = []
        do {
            while let message = try framer.nextMessage() {
                messages.append { handler, _ in
                    message.withUnsafeBytes {
                        handler.streamMessage($0, from: client, transport: transport, now: MonotonicClock.now())
                    }
                }
            }
        } catch {
            // RFC 8656 §12.5 gives no way to resynchronise a stream.
            streams.countFramingError()
            edge.logger.debug("TURN stream framing error", metadata: ["error": "\(error)"])
            context.close(promise: nil)
        }
        if !messages.isEmpty { edge.post(messages) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let id, streams.unregister(id) {
            edge.post { handler, _ in handler.streamClosed(id, now: MonotonicClock.now()) }
        }
        id = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        edge.logger.debug("TURN stream error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }
}
