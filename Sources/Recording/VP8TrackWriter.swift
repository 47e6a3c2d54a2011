import Codecs
import RTCBase
import RTP

/// VP8 RTP (RFC 7741) into an IVF file: frames reassembled by
/// `VP8Depacketizer`, written from the first keyframe on, with pts in the
/// 90 kHz RTP clock (RFC 7741 §4.1 fixes the clock rate).
///
/// A decoder given an inter frame whose reference is missing shows garbage
/// until the next keyframe (RFC 6386 §9.7–9.8: inter frames predict from the
/// last, golden and altref buffers, which only a keyframe resets). So after
/// any loss — a lost packet, a frame the depacketizer had to drop, a frame
/// that fails its header checks — nothing is written until a keyframe
/// arrives; `needsKeyFrame` tells the caller to ask for one (PLI, RFC 4585
/// §6.3.1). The pts still follow the RTP timestamps, so skipped stretches
/// keep their length and the file's duration stays right.
final class VP8TrackWriter {
    private let file: RecordingFile
    private var depacketizer = VP8Depacketizer()
    private var timeline = MediaTimeline(clockRate: 90_000)
    private var sequenceGuard = SequenceGuard()
    private(set) var needsKeyFrame = true
    private var lossSinceLastFrame = false

    /// Width and height of the first keyframe written.
    private var size: (width: Int, height: Int)?
    /// Timeline position of the first frame written: pts 0.
    private var origin: Int64?
    private var lastPosition: Int64?
    private var lastWrittenPTS: Int64 = -1
    /// The last step between two consecutive frames (no loss between), for
    /// the last frame's duration and as the least a rebased frame advances.
    private var frameInterval: Int64 = 3000
    /// Sequence numbers of padding-only packets pushed as placeholders.
    private var placeholders: [UInt16] = []
    private var frameHeader: [UInt8] = []

    private(set) var framesWritten = 0
    private(set) var framesDropped = 0
    private(set) var packetsLost = 0
    private(set) var malformedPayloads = 0

    init(file: RecordingFile) {
        self.file = file
        frameHeader.reserveCapacity(12)
        // The real header is written at `finish`, once size and duration are
        // known; this reserves its 32 bytes.
        file.append(IVFHeader(width: 0, height: 0, timebaseDenominator: 90_000).serialized())
    }

    /// A new SSRC: its sequence numbers and timestamps start afresh, and its
    /// first frames cannot be assumed to continue the old decoder state.
    func beginSource(arrival: Instant) {
        sequenceGuard = SequenceGuard()
        restartDepacketizer(arrival: arrival)
        timeline.markDiscontinuity()
    }

    private func restartDepacketizer(arrival: Instant) {
        depacketizer.flush()
        drain(arrival: arrival)
        depacketizer = VP8Depacketizer()
        placeholders.removeAll()
        needsKeyFrame = true
    }

    func handle(_ packet: RTPHeaderView, arrival: Instant) {
        let payload = packet.payload
        if payload.isEmpty {
            guard packet.hasPadding else {
                malformedPayloads += 1
                return
            }
            guard admit(packet, arrival: arrival) else { return }
            pushPlaceholder(for: packet)
        } else {
            // The descriptor is checked before the sequence number is looked
            // at, so a corrupt packet cannot disturb the sequence state.
            guard (try? VP8DescriptorLayout(parsing: payload)) != nil else {
                malformedPayloads += 1
                return
            }
            guard admit(packet, arrival: arrival) else { return }
            do throws(VP8Error) { try depacketizer.push(packet) } catch { malformedPayloads += 1 }
        }
        drain(arrival: arrival)
    }

    private func admit(_ packet: RTPHeaderView, arrival: Instant) -> Bool {
        switch sequenceGuard.check(packet.sequenceNumber.rawValue) {
        case .accept:
            return true
        case .reject:
            malformedPayloads += 1
            return false
        case .restart:
            restartDepacketizer(arrival: arrival)
            return true
        }
    }

    /// A padding-only packet (RFC 3550 §5.1, sent for bandwidth probing)
    /// takes a sequence number between frames. Left out, it would look like
    /// loss to the depacketizer and cost a keyframe; so a one-packet
    /// placeholder frame (S=1, PID=0, marker, an inter-frame tag) takes its
    /// place and is recognized and discarded when it comes out.
    private func pushPlaceholder(for packet: RTPHeaderView) {
        let placeholder: [UInt8] = [0x10, 0x01, 0x00, 0x00]
        let pushed: Bool = placeholder.withUnsafeBytes { payload in
            (try? depacketizer.push(sequenceNumber: packet.sequenceNumber, timestamp: packet.timestamp,
                                    marker: true, payload: payload)) != nil
        }
        guard pushed else { return }
        placeholders.append(packet.sequenceNumber.rawValue)
        // Ones the depacketizer discarded (late) are never output; keep the list short.
        if placeholders.count > 64 { placeholders.removeFirst() }
    }

    private func drain(arrival: Instant) {
        while let event = depacketizer.pollEvent() {
            switch event {
            case .frame(let frame):
                handle(frame, arrival: arrival)
            case .frameDropped:
                framesDropped += 1
                lossSinceLastFrame = true
                needsKeyFrame = true
            case .packetsLost(_, let count):
                packetsLost += count
                lossSinceLastFrame = true
                needsKeyFrame = true
            }
        }
    }

    private func handle(_ frame: VP8Frame, arrival: Instant) {
        if frame.firstSequenceNumber == frame.lastSequenceNumber,
           let i = placeholders.firstIndex(of: frame.firstSequenceNumber.rawValue) {
            placeholders.remove(at: i)
            return
        }
        let position = timeline.place(timestamp: frame.timestamp, arrival: arrival, minimumAdvance: frameInterval)
        if let last = lastPosition, !lossSinceLastFrame, position - last > 0, position - last <= 90_000 {
            frameInterval = position - last
        }
        lastPosition = position
        lossSinceLastFrame = false

        guard Self.isWellFormed(frame) else {
            framesDropped += 1
            needsKeyFrame = true
            return
        }
        if needsKeyFrame {
            guard frame.isKeyFrame, let header = frame.keyFrameHeader else {
                framesDropped += 1
                return
            }
            needsKeyFrame = false
            if size == nil { size = (Int(header.width), Int(header.height)) }
        }
        let start = origin ?? position
        origin = start
        // IVF wants increasing pts; timestamps give that, this only guards
        // against a sender repeating one.
        let pts = max(position - start, lastWrittenPTS + 1)
        frameHeader.removeAll(keepingCapacity: true)
        frameHeader.appendLittleEndian(UInt32(truncatingIfNeeded: frame.data.count))
        frameHeader.appendLittleEndian(UInt64(bitPattern: pts))
        file.append(frameHeader)
        file.append(frame.data)
        lastWrittenPTS = pts
        framesWritten += 1
    }

    /// The frame tag and, for keyframes, the start code and size (RFC 6386
    /// §9.1) are consistent with the data: the first partition fits.
    /// Catches frames assembled from corrupt packets before a decoder does.
    private static func isWellFormed(_ frame: VP8Frame) -> Bool {
        frame.data.withUnsafeBytes { bytes in
            guard let tag = try? VP8PayloadHeader(parsing: bytes), tag.version <= 3 else { return false }
            let headerLength = tag.isKeyFrame ? 10 : 3
            guard bytes.count > headerLength, Int(tag.firstPartitionSize) <= bytes.count - headerLength else {
                return false
            }
            if tag.isKeyFrame {
                guard let size = frame.keyFrameHeader, size.width > 0, size.height > 0 else { return false }
            }
            return true
        }
    }

    /// Media time from the first frame written to the end of the last frame
    /// received (dropped ones too: the picture holds while they would play).
    private var durationTicks: Int64 {
        guard let origin, let lastPosition else { return 0 }
        return lastPosition - origin + frameInterval
    }

    var durationSeconds: Double { Double(durationTicks) / 90_000 }

    /// Outputs what the depacketizer still holds and writes the final header.
    ///
    /// The header's 32-bit field at offset 24 is read by libvpx as a frame
    /// count it does not rely on, and by FFmpeg (libavformat's IVF demuxer
    /// and muxer) as the stream duration in timebase units; players and
    /// ffprobe take the duration from it. It gets the duration, which makes
    /// both work: the frame count is in the summary.
    func finish(lastArrival: Instant) throws(RecordingError) {
        depacketizer.flush()
        drain(arrival: lastArrival)
        let header = IVFHeader(
            width: size?.width ?? 0, height: size?.height ?? 0, timebaseDenominator: 90_000, timebaseNumerator: 1,
            frameCount: Int(min(durationTicks, Int64(UInt32.max))))
        try file.finish(rewritingStartWith: header.serialized())
    }
}
