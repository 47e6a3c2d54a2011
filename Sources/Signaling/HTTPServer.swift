import Chat
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

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
        // Backup and migration (PROTOCOL.md, HTTP API). Both need a bearer token.
        let backup = Backup(service: context.service)
        router.get("/api/export") { request, _ -> Response in
            guard let user = try await authenticate(request, context: context) else { return unauthorized() }
            let document = try await backup.export(username: user.username)
            return Response(status: .ok, headers: [.contentType: "application/json",
                                                   .contentDisposition: "attachment; filename=\"parley-\(user.username).json\""],
                            body: .init(byteBuffer: ByteBuffer(string: document.serialized)))
        }
        router.post("/api/import") { request, _ -> Response in
            guard let user = try await authenticate(request, context: context) else { return unauthorized() }
            let body: ByteBuffer
            do {
                body = try await request.body.collect(upTo: maxImportBytes)
            } catch {
                return jsonResponse(.contentTooLarge, ["type": "error", "code": "too_large",
                                                       "reason": .string("backup is over \(maxImportBytes) bytes")])
            }
            guard let document = try? JSONValue.parse(Array(body.readableBytesView)).objectValue else {
                return jsonResponse(.badRequest, ["type": "error", "code": "bad_json", "reason": "body is not a JSON object"])
            }
            do {
                let summary = try await backup.importDocument(document, into: user.username)
                return jsonResponse(.ok, ["imported": .object([
                    "contacts": .number(Double(summary.contacts)), "groups": .number(Double(summary.groups)),
                    "messages": .number(Double(summary.messages)), "skipped": .number(Double(summary.skipped)),
                ])])
            } catch let error as ChatError {
                return jsonResponse(.badRequest, WireFormat.error(error, requestID: nil))
            }
        }
        router.get("/") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(string: "Parley signaling server. WebSocket: /ws, health: /health, call page: /call\n")))
        }
        // The call page (a browser client for calls) and its files.
        let web = WebAssets()
        router.get("/call") { request, _ -> Response in web.response("call.html", request: request) }
        router.get("/assets/:name") { request, context -> Response in
            web.response(context.parameters.get("name") ?? "", request: request)
        }

        let wsRouter = Router(context: UpgradeContext.self)
        wsRouter.ws("/ws") { request, upgrade in
            // Pages from other origins may embed Parley unless
            // --allowed-origins restricts them (RFC 6455 §10.2).
            let allowed = context.configuration.allowedOrigins
            if !allowed.isEmpty, let origin = request.headers[.origin], !allowed.contains(origin) {
                context.metrics.countError(.forbidden)
                return .dontUpgrade
            }
            // A connection with a token is attached to its user *before* the
            // 101 goes out, so no message sent after the client sees the
            // upgrade can miss it.
            if let token = bearerToken(request) {
                if let user = try await context.service.resume(token: token) {
                    let queue = OutboundQueue(capacity: context.configuration.outboundCapacity)
                    var state = SessionState(context: context, queue: queue)
                    await state.attach(user: user, token: token) { pending in
                        for message in pending { queue.send(WireFormat.message(message)) }
                    }
                    upgrade.attachment.set(.attached(queue, state))
                    // Should the upgrade never complete (the client vanished
                    // in between), detach rather than leave a ghost online.
                    let attachment = upgrade.attachment
                    Task {
                        try? await Task.sleep(for: .seconds(15))
                        if case var .attached(queue, state)? = attachment.take() {
                            await state.leave()
                            queue.finish()
                        }
                    }
                } else {
                    upgrade.attachment.set(.invalidToken)
                }
            }
            return .upgrade([:])
        } onUpgrade: { inbound, outbound, wsContext in
            switch wsContext.requestContext.attachment.take() {
            case let .attached(queue, state):
                await WebSocketConnection.run(inbound: inbound, outbound: outbound, context: context, queue: queue, state: state)
            case .invalidToken:
                // Browsers cannot read the status of a refused upgrade, so the
                // refusal is an `error` frame and a policy-violation close.
                context.metrics.countError(.notAuthenticated)
                let frame = WireFormat.error(ChatError(.notAuthenticated, "invalid or revoked token"), requestID: nil)
                try? await outbound.write(.text(frame.serialized))
                try? await outbound.close(.policyViolation, reason: "invalid token")
            case nil:
                let queue = OutboundQueue(capacity: context.configuration.outboundCapacity)
                await WebSocketConnection.run(inbound: inbound, outbound: outbound, context: context, queue: queue, state: nil)
            }
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

    static let maxImportBytes = 64 << 20

    static func authenticate(_ request: Request, context: SignalingContext) async throws -> UserRecord? {
        guard let token = bearerToken(request) else { return nil }
        return try await context.service.resume(token: token)
    }

    static func unauthorized() -> Response {
        jsonResponse(.unauthorized, ["type": "error", "code": "not_authenticated", "reason": "missing or invalid bearer token"])
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
                    queue: OutboundQueue, state: SessionState?) async
    {
        let config = context.configuration
        var session = WebSocketSession(context: context, queue: queue, state: state)
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

/// The request context of WebSocket upgrades: carries a connection attached
/// during the upgrade request to the handler that serves it.
struct UpgradeContext: RequestContext, WebSocketRequestContext {
    var coreContext: CoreRequestContextStorage
    let webSocket: WebSocketHandlerReference<UpgradeContext>
    let attachment: UpgradeAttachment

    init(source: Source) {
        coreContext = .init(source: source)
        webSocket = .init()
        attachment = UpgradeAttachment()
    }
}

final class UpgradeAttachment: Sendable {
    enum Value: Sendable {
        case attached(OutboundQueue, SessionState)
        case invalidToken
    }

    private let value = Mutex<Value?>(nil)

    func set(_ v: Value) { value.withLock { $0 = v } }
    func take() -> Value? { value.withLock { v in defer { v = nil }; return v } }
}
