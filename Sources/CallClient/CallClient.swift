import Foundation
import Logging
import NIOCore
import NIOPosix
import RTCBase

/// A live view of a run, for progress lines.
public struct CallProgress: Sendable {
    /// `connecting`, `logging in`, `ringing`, `in call`, `ending`, …
    public var state: String
    public var report: CallReport

    public init(state: String, report: CallReport) {
        self.state = state
        self.report = report
    }
}

/// A headless call participant: logs in over the signaling WebSocket,
/// starts, answers or joins a call (PROTOCOL.md, Calls), publishes
/// synthetic Opus and VP8 on one peer connection, receives and decodes
/// everyone else's on another, and reports what it saw.
///
/// One instance makes one run: `run` returns the final report when the
/// call ends, its duration is reached, or `hangUp()` is called.
public final class CallClient: Sendable {
    public let configuration: CallClientConfiguration
    let logger: Logger
    private let inputs: AsyncStream<CallInput>
    private let input: AsyncStream<CallInput>.Continuation

    public init(configuration: CallClientConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        (inputs, input) = AsyncStream<CallInput>.makeStream()
    }

    /// Ends the call early (e.g. on SIGINT): `call_end`, then the report.
    public func hangUp() { input.yield(.hangUp) }

    /// Runs the whole call. Throws for failures before the call (connection,
    /// login, a refused call); a call that ends, however, returns its report.
    public func run(progress: (@Sendable (CallProgress) -> Void)? = nil) async throws -> CallReport {
        guard let url = URL(string: configuration.url), let scheme = url.scheme, scheme == "ws" || scheme == "wss",
              let host = url.host else { throw CallClientError.badURL(configuration.url) }
        // Two loops: one owns the media sockets, transports and encoders, the
        // other the signaling WebSocket, so neither can hold up the other.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let loops = Array(group.makeIterator())
        let mediaLoop = loops[0]
        let signalingLoop = loops.count > 1 ? loops[1] : loops[0]
        let input = self.input
        let engine: MediaEngine
        do {
            var localIP = configuration.localAddress ?? ""
            if localIP.isEmpty {
                localIP = try await MediaEngine.localAddress(towards: host, port: url.port ?? 80, group: signalingLoop)
            }
            var via: TransportAddress?
            if let text = configuration.mediaVia {
                guard let address = TransportAddress(text) else { throw CallClientError.media("bad --media-via \(text)") }
                via = address
            }
            engine = try await MediaEngine.start(loop: mediaLoop, localIP: localIP,
                                                 options: configuration.media, mediaVia: via, logger: logger) { event in
                input.yield(.media(event))
            }
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        let signaling = SignalingConnection(url: configuration.url, group: signalingLoop, logger: logger, inputs: input)
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(250))
                input.yield(.tick)
            }
        }
        var flow = CallFlow(configuration: configuration, engine: engine, signaling: signaling, logger: logger)
        let result: Result<CallReport, any Error>
        do {
            result = .success(try await flow.run(inputs, progress: progress))
        } catch {
            result = .failure(error)
        }
        ticker.cancel()
        await engine.close()
        signaling.close()
        // The close handshake is quick; never hang the exit on it.
        let closer = Task { await signaling.task.value }
        let watchdog = Task {
            try? await Task.sleep(for: .seconds(2))
            signaling.task.cancel()
        }
        await closer.value
        watchdog.cancel()
        try? await group.shutdownGracefully()
        return try result.get()
    }
}

/// The control flow of one run, a state machine over `CallInput`.
struct CallFlow {
    enum State: String {
        case connecting = "connecting"
        case registering = "registering"
        case loggingIn = "logging in"
        case starting = "starting call"
        case ringing = "waiting for a call"
        case accepting = "accepting"
        case inCall = "in call"
        case ending = "ending"
        case done = "done"
    }

    let configuration: CallClientConfiguration
    let engine: MediaEngine
    let signaling: SignalingConnection
    let logger: Logger
    var state = State.connecting
    var callID: String?
    var endReason: String?
    var callStart: Instant?
    var joinedAt: Instant?
    var ringingSince: Instant?
    var endingSince: Instant?
    /// A transport failed or the SFU closed it: when the room closes, its
    /// DTLS close_notify often beats the `call_ended` frame, so wait a
    /// moment for the frame (and its reason) before leaving ourselves.
    var mediaLostAt: Instant?
    var mediaLostReason = "media_failed"
    var requestCounter = 0

    init(configuration: CallClientConfiguration, engine: MediaEngine, signaling: SignalingConnection, logger: Logger) {
        self.configuration = configuration
        self.engine = engine
        self.signaling = signaling
        self.logger = logger
    }

    mutating func run(_ inputs: AsyncStream<CallInput>, progress: (@Sendable (CallProgress) -> Void)?) async throws -> CallReport {
        var lastProgress: Instant?
        for await input in inputs {
            try await handle(input)
            if state == .done { break }
            if case .tick = input, let progress {
                let now = MediaEngine.now()
                if lastProgress.map({ now - $0 >= .milliseconds(500) }) ?? true {
                    lastProgress = now
                    progress(CallProgress(state: state.rawValue, report: await report()))
                }
            }
        }
        return await report()
    }

    func report() async -> CallReport {
        var r = await engine.report(user: configuration.username)
        r.callID = callID
        r.endReason = endReason
        return r
    }

    private mutating func request(_ type: String, _ fields: [String: Any] = [:]) -> String {
        requestCounter += 1
        let id = "\(type)-\(requestCounter)"
        var object = fields
        object["type"] = type
        object["request_id"] = id
        signaling.send(object)
        return id
    }

    private mutating func handle(_ input: CallInput) async throws {
        switch input {
        case .connected:
            if configuration.register {
                state = .registering
                _ = request("register", ["username": configuration.username, "password": configuration.password])
            } else {
                login()
            }
        case .frame(let text):
            guard let frame = Frame(text) else {
                logger.warning("unparsable frame from the server")
                return
            }
            try await handle(frame)
        case .closed(let reason):
            if state == .ending || state == .done {
                state = .done
                return
            }
            if state == .inCall {
                logger.error("signaling closed during the call", metadata: ["reason": "\(reason ?? "closed")"])
                endReason = "signaling_closed"
                state = .done
                return
            }
            if let reason { throw CallClientError.media("signaling: \(reason)") }
            throw CallClientError.connectionClosed
        case .media(let event):
            switch event {
            case .connected(let publish):
                logger.debug("\(publish ? "publish" : "subscribe") connection up")
            case .failed(let publish, let reason):
                guard state == .inCall, mediaLostAt == nil else { return }
                logger.warning("media connection lost", metadata: ["pc": "\(publish ? "publish" : "subscribe")",
                                                                    "reason": "\(reason)"])
                mediaLostAt = MediaEngine.now()
                // DTLS close_notify from the SFU: it closed the room, the call is over.
                mediaLostReason = reason == "closedByPeer" ? "media_closed" : "media_failed"
            }
        case .tick:
            let now = MediaEngine.now()
            if state == .inCall, let lost = mediaLostAt, now - lost >= .milliseconds(1500) {
                endCall(reason: mediaLostReason)
            } else if state == .inCall, let duration = configuration.duration, let joinedAt, now - joinedAt >= duration {
                endCall(reason: "duration")
            } else if state == .ringing, let since = ringingSince, now - since >= configuration.ringTimeout {
                throw CallClientError.noIncomingCall
            } else if state == .ending, let since = endingSince, now - since >= .seconds(3) {
                logger.warning("no call_ended after call_end; leaving anyway")
                state = .done
            }
        case .hangUp:
            if state == .inCall || state == .starting || state == .accepting {
                endCall(reason: "interrupted")
            } else {
                endReason = "interrupted"
                state = .done
            }
        }
    }

    private mutating func login() {
        state = .loggingIn
        _ = request("login", ["username": configuration.username, "password": configuration.password])
    }

    private mutating func endCall(reason: String) {
        endReason = reason
        guard let callID else {
            state = .done
            return
        }
        state = .ending
        endingSince = MediaEngine.now()
        _ = request("call_end", ["call_id": callID])
    }

    private var media: [String] {
        var m = configuration.media.audio ? ["audio"] : []
        if configuration.media.camera != nil || configuration.media.screen != nil { m.append("video") }
        return m.isEmpty ? ["audio", "video"] : m
    }

    private mutating func handle(_ frame: Frame) async throws {
        logger.trace("frame in", metadata: ["type": "\(frame.type)", "request_id": "\(frame.requestID ?? "-")"])
        switch frame.type {
        case "registration_response":
            if frame["status"] != "register_success" {
                let reason = frame["reason"] ?? "unknown"
                // A re-run with the same name: the account is there, log in.
                guard reason.contains("taken") else { throw CallClientError.registrationFailed(reason) }
                logger.info("user exists, logging in", metadata: ["user": "\(configuration.username)"])
            }
            login()
        case "login_response":
            guard frame["status"] == "login_success" else { throw CallClientError.loginFailed(frame["reason"] ?? "unknown") }
            logger.info("logged in", metadata: ["user": "\(configuration.username)"])
            try await act()
        case "call_started":
            guard let id = frame["call_id"] else { return }
            callID = id
            logger.info("call started", metadata: ["call_id": "\(id)"])
            try await joined()
        case "call_incoming":
            guard state == .ringing, let id = frame["call_id"] else { return }
            callID = id
            logger.info("call incoming", metadata: ["call_id": "\(id)", "caller": "\(frame["caller"] ?? "?")"])
            await accept(id)
        case "call_accepted":
            guard state == .accepting else { return }
            logger.info("call accepted", metadata: ["call_id": "\(callID ?? "?")"])
            try await joined()
        case "call_joined":
            logger.info("joined the call", metadata: ["user": "\(frame["user"] ?? "?")"])
        case "call_left":
            logger.info("left the call", metadata: ["user": "\(frame["user"] ?? "?")"])
        case "call_ended":
            guard frame["call_id"] == callID || callID == nil else { return }
            let reason = frame["reason"] ?? "ended"
            logger.info("call ended", metadata: ["reason": "\(reason)"])
            if state != .ending { endReason = reason }
            state = .done
        case "publish_answer":
            guard let sdp = frame["sdp"] else { return }
            try await engine.applyPublishAnswer(sdp)
        case "subscribe_offer":
            guard let sdp = frame["sdp"], let id = frame["call_id"] else { return }
            do {
                let answer = try await engine.answerSubscribeOffer(sdp)
                signaling.send(["type": "subscribe_answer", "call_id": id, "sdp": answer])
            } catch {
                logger.error("cannot answer the subscribe offer: \(error)")
            }
        case "tracks":
            let tracks = frame.tracks
            logger.info("tracks", metadata: ["tracks": "\(tracks.map { "\($0.user)/\($0.source)@\($0.mid ?? "-")" })"])
            await engine.updateTracks(tracks)
        case "error":
            let code = frame["code"] ?? "error"
            let reason = frame["reason"] ?? ""
            if let rid = frame.requestID, rid.hasPrefix("call_start") || rid.hasPrefix("call_accept") {
                throw CallClientError.callRefused(code: code, reason: reason)
            }
            if let rid = frame.requestID, rid.hasPrefix("call_end") {
                // The call was already over (the other side hung up first).
                logger.info("call already ended", metadata: ["code": "\(code)"])
                state = .done
                return
            }
            if let rid = frame.requestID, rid.hasPrefix("publish_offer") {
                logger.error("publish offer refused", metadata: ["code": "\(code)", "reason": "\(reason)"])
                endCall(reason: "publish_refused")
                return
            }
            logger.warning("server error", metadata: ["code": "\(code)", "reason": "\(reason)",
                                                       "request_id": "\(frame.requestID ?? "-")"])
        default:
            logger.debug("frame", metadata: ["type": "\(frame.type)"])
        }
    }

    /// What to do once logged in.
    private mutating func act() async throws {
        switch configuration.action {
        case .call(let user):
            state = .starting
            await markStart()
            _ = request("call_start", ["callee": user, "media": media])
        case .callGroup(let name):
            state = .starting
            await markStart()
            _ = request("call_start", ["groupname": name, "media": media])
        case .answer:
            state = .ringing
            ringingSince = MediaEngine.now()
            logger.info("waiting for a call")
        case .join(let id):
            callID = id
            await accept(id)
        }
    }

    private mutating func accept(_ id: String) async {
        state = .accepting
        await markStart()
        _ = request("call_accept", ["call_id": id])
    }

    /// The call's start for every "time to first …" figure: the moment we
    /// asked to start or to accept it.
    private mutating func markStart() async {
        let now = MediaEngine.now()
        callStart = now
        await engine.setCallStart(now)
    }

    /// In the call: label the screen share, then offer to publish.
    private mutating func joined() async throws {
        state = .inCall
        joinedAt = MediaEngine.now()
        guard let callID else { return }
        for stream in engine.publishedStreams where stream.source == .screen {
            // PROTOCOL.md: the label may come before the offer that carries the mid.
            signaling.send(["type": "publish_track", "call_id": callID, "mid": stream.mid.rawValue, "source": "screen"])
        }
        let offer = try await engine.makePublishOffer()
        _ = request("publish_offer", ["call_id": callID, "sdp": offer])
    }
}
