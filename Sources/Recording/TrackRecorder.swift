import Codecs
import RTCBase
import RTP

/// The codec of a recorded track, which decides the container.
public enum RecordingKind: Sendable {
    /// VP8 video (RFC 7741) into IVF.
    case vp8
    /// Opus audio (RFC 7587) into Ogg Opus (RFC 7845).
    case opus
}

/// What a finished recording holds.
public struct RecordingSummary: Sendable, Equatable {
    /// VP8: frames written. Opus: packets written (concealment fill not counted).
    public var frames: Int
    /// Media time the file covers (ffprobe's duration).
    public var durationSeconds: Double
    /// File size.
    public var bytes: Int
    /// VP8: frames received but not written (incomplete, undecodable after
    /// loss until the next keyframe, before the first keyframe). Opus:
    /// packets that arrived after their place in the file was written.
    public var droppedFrames: Int
    /// Packets that never arrived (sequence number gaps).
    public var lostPackets: Int
    /// Packets skipped as unparseable: RTP header or payload.
    public var malformedPackets: Int
    /// Well-formed packets that are not part of the recording: other
    /// payload types, sources on probation or left, duplicates, padding.
    public var ignoredPackets: Int

    public init(frames: Int, durationSeconds: Double, bytes: Int, droppedFrames: Int, lostPackets: Int = 0,
                malformedPackets: Int = 0, ignoredPackets: Int = 0) {
        self.frames = frames
        self.durationSeconds = durationSeconds
        self.bytes = bytes
        self.droppedFrames = droppedFrames
        self.lostPackets = lostPackets
        self.malformedPackets = malformedPackets
        self.ignoredPackets = ignoredPackets
    }
}

/// Records one forwarded track — its plaintext RTP packets, as the SFU
/// receives them from the publisher — into one file: VP8 to IVF, Opus to
/// Ogg Opus.
///
/// Packets may come reordered, with gaps, with garbage among them, and from
/// a new SSRC when the publisher renegotiates; the file stays decodable and
/// its timeline continuous (timestamps are rebased onto one output clock).
/// Garbage is counted and skipped; `append` never fails.
///
/// This is the IO edge: `append` writes to the file (buffered). Use one
/// instance from one thread (a recording thread), not from the forwarding
/// path itself.
public final class TrackRecorder {
    public let kind: RecordingKind
    public let path: String

    private enum Writer {
        case vp8(VP8TrackWriter)
        case opus(OpusTrackWriter)
    }

    private let file: RecordingFile
    private let writer: Writer
    private var selector: SourceSelector
    private var malformedPackets = 0
    private var ignoredPackets = 0
    private var lastArrival = Instant.zero
    private var summary: RecordingSummary?

    /// Creates (or truncates) the file at `path`.
    ///
    /// - Parameter payloadType: the track's negotiated payload type; packets
    ///   with another one are ignored. Nil takes the payload type of the
    ///   first source's packets (re-learned at each SSRC change).
    public init(kind: RecordingKind, path: String, payloadType: PayloadType? = nil) throws {
        self.kind = kind
        self.path = path
        let file = try RecordingFile(path: path)
        self.file = file
        selector = SourceSelector(payloadType: payloadType?.rawValue)
        switch kind {
        case .vp8:
            writer = .vp8(VP8TrackWriter(file: file))
        case .opus:
            var random = SystemRandomNumberGenerator()
            writer = .opus(OpusTrackWriter(file: file, serialNumber: random.next()))
        }
    }

    deinit {
        // A recorder dropped without `close` still leaves a playable file.
        if summary == nil { _ = try? close() }
    }

    /// True while video recording waits for a keyframe (from the start,
    /// after loss, after an SSRC change): the caller should ask the
    /// publisher for one (PLI, RFC 4585 §6.3.1). Always false for Opus.
    public var needsKeyFrame: Bool {
        guard summary == nil, case .vp8(let video) = writer else { return false }
        return video.needsKeyFrame
    }

    /// One plaintext RTP packet of the track (header + payload), in arrival
    /// order (may be reordered or have gaps). `arrival` is monotonic time
    /// (RTCBase.Instant).
    public func append(rtp packet: UnsafeRawBufferPointer, arrival: Instant) {
        guard summary == nil else { return }
        lastArrival = max(lastArrival, arrival)
        let view: RTPHeaderView
        do throws(RTPError) { view = try RTPHeaderView(packet) } catch {
            malformedPackets += 1
            return
        }
        switch selector.admit(ssrc: view.ssrc, payloadType: view.payloadTypeValue,
                              sequenceNumber: view.sequenceNumber.rawValue, packet: packet, arrival: arrival) {
        case .current:
            process(view, arrival: arrival)
        case .held:
            break
        case .ignored:
            ignoredPackets += 1
        case .switched(let packets):
            switch writer {
            case .vp8(let video): video.beginSource(arrival: arrival)
            case .opus(let audio): audio.beginSource()
            }
            replay(packets)
        }
    }

    /// Convenience for owned bytes.
    public func append(rtp packet: [UInt8], arrival: Instant) {
        packet.withUnsafeBytes { append(rtp: $0, arrival: arrival) }
    }

    private func replay(_ packets: [SourceSelector.HeldPacket]) {
        for held in packets {
            held.bytes.withUnsafeBytes { bytes in
                // Parsed once already; cannot fail now.
                guard let view = try? RTPHeaderView(bytes) else { return }
                process(view, arrival: held.arrival)
            }
        }
    }

    private func process(_ view: RTPHeaderView, arrival: Instant) {
        switch writer {
        case .vp8(let video): video.handle(view, arrival: arrival)
        case .opus(let audio): audio.handle(view, arrival: arrival)
        }
    }

    /// Flushes, fixes up headers (e.g. IVF frame count), closes the file.
    /// Throws `RecordingError.io` if any write failed (the file is then
    /// incomplete). Calling it again returns the same summary, no error.
    @discardableResult
    public func close() throws -> RecordingSummary {
        if let summary { return summary }
        if let packets = selector.takeUnconfirmed() { replay(packets) }
        var result: RecordingSummary
        var failure: RecordingError?
        switch writer {
        case .vp8(let video):
            do throws(RecordingError) { try video.finish(lastArrival: lastArrival) } catch { failure = error }
            result = RecordingSummary(
                frames: video.framesWritten, durationSeconds: video.durationSeconds, bytes: file.byteCount,
                droppedFrames: video.framesDropped, lostPackets: video.packetsLost,
                malformedPackets: malformedPackets + video.malformedPayloads, ignoredPackets: ignoredPackets)
        case .opus(let audio):
            do throws(RecordingError) { try audio.finish() } catch { failure = error }
            result = RecordingSummary(
                frames: audio.packetsWritten, durationSeconds: audio.durationSeconds, bytes: file.byteCount,
                droppedFrames: audio.packetsDropped, lostPackets: audio.packetsLost,
                malformedPackets: malformedPackets + audio.malformedPayloads,
                ignoredPackets: ignoredPackets + audio.ignoredPackets)
        }
        summary = result
        if let failure { throw failure }
        return result
    }
}
