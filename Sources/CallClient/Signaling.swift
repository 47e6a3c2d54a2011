import Foundation
import HummingbirdWSClient
import Logging
import NIOCore

/// What drives the call's control flow: signaling frames, the connection's
/// fate, media events, the clock, and the user.
enum CallInput: Sendable {
    case connected
    case frame(String)
    case closed(String?)
    case media(MediaEvent)
    case tick
    case hangUp
}

/// The signaling WebSocket (PROTOCOL.md: one JSON object per text frame).
/// Incoming frames go to the call's input stream; `send` queues outgoing
/// ones, written in order by one task.
final class SignalingConnection: Sendable {
    private let outgoing: AsyncStream<String>.Continuation
    let task: Task<Void, Never>

    /// Largest frame either way: subscribe offers of a big call run to tens
    /// of kilobytes; the server's own limit (64 KiB by default) applies to us.
    static let maxFrameSize = 1 << 20

    init(url: String, group: any EventLoopGroup, logger: Logger, inputs: AsyncStream<CallInput>.Continuation) {
        let (stream, continuation) = AsyncStream<String>.makeStream()
        outgoing = continuation
        task = Task {
            do {
                let client = WebSocketClient(
                    url: url, configuration: WebSocketClientConfiguration(maxFrameSize: Self.maxFrameSize),
                    eventLoopGroup: group, logger: logger
                ) { inbound, outbound, _ in
                    inputs.yield(.connected)
                    try await withThrowingTaskGroup(of: Void.self) { tasks in
                        tasks.addTask {
                            for await text in stream { try await outbound.write(.text(text)) }
                            // Finished by `close()`: a clean close frame (RFC 6455 §5.5.1).
                            try await outbound.close(.normalClosure, reason: nil)
                        }
                        tasks.addTask {
                            for try await message in inbound.messages(maxSize: Self.maxFrameSize) {
                                if case .text(let text) = message { inputs.yield(.frame(text)) }
                            }
                        }
                        _ = try await tasks.next()
                        tasks.cancelAll()
                    }
                }
                try await client.run()
                inputs.yield(.closed(nil))
            } catch {
                inputs.yield(.closed("\(error)"))
            }
        }
    }

    /// Queues one frame; JSONSerialization does the RFC 8259 escaping.
    func send(_ object: [String: Any]) {
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]),
              let text = String(data: data, encoding: .utf8) else { return }
        outgoing.yield(text)
    }

    /// Sends what is queued, then a close frame.
    func close() { outgoing.finish() }
}

/// One parsed incoming frame.
struct Frame {
    let object: [String: Any]
    let type: String

    init?(_ text: String) {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any],
              let type = object["type"] as? String else { return nil }
        self.object = object
        self.type = type.trimmingCharacters(in: .whitespaces).lowercased()
    }

    subscript(_ key: String) -> String? { object[key] as? String }

    var requestID: String? { self["request_id"] }

    /// The `tracks` list of a `tracks` frame.
    var tracks: [TrackInfo] {
        guard let list = object["tracks"] as? [[String: Any]] else { return [] }
        return list.compactMap { t in
            guard let id = t["track_id"] as? String else { return nil }
            return TrackInfo(trackID: id, user: t["user"] as? String ?? "", kind: t["kind"] as? String ?? "",
                             source: t["source"] as? String ?? "", muted: t["muted"] as? Bool ?? false,
                             mid: t["mid"] as? String, msid: t["msid"] as? String)
        }
    }
}
