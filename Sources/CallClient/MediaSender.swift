import Codecs
import Foundation
import RTCBase
import RTP
import SDP

/// Outgoing RTP packets (plaintext) and the transport-wide sequence number
/// every packet on the publish connection takes in turn
/// (draft-holmer-rmcat-transport-wide-cc-extensions-01 §2).
struct PacketQueue {
    var packets: [[UInt8]] = []
    var transportSequence: UInt16 = 0

    mutating func nextTransportSequence() -> UInt16 {
        defer { transportSequence &+= 1 }
        return transportSequence
    }
}

/// One stream of the publish connection: a synthetic source, its encoder
/// and its RTP state.
protocol SendingStream: AnyObject {
    var stream: PublishedStream { get }
    var nextFrameAt: Instant? { get }
    var stats: SentStreamStats { get set }
    var isEnabled: Bool { get set }
    func start(at now: Instant)
    /// Encodes every frame due by `now` and queues its packets.
    func produce(now: Instant, into queue: inout PacketQueue)
    /// The RTP timestamp that corresponds to `now` (for the SR, RFC 3550 §6.4.1).
    func rtpTimestamp(at now: Instant) -> UInt32?
    func configure(extensions: NegotiatedExtensions, rtx: Bool)
    func finishStats(now: Instant)
}

/// Ring of sent packets by sequence number, answering NACKs (RFC 4585
/// §6.2.1) for about the last half second of video.
struct RetransmissionHistory {
    struct Entry {
        var sequenceNumber: UInt16
        var packet: [UInt8]
        var lastRepairAt: Instant?
    }

    private var slots: [Entry?]

    init(capacity: Int) { slots = Array(repeating: nil, count: max(1, capacity)) }

    mutating func store(_ packet: [UInt8], sequenceNumber: UInt16) {
        slots[Int(sequenceNumber) % slots.count] = Entry(sequenceNumber: sequenceNumber, packet: packet)
    }

    /// The packet with this sequence number, unless it was repaired less
    /// than `spacing` ago (duplicate NACKs for one loss come in bursts).
    mutating func packetForRepair(_ sequenceNumber: UInt16, now: Instant, spacing: Duration) -> [UInt8]? {
        let i = Int(sequenceNumber) % slots.count
        guard var entry = slots[i], entry.sequenceNumber == sequenceNumber else { return nil }
        if let last = entry.lastRepairAt, now - last < spacing { return nil }
        entry.lastRepairAt = now
        slots[i] = entry
        return entry.packet
    }
}

/// The synthetic pictures of one video stream. Drawing a picture in Swift
/// costs far more than encoding it (about 50 ms against 3 ms for 640x360 in
/// a debug build), so `length` pictures are drawn once, on a thread of
/// their own from the moment the stream is made (while signaling runs), and
/// then replayed in a loop; until the loop is complete the latest picture
/// stands in. `length` 0 draws every frame on demand instead (for release
/// builds, where drawing is cheap).
final class PictureLoop: @unchecked Sendable {
    // `frames` is shared with the drawing thread, under `lock`; `scratch`
    // is only used by the media loop (length 0).
    private let lock = NSLock()
    private var frames: [I420Frame] = []
    private var scratch: I420Frame
    private let render: @Sendable (Int, inout I420Frame) -> Void
    let length: Int

    init(width: Int, height: Int, length: Int, render: @escaping @Sendable (Int, inout I420Frame) -> Void) {
        self.length = max(0, length)
        self.render = render
        scratch = I420Frame(width: width, height: height)
        guard length > 0 else { return }
        frames.reserveCapacity(length)
        Thread.detachNewThread { [self] in
            Self.lowerPriority()
            for i in 0..<self.length {
                var frame = I420Frame(width: width, height: height)
                render(i, &frame)
                lock.withLock { frames.append(frame) }
            }
        }
    }

    /// Drawing is a head start, not real-time work: nice this thread
    /// (on Linux the nice value is per thread, and setpriority(2) with
    /// who = 0 sets the calling thread's)
    /// so the media loop, the server and the other peers on a small machine
    /// come first.
    private static func lowerPriority() {
        #if os(Linux)
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 10)
        #endif
    }

    /// The picture for frame `index`; nil before the first one is drawn.
    func picture(_ index: Int) -> I420Frame? {
        guard length > 0 else {
            render(index, &scratch)
            return scratch
        }
        return lock.withLock { frames.isEmpty ? nil : frames[min(index % length, frames.count - 1)] }
    }

    var renderedCount: Int { lock.withLock { frames.count } }
}

/// A VP8 stream from a synthetic camera or screen (RFC 7741 payload,
/// RFC 4588 repairs).
final class VideoSendingStream: SendingStream {
    let stream: PublishedStream
    let options: VideoSourceOptions
    private let encoder: VP8Encoder
    private var packetizer: VP8Packetizer
    private let pictures: PictureLoop
    private var frameIndex = 0
    private var startedAt: Instant?
    private(set) var nextFrameAt: Instant?
    private var sequence: UInt16
    private var rtxSequence: UInt16
    private let timestampBase: UInt32
    private var writer: RTPWriter
    private var useRTX = false
    private var history = RetransmissionHistory(capacity: 1024)
    private var keyframeWanted = false
    private var lastKeyframeAt: Instant?
    private(set) var targetKbps: Int
    var stats: SentStreamStats
    var isEnabled = true
    private var firstSentAt: Instant?
    private var lastSentAt: Instant?
    /// RTP payload limit: a 1200-byte datagram (the DTLS MTU the transports
    /// use, safe across tunnels) minus RTP header, extensions and SRTP tag.
    static let maxPayloadSize = 1100

    init(stream: PublishedStream, options: VideoSourceOptions, loopFrames: Int,
         rng: inout some RandomNumberGenerator) throws(CallClientError) {
        self.stream = stream
        self.options = options
        var config: VP8EncoderConfiguration
        let render: @Sendable (Int, inout I420Frame) -> Void
        if stream.source == .screen {
            config = .screenShare(width: options.width, height: options.height, targetBitrate: options.bitrateKbps)
            let source = ScreenSource(width: options.width, height: options.height)
            render = { t, frame in source.render(t, into: &frame) }
        } else {
            config = .camera(width: options.width, height: options.height, targetBitrate: options.bitrateKbps)
            let source = CameraSource(width: options.width, height: options.height)
            render = { t, frame in source.render(t, into: &frame) }
        }
        pictures = PictureLoop(width: options.width, height: options.height, length: loopFrames, render: render)
        config.frameRate = max(1, options.framesPerSecond)
        do {
            encoder = try VP8Encoder(configuration: config)
        } catch {
            throw .media("VP8 encoder: \(error)")
        }
        targetKbps = options.bitrateKbps
        packetizer = VP8Packetizer(pictureID: UInt16(truncatingIfNeeded: rng.next()) & 0x7FFF)
        sequence = UInt16(truncatingIfNeeded: rng.next())
        rtxSequence = UInt16(truncatingIfNeeded: rng.next())
        timestampBase = UInt32(truncatingIfNeeded: rng.next())
        writer = RTPWriter(mid: stream.mid, midExtensionID: nil, transportCCExtensionID: nil)
        stats = SentStreamStats(source: stream.source.rawValue, kind: "video", mid: stream.mid.rawValue,
                                ssrc: stream.ssrc.rawValue)
        stats.targetBitrateKbps = targetKbps
    }

    var frameInterval: Duration { .nanoseconds(1_000_000_000 / Int64(max(1, options.framesPerSecond))) }

    func configure(extensions: NegotiatedExtensions, rtx: Bool) {
        writer = RTPWriter(mid: stream.mid, midExtensionID: extensions.mid, transportCCExtensionID: extensions.transportCC)
        useRTX = rtx && stream.rtxPayloadType != nil && stream.rtxSSRC != nil
    }

    func start(at now: Instant) {
        guard startedAt == nil else { return }
        startedAt = now
        nextFrameAt = now
    }

    func rtpTimestamp(at now: Instant) -> UInt32? {
        guard let startedAt, firstSentAt != nil else { return nil }
        let ticks = (now - startedAt).nanoseconds / 1000 * 90 / 1000
        return timestampBase &+ UInt32(truncatingIfNeeded: ticks)
    }

    /// PLI or FIR (RFC 4585 §6.3.1, RFC 5104 §4.3.1): the next frame is a
    /// keyframe. Requests closer together than a frame are one keyframe.
    func requestKeyframe(now: Instant) {
        if let last = lastKeyframeAt, now - last < frameInterval { return }
        keyframeWanted = true
    }

    /// REMB (draft-alvestrand-rmcat-remb): never above what was configured.
    func setTarget(kbps: Int) {
        let target = min(options.bitrateKbps, max(50, kbps))
        guard abs(target - targetKbps) * 20 >= targetKbps else { return }  // ignore < 5 % changes
        if (try? encoder.setTargetBitrate(target)) != nil {
            targetKbps = target
            stats.targetBitrateKbps = target
        }
    }

    func produce(now: Instant, into queue: inout PacketQueue) {
        guard let startedAt, var due = nextFrameAt else { return }
        let interval = frameInterval
        // Far behind (a stall, a slow machine): skip to the present rather
        // than bursting old frames; timestamps follow the frame index, so
        // they keep matching the wall clock.
        if now - due > interval * 3 {
            let behind = (now - startedAt).nanoseconds / interval.nanoseconds
            frameIndex = Int(behind)
            due = startedAt + interval * Int(behind)
        }
        while due <= now {
            if isEnabled { encodeFrame(index: frameIndex, now: now, into: &queue) }
            frameIndex += 1
            due = startedAt + interval * frameIndex
        }
        nextFrameAt = due
    }

    private func encodeFrame(index: Int, now: Instant, into queue: inout PacketQueue) {
        // Not one picture rendered yet (the first takes tens of ms in a
        // debug build): this frame is skipped, the clock goes on.
        guard let frame = pictures.picture(index) else { return }
        let timestamp = timestampBase &+ UInt32(truncatingIfNeeded: Int64(index) * 90_000 / Int64(max(1, options.framesPerSecond)))
        let force = keyframeWanted
        keyframeWanted = false
        do {
            try encoder.encode(frame, pts: Int64(index) * 90_000 / Int64(max(1, options.framesPerSecond)),
                               forceKeyframe: force) { encoded in
                stats.framesEncoded += 1
                if encoded.info.isKeyframe {
                    stats.keyframesEncoded += 1
                    lastKeyframeAt = now
                }
                packetize(encoded, timestamp: timestamp, now: now, into: &queue)
            }
        } catch {
            // One failed frame: the next one is a keyframe so receivers recover.
            keyframeWanted = true
        }
    }

    private func packetize(_ encoded: EncodedVideoFrame, timestamp: UInt32, now: Instant, into queue: inout PacketQueue) {
        let options = VP8Packetizer.FrameOptions(temporalLayerID: nil, layerSync: encoded.info.isLayerSync,
                                                 nonReference: encoded.info.isDroppable)
        do {
            try packetizer.packetize(frame: encoded.bytes, maxPayloadSize: Self.maxPayloadSize, options: options) {
                descriptor, data, isLast in
                let seq = sequence
                sequence &+= 1
                let packet = writer.packet(marker: isLast, payloadType: stream.payloadType.rawValue, sequenceNumber: seq,
                                           timestamp: timestamp, ssrc: stream.ssrc.rawValue,
                                           transportSequence: queue.nextTransportSequence(),
                                           prefix: descriptor, payload: data)
                history.store(packet, sequenceNumber: seq)
                sent(packet, now: now, into: &queue)
            }
        } catch {
            keyframeWanted = true
        }
    }

    private func sent(_ packet: [UInt8], now: Instant, into queue: inout PacketQueue) {
        stats.packetsSent += 1
        stats.bytesSent += packet.count
        if firstSentAt == nil { firstSentAt = now }
        lastSentAt = now
        queue.packets.append(packet)
    }

    /// Answers a NACK (RFC 4585 §6.2.1) from the history: as RTX when it was
    /// negotiated (RFC 4588 §4: the RTX SSRC and its own sequence numbers,
    /// the original sequence number in the first two payload bytes), else
    /// the packet again.
    func repair(_ lost: UInt16, now: Instant, into queue: inout PacketQueue) {
        guard let original = history.packetForRepair(lost, now: now, spacing: .milliseconds(15)) else { return }
        stats.retransmittedPackets += 1
        guard useRTX, let rtxPT = stream.rtxPayloadType, let rtxSSRC = stream.rtxSSRC else {
            sent(original, now: now, into: &queue)
            return
        }
        let packet: [UInt8]? = original.withUnsafeBytes { bytes in
            guard let header = try? RTPHeaderView(bytes) else { return nil }
            let osn: [UInt8] = [UInt8(lost >> 8), UInt8(truncatingIfNeeded: lost)]
            let seq = rtxSequence
            rtxSequence &+= 1
            return osn.withUnsafeBytes { prefix in
                // RTX packets carry the mid too: RFC 8843 §9.1 has every
                // packet of a bundled section name it.
                writer.packet(marker: header.marker, payloadType: rtxPT.rawValue, sequenceNumber: seq,
                                 timestamp: header.timestamp, ssrc: rtxSSRC.rawValue,
                                 transportSequence: queue.nextTransportSequence(), prefix: prefix, payload: header.payload)
            }
        }
        if let packet { sent(packet, now: now, into: &queue) }
    }

    func finishStats(now: Instant) {
        guard let first = firstSentAt, let last = lastSentAt else { return }
        let seconds = max(0.001, Double((max(last, first + frameInterval) - first).nanoseconds) / 1e9)
        stats.bitrateKbps = Double(stats.bytesSent) * 8 / seconds / 1000
        stats.fps = Double(stats.framesEncoded) / seconds
    }
}

/// Opus speech, 48 kHz stereo, 20 ms frames (RFC 7587).
final class AudioSendingStream: SendingStream {
    let stream: PublishedStream
    private let encoder: OpusAudioEncoder
    private var packetizer: OpusPacketizer
    private var source: SpeechSource
    private var pcm: [Int16]
    private var frameIndex = 0
    private var startedAt: Instant?
    private(set) var nextFrameAt: Instant?
    private var sequence: UInt16
    private let timestampBase: UInt32
    private var writer: RTPWriter
    var stats: SentStreamStats
    var isEnabled = true
    private var firstSentAt: Instant?
    private var lastSentAt: Instant?
    static let frameDuration: Duration = .milliseconds(20)
    static let samplesPerFrame = 960

    init(stream: PublishedStream, bitrate: Int, rng: inout some RandomNumberGenerator) throws(CallClientError) {
        self.stream = stream
        var config = OpusEncoderConfiguration(application: .voip, channels: 2, bitrate: bitrate)
        config.frameDuration = .ms20
        // RFC 6716 §2.1.7: in-band FEC, as the offer's useinbandfec=1 says.
        config.inbandFEC = true
        config.expectedPacketLossPercent = 5
        do {
            encoder = try OpusAudioEncoder(configuration: config)
        } catch {
            throw .media("Opus encoder: \(error)")
        }
        source = SpeechSource(channels: 2, seed: rng.next() | 1)
        pcm = Array(repeating: 0, count: Self.samplesPerFrame * 2)
        timestampBase = UInt32(truncatingIfNeeded: rng.next())
        packetizer = OpusPacketizer(timestamp: timestampBase)
        sequence = UInt16(truncatingIfNeeded: rng.next())
        writer = RTPWriter(mid: stream.mid, midExtensionID: nil, transportCCExtensionID: nil)
        stats = SentStreamStats(source: stream.source.rawValue, kind: "audio", mid: stream.mid.rawValue,
                                ssrc: stream.ssrc.rawValue)
        stats.targetBitrateKbps = bitrate / 1000
    }

    func configure(extensions: NegotiatedExtensions, rtx: Bool) {
        writer = RTPWriter(mid: stream.mid, midExtensionID: extensions.mid, transportCCExtensionID: extensions.transportCC)
    }

    func start(at now: Instant) {
        guard startedAt == nil else { return }
        startedAt = now
        nextFrameAt = now
    }

    func rtpTimestamp(at now: Instant) -> UInt32? {
        guard let startedAt, firstSentAt != nil else { return nil }
        return timestampBase &+ UInt32(truncatingIfNeeded: (now - startedAt).nanoseconds / 1000 * 48 / 1000)
    }

    func produce(now: Instant, into queue: inout PacketQueue) {
        guard let startedAt, var due = nextFrameAt else { return }
        let interval = Self.frameDuration
        if now - due > interval * 10 {
            frameIndex = Int((now - startedAt).nanoseconds / interval.nanoseconds)
            due = startedAt + interval * frameIndex
        }
        while due <= now {
            if isEnabled { encodeFrame(now: now, into: &queue) }
            frameIndex += 1
            due = startedAt + interval * frameIndex
        }
        nextFrameAt = due
    }

    private func encodeFrame(now: Instant, into queue: inout PacketQueue) {
        source.fill(&pcm)
        // The timestamp follows the frame index, so skipped frames leave a
        // gap in time as they would from a real microphone.
        packetizer.timestamp = timestampBase &+ UInt32(truncatingIfNeeded: frameIndex * Self.samplesPerFrame)
        let packet: [UInt8]? = try? pcm.withUnsafeBufferPointer { samples throws(OpusCodecError) in
            try encoder.encode(samples) { bytes -> [UInt8]? in
                guard let (timestamp, marker) = try? packetizer.packetize(bytes) else { return nil }
                let seq = sequence
                sequence &+= 1
                let empty = UnsafeRawBufferPointer(start: nil, count: 0)
                return writer.packet(marker: marker, payloadType: stream.payloadType.rawValue, sequenceNumber: seq,
                                     timestamp: timestamp, ssrc: stream.ssrc.rawValue,
                                     transportSequence: queue.nextTransportSequence(), prefix: empty, payload: bytes)
            }
        }
        guard let packet else { return }
        stats.framesEncoded += 1
        stats.packetsSent += 1
        stats.bytesSent += packet.count
        if firstSentAt == nil { firstSentAt = now }
        lastSentAt = now
        queue.packets.append(packet)
    }

    func finishStats(now: Instant) {
        guard let first = firstSentAt, let last = lastSentAt else { return }
        let seconds = max(0.02, Double((last - first).nanoseconds) / 1e9 + 0.02)
        stats.bitrateKbps = Double(stats.bytesSent) * 8 / seconds / 1000
        stats.fps = Double(stats.framesEncoded) / seconds
    }
}

/// Everything the publish connection sends: the synthetic sources encoded
/// in real time, repairs for the SFU's NACKs, keyframes for its PLIs,
/// bitrate from its REMB, and sender reports. Sans-IO: the IO edge passes
/// the clock and sends what comes out.
public final class MediaSender {
    /// The streams, for the publish offer.
    public let streams: [PublishedStream]
    public let cname: String
    /// SSRC of our RTCP when no stream's SSRC applies.
    public let rtcpSSRC: SSRC
    public var clock: NTPClock
    private var senders: [any SendingStream] = []
    private var queue = PacketQueue()
    private var started = false
    /// The SFU's latest REMB, bits per second.
    public private(set) var remb: UInt64?
    /// From the SFU's receiver reports (RFC 3550 §6.4.1).
    public private(set) var roundTrip: Duration?
    public private(set) var transportFeedbackReceived = 0
    private let audioBitrate: Int

    public init(options: MediaOptions, cname: String, clock: NTPClock = NTPClock(ntpAtZero: 0),
                seed: UInt64) throws(CallClientError) {
        var rng = SplitMix64(seed: seed)
        self.cname = cname
        self.clock = clock
        audioBitrate = options.audioBitrate
        rtcpSSRC = SSRC(UInt32(truncatingIfNeeded: rng.next()) | 1)
        let streamID = "parley-call-" + String(UInt32(truncatingIfNeeded: rng.next()), radix: 16)
        var list: [PublishedStream] = []
        func ssrc() -> SSRC { SSRC(UInt32(truncatingIfNeeded: rng.next()) | 1) }
        if options.audio {
            let s = PublishedStream(source: .microphone, mid: Mid(rawValue: String(list.count)),
                                    payloadType: PayloadType(rawValue: 111)!, ssrc: ssrc(),
                                    streamID: streamID, trackID: "microphone")
            list.append(s)
            senders.append(try AudioSendingStream(stream: s, bitrate: options.audioBitrate, rng: &rng))
        }
        // Each video m-section gets its own payload types: RFC 8843 §9.1 lets
        // bundled sections share one only for identical codec settings, and
        // distinct ones let a receiver demultiplex by payload type alone.
        if let camera = options.camera {
            let s = PublishedStream(source: .camera, mid: Mid(rawValue: String(list.count)),
                                    payloadType: PayloadType(rawValue: 96)!, rtxPayloadType: PayloadType(rawValue: 97)!,
                                    ssrc: ssrc(), rtxSSRC: ssrc(), streamID: streamID, trackID: "camera")
            list.append(s)
            senders.append(try VideoSendingStream(stream: s, options: camera, loopFrames: options.renderedLoopFrames,
                                                  rng: &rng))
        }
        if let screen = options.screen {
            let s = PublishedStream(source: .screen, mid: Mid(rawValue: String(list.count)),
                                    payloadType: PayloadType(rawValue: 98)!, rtxPayloadType: PayloadType(rawValue: 99)!,
                                    ssrc: ssrc(), rtxSSRC: ssrc(), streamID: streamID + "-screen", trackID: "screen")
            list.append(s)
            senders.append(try VideoSendingStream(stream: s, options: screen, loopFrames: options.renderedLoopFrames,
                                                  rng: &rng))
        }
        streams = list
        queue.transportSequence = UInt16(truncatingIfNeeded: rng.next())
    }

    /// Applies the SFU's answer: streams it rejected stay silent, the rest
    /// use the header extensions it kept and RTX where it accepted it.
    public func configure(_ answer: PublishNegotiation.Answer) {
        for s in senders {
            s.isEnabled = answer.acceptedMids.contains(s.stream.mid)
            s.configure(extensions: answer.extensions, rtx: answer.rtxMids.contains(s.stream.mid))
        }
    }

    /// Starts the sources' clocks (once the publish connection is up, so the
    /// first frame is a keyframe the SFU can forward at once).
    public func start(now: Instant) {
        guard !started else { return }
        started = true
        for s in senders { s.start(at: now) }
    }

    /// When the next frame of any stream is due.
    public var nextDeadline: Instant? {
        senders.compactMap(\.nextFrameAt).min()
    }

    /// Encodes every frame due by `now`; the RTP packets to send.
    public func produce(now: Instant) -> [[UInt8]] {
        for s in senders { s.produce(now: now, into: &queue) }
        return drainQueue()
    }

    private func drainQueue() -> [[UInt8]] {
        let out = queue.packets
        queue.packets.removeAll(keepingCapacity: true)
        return out
    }

    private func sender(ssrc: SSRC) -> (any SendingStream)? {
        senders.first { $0.stream.ssrc == ssrc }
    }

    /// One RTCP compound from the SFU; returns the repairs to send.
    public func handleRTCP(_ bytes: [UInt8], now: Instant) -> [[UInt8]] {
        guard let packets = try? RTCPCompound.parse(bytes) else { return [] }
        for packet in packets {
            switch packet {
            case .pictureLossIndication(let pli):
                guard let s = sender(ssrc: pli.mediaSSRC) as? VideoSendingStream else { continue }
                s.stats.plisReceived += 1
                s.requestKeyframe(now: now)
            case .fullIntraRequest(let fir):
                // RFC 5104 §4.3.1: the FCI names the SSRCs that want a keyframe.
                for entry in fir.entries {
                    guard let s = sender(ssrc: entry.ssrc) as? VideoSendingStream else { continue }
                    s.stats.firsReceived += 1
                    s.requestKeyframe(now: now)
                }
            case .genericNACK(let nack):
                guard let s = sender(ssrc: nack.mediaSSRC) as? VideoSendingStream else { continue }
                s.stats.nacksReceived += 1
                for pair in nack.pairs {
                    pair.forEachLost { s.repair($0, now: now, into: &queue) }
                }
            case .receiverEstimatedMaxBitrate(let estimate):
                applyREMB(estimate.bitrate)
            case .receiverReport(let rr):
                readReports(rr.reports, now: now)
            case .senderReport(let sr):
                readReports(sr.reports, now: now)
            case .transportFeedback:
                transportFeedbackReceived += 1
            default:
                break
            }
        }
        return drainQueue()
    }

    private func readReports(_ blocks: [RTCPReportBlock], now: Instant) {
        for block in blocks {
            guard let s = sender(ssrc: block.ssrc) else { continue }
            s.stats.fractionLostPercent = Double(block.fractionLost) * 100 / 256
            s.stats.packetsLostReported = Int(max(0, block.cumulativeLost))
            let rate = s.stream.kind == .audio ? 48.0 : 90.0
            s.stats.jitterMs = Double(block.jitter) / rate
            if let rtt = clock.roundTrip(lastSenderReport: block.lastSenderReport,
                                         delay: block.delaySinceLastSenderReport, now: now) {
                roundTrip = rtt
                s.stats.rttMs = Double(rtt.nanoseconds) / 1e6
            }
        }
    }

    /// Splits the SFU's estimate (one for the whole publisher) over the
    /// video streams after audio, in proportion to what each was configured
    /// for, keeping 10 % for headers and repairs.
    func applyREMB(_ bitrate: UInt64) {
        remb = bitrate
        let video = senders.compactMap { $0 as? VideoSendingStream }
        let available = max(0, Int(Double(bitrate) * 0.9) - (senders.count > video.count ? audioBitrate : 0)) / 1000
        let configured = video.reduce(0) { $0 + $1.options.bitrateKbps }
        for s in senders {
            s.stats.rembKbps = Int(bitrate / 1000)
        }
        guard configured > 0 else { return }
        for v in video {
            v.setTarget(kbps: available * v.options.bitrateKbps / configured)
        }
    }

    /// SR + SDES for every stream that has sent (RFC 3550 §6.4.1, §6.5),
    /// so the SFU's receiver reports echo LSR/DLSR and we learn the RTT.
    public func senderReport(now: Instant) -> [UInt8]? {
        var packets: [RTCPPacket] = []
        var chunks: [RTCPSourceDescription.Chunk] = []
        for s in senders {
            guard let timestamp = s.rtpTimestamp(at: now) else { continue }
            packets.append(.senderReport(RTCPSenderReport(
                ssrc: s.stream.ssrc, ntpTimestamp: clock.ntp(now), rtpTimestamp: timestamp,
                packetCount: UInt32(truncatingIfNeeded: s.stats.packetsSent),
                octetCount: UInt32(truncatingIfNeeded: s.stats.bytesSent))))
            chunks.append(RTCPSourceDescription.Chunk(source: s.stream.ssrc, items: [.init(type: .cname, text: cname)]))
        }
        guard !packets.isEmpty else { return nil }
        packets.append(.sourceDescription(RTCPSourceDescription(chunks: chunks)))
        return try? RTCPCompound.serialize(packets)
    }

    public func stats(now: Instant) -> [SentStreamStats] {
        senders.map { s in
            s.finishStats(now: now)
            return s.stats
        }
    }

    /// The streams' current encoder targets (tests, progress).
    public var targetBitratesKbps: [Mid: Int] {
        var out: [Mid: Int] = [:]
        for s in senders { out[s.stream.mid] = s.stats.targetBitrateKbps }
        return out
    }
}
