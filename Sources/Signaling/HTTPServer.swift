import Chat
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import ServiceLifecycle

/// The HTTP listener: WebSocket signaling at `/ws`, `/health`, `/metrics`.
public enum HTTPServer {
    /// Builds the Hummingbird application. `healthCheck` throws when storage
    /// is not ready.
    public static func makeApplication(context: SignalingContext,
                                       healthCheck: @escaping @Sendable () async throws -> Void) -> some ApplicationProtocol
    {
        let router = Router(context: BasicRequestContext.self)
        router.get("/health") { _, _ -> Response in
            do {
                try await healthCheck()
                return jsonResponse(.ok, ["status": "ok"])
            } catch {
                return jsonResponse(.serviceUnavailable, ["status": "unavailable", "reason": .string("\(error)")])
            }
        }
        router.get("/metrics") { _, _ -> Response in
            context.metrics.connections.set(Int64(context.hub.connections))
            context.metrics.onlineUsers.set(Int64(context.hub.onlineUsers))
            var buffer = [UInt8]()
            context.metrics.registry.emit(into: &buffer)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(bytes: buffer)))
        }
        // Reached only by a plain GET without a WebSocket upgrade.
        router.get("/ws") { _, _ -> Response in
            jsonResponse(.upgradeRequired, ["type": "error", "code": "bad_request",
                                                   "reason": "use a WebSocket upgrade on /ws"])
        }
        router.get("/") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(string: "Parley signaling server. WebSocket: /ws, health: /health\n")))
        }

        let wsRouter = Router(context: BasicWebSocketRequestContext.self)
        wsRouter.ws("/ws") { _, _ in
            .upgrade([:])
        } onUpgrade: { inbound, outbound, wsContext in
            // A token given on the upgrade must be valid. Browsers cannot read
            // the status of a refused upgrade, so the refusal is an `error`
            // frame and a policy-violation close that any client can see.
            var preauth: (UserRecord, String)?
            if let token = bearerToken(wsContext.request) {
                guard let user = try? await context.service.resume(token: token) else {
                    context.metrics.countError(.notAuthenticated)
                    let frame = WireFormat.error(ChatError(.notAuthenticated, "invalid or revoked token"), requestID: nil)
                    try? await outbound.write(.text(frame.serialized))
                    try? await outbound.close(.policyViolation, reason: "invalid token")
                    return
                }
                preauth = (user, token)
            }
            await WebSocketConnection.run(inbound: inbound, outbound: outbound, context: context, preauth: preauth)
        }

        let config = context.configuration
        return Application(
            router: router,
            server: .http1WebSocketUpgrade(
                webSocketRouter: wsRouter,
                configuration: .init(ws: .init(maxFrameSize: max(config.maxFrameBytes * 16, 1 << 20),
                                               autoPing: .enabled(timePeriod: .seconds(30))))),
            configuration: .init(address: .hostname(config.host, port: config.httpPort), serverName: "parley",
                                 backlog: 4096),
            onServerRunning: { channel in
                context.logger.info("HTTP and WebSocket listening",
                                    metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
            },
            logger: context.logger
        )
    }

    /// A session token from `Authorization: Bearer …` or `?token=…`.
    static func bearerToken(_ request: Request) -> String? {
        if let header = request.headers[.authorization] {
            let parts = header.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" {
                return String(parts[1]).trimmingWhitespace()
            }
        }
        if let token = request.uri.queryParameters["token"], !token.isEmpty {
            return String(token)
        }
        return nil
    }

    static func jsonResponse(_ status: HTTPResponse.Status, _ body: JSONObject) -> Response {
        Response(status: status, headers: [.contentType: "application/json"],
                 body: .init(byteBuffer: ByteBuffer(string: body.serialized)))
    }
}

/// Reads one WebSocket connection's frames and writes its outbound queue.
enum WebSocketConnection {
    static func run(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, context: SignalingContext,
                    preauth: (UserRecord, String)?) async
    {
        let config = context.configuration
        let queue = OutboundQueue(capacity: config.outboundCapacity)
        var session = WebSocketSession(context: context, queue: queue)
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await item in queue.stream {
                    let text: String
                    switch item {
                    case let .text(t): text = t
                    case let .event(e): text = WireFormat.event(e).serialized
                    }
                    do { try await outbound.write(.text(text)) } catch { break }
                }
                if queue.didOverflow {
                    context.logger.warning("closing a connection that does not read its messages")
                    try? await outbound.close(.policyViolation, reason: "too slow")
                }
            }
            if let (user, token) = preauth { await session.authenticate(user: user, token: token) }
            var limiter = RateLimiter(rate: config.rateLimit, burst: config.rateBurst, now: .now)
            var message = [UInt8]()
            var isText = true
            var oversize = false
            do {
                for try await frame in inbound {
                    if frame.opcode != .continuation {
                        message.removeAll(keepingCapacity: message.count <= 65536)
                        isText = frame.opcode == .text
                        oversize = false
                    }
                    if !oversize {
                        if message.count + frame.data.readableBytes > config.maxFrameBytes {
                            oversize = true
                            message.removeAll()
                        } else {
                            message.append(contentsOf: frame.data.readableBytesView)
                        }
                    }
                    guard frame.fin else { continue }
                    if oversize {
                        session.fail(ChatError(.tooLarge, "frame is over \(config.maxFrameBytes) bytes"), requestID: nil)
                    } else if !isText {
                        session.fail(ChatError(.badJSON, "binary frames are not accepted; send JSON text"), requestID: nil)
                    } else {
                        await session.handle(frame: message, allowed: limiter.allow(now: .now))
                    }
                }
            } catch {
                context.logger.debug("WebSocket read ended", metadata: ["error": "\(error)"])
            }
            await session.leave()
            queue.finish()
            await group.waitForAll()
        }
    }
}
