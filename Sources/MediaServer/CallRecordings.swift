import Dispatch
import Foundation
import Logging
import RTCBase
import Recording
import SFU

/// Writes recorded calls to files (`--record-dir`): one directory per
/// call, one file per track (VP8 to IVF, Opus to Ogg Opus), named
/// `<user>-<source>-<track>.ivf|.ogg`. The media thread only copies each
/// packet and hands it to a serial queue of its own, so file IO never
/// stalls forwarding; recording costs an allocation per recorded packet,
/// which only recorded calls pay.
final class CallRecordings: SFURecordingSink, @unchecked Sendable {
    let directory: URL
    private let queue = DispatchQueue(label: "parley-recording")
    private let logger: Logger
    // Touched only on `queue`:
    private var recorders: [String: [String: TrackRecorder]] = [:]

    init(directory: String, logger: Logger) throws {
        self.directory = URL(fileURLWithPath: directory)
        self.logger = logger
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
    }

    func packet(room: RoomID, track: String, kind: String, user: String, source: TrackSource,
                bytes: UnsafeRawBufferPointer, arrival: Instant) {
        let copy = Array(bytes)
        queue.async { [self] in
            let recorder: TrackRecorder
            if let existing = recorders[room.rawValue]?[track] {
                recorder = existing
            } else {
                let callDirectory = directory.appendingPathComponent(Self.safe(room.rawValue))
                let name = "\(Self.safe(user))-\(source.rawValue)-\(track).\(kind == "video" ? "ivf" : "ogg")"
                do {
                    try FileManager.default.createDirectory(at: callDirectory, withIntermediateDirectories: true)
                    recorder = try TrackRecorder(kind: kind == "video" ? .vp8 : .opus,
                                                 path: callDirectory.appendingPathComponent(name).path)
                } catch {
                    logger.error("recording file failed", metadata: ["call": "\(room)", "error": "\(error)"])
                    return
                }
                recorders[room.rawValue, default: [:]][track] = recorder
                logger.info("recording track", metadata: ["call": "\(room)", "file": "\(recorder.path)"])
            }
            copy.withUnsafeBytes { recorder.append(rtp: $0, arrival: arrival) }
        }
    }

    func finish(room: RoomID) {
        queue.async { [self] in
            for (_, recorder) in recorders.removeValue(forKey: room.rawValue) ?? [:] {
                do {
                    let summary = try recorder.close()
                    logger.info("recording closed", metadata: [
                        "call": "\(room)", "file": "\(recorder.path)", "frames": "\(summary.frames)",
                        "seconds": "\(summary.durationSeconds)"])
                } catch {
                    logger.error("recording close failed", metadata: ["file": "\(recorder.path)", "error": "\(error)"])
                }
            }
        }
    }

    /// Waits for every queued write (shutdown).
    func flush() {
        queue.sync {}
        let open = queue.sync { Array(recorders.keys) }
        for room in open { finish(room: RoomID(room)) }
        queue.sync {}
    }

    /// A name component without path separators or dots that climb.
    static func safe(_ s: String) -> String {
        String(s.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" })
    }
}
