import Chat
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// Splits a byte stream into lines of at most `maxLength` bytes. A longer
/// line is reported once as `.overlong` and its bytes are dropped up to the
/// next newline, so no client can make the server buffer without bound.
struct LineDecoder: ByteToMessageDecoder {
    enum Line: Sendable {
        case text(String)
        case overlong
    }

    typealias InboundOut = Line
    let maxLength: Int
    private var discarding = false

    init(maxLength: Int) { self.maxLength = maxLength }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        let view = buffer.readableBytesView
        if let newline = view.firstIndex(of: UInt8(ascii: "\n")) {
            let length = newline - view.startIndex
            if discarding || length > maxLength {
                buffer.moveReaderIndex(forwardBy: length + 1)
                if !discarding { context.fireChannelRead(wrapInboundOut(.overlong)) }
                discarding = false
                return .continue
            }
            let line = buffer.readString(length: length) ?? ""
            buffer.moveReaderIndex(forwardBy: 1)
            context.fireChannelRead(wrapInboundOut(.text(line)))
            return .continue
        }
        if buffer.readableBytes > maxLength {
            if !discarding { context.fireChannelRead(wrapInboundOut(.overlong)) }
            discarding = true
            buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
        }
        return .needMoreData
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        if !discarding, buffer.readableBytes > 0, let rest = buffer.readString(length: buffer.readableBytes) {
            context.fireChannelRead(wrapInboundOut(.text(rest)))
        }
        buffer.clear()
        return .needMoreData
    }
}

/// The TCP listener of the line protocol.
public struct LineServer: Service {
    let context: SignalingContext
    let group: any EventLoopGroup

    public init(context: SignalingContext, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.context = context
        self.group = group
    }

    public func run() async throws {
        let config = context.configuration
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: config.host, port: config.linePort) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(LineDecoder(maxLength: LineProtocol.maxLineBytes)))
                    return try NIOAsyncChannel<LineDecoder.Line, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        context.logger.info("line protocol listening", metadata: ["address": "\(server.channel.localAddress.map { "\($0)" } ?? "?")"])
        // On shutdown the listener is closed, so the accept loop ends after
        // taking every connection already accepted (each one must be served
        // and closed: NIO traps on an async channel dropped unused); then the
        // open connections are cancelled, which ends them.
        try await server.executeThenClose { inbound in
            try await withThrowingDiscardingTaskGroup { tasks in
                try await withGracefulShutdownHandler {
                    for try await connection in inbound {
                        tasks.addTask { await Self.serve(connection, context: context) }
                    }
                } onGracefulShutdown: {
                    server.channel.close(promise: nil)
                }
                tasks.cancelAll()
            }
        }
        context.logger.info("line protocol stopped")
    }

    static func serve(_ connection: NIOAsyncChannel<LineDecoder.Line, ByteBuffer>, context: SignalingContext) async {
        let config = context.configuration
        let queue = OutboundQueue(capacity: config.outboundCapacity)
        var session = LineSession(context: context, queue: queue)
        do {
            try await connection.executeThenClose { inbound, outbound in
                await withTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for await item in queue.stream {
                            let line: String
                            switch item {
                            case let .text(t): line = t
                            case let .event(e):
                                guard let l = LineProtocol.line(for: e) else { continue }
                                line = l
                            }
                            var buffer = ByteBuffer(string: line)
                            buffer.writeInteger(UInt8(ascii: "\n"))
                            do { try await outbound.write(buffer) } catch { break }
                        }
                        if queue.didOverflow { outbound.finish() }
                    }
                    var limiter = RateLimiter(rate: config.rateLimit, burst: config.rateBurst, now: .now)
                    do {
                        for try await input in inbound {
                            switch input {
                            case .overlong:
                                session.fail(ChatError(.tooLarge, "line is over \(LineProtocol.maxLineBytes) bytes"))
                            case let .text(line):
                                if limiter.allow(now: .now) {
                                    await session.handle(line: line)
                                } else {
                                    session.fail(ChatError(.rateLimited, "too many commands; slow down"))
                                }
                            }
                        }
                    } catch {
                        context.logger.debug("line connection read ended", metadata: ["error": "\(error)"])
                    }
                    await session.leave()
                    queue.finish()
                    await group.waitForAll()
                }
            }
        } catch {
            context.logger.debug("line connection ended", metadata: ["error": "\(error)"])
        }
    }
}
