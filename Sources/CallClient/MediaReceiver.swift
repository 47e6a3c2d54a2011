import Codecs
import RTCBase
import RTP
import SDP

/// One entry of a `tracks` frame (PROTOCOL.md): who sends what on which
/// m-section of our subscribe connection.
public struct TrackInfo: Sendable, Hashable {
    public var trackID: String
    public var user: String
    public var kind: String
    public var source: String
    public var muted: Bool
    public var mid: String?
    public var msid: String?

    public init(trackID: String, user: String, kind: String, source: String, muted: Bool = false, mid: String? = nil,
                msid: String? = nil) {
        self.trackID = trackID
        self.user = user
        self.kind = kind
        self.source = source
        self.muted = muted
        self.mid = mid
        self.msid = msid
    }
}

/// One forwarded track as it arrives: reception statistics, NACK state,
/// and the VP8 or Opus decoder.
final class IncomingTrack {
    let line: ReceiveLine
    let trackID: String
    let ssrc: SSRC
    var statistics: RTPReceptionStatistics
    var stats: ReceivedTrackStats
    var nack = NACKGenerator(retryInterval: .milliseconds(40), maxRetries: 5, maxAge: .milliseconds(1000))
    private var depacketizer: VP8Depacketizer?
    private var videoDecoder: VP8Decoder?
    private var audioDecoder: OpusAudioDecoder?
    private var lastAudioIndex: Int64?
    var wantsKeyframe = false
    var lastPLIAt: Instant?
    private(set) var firstPacketAt: Instant?
    private var lastPacketAt: Instant?
    private(set) var firstFrameAt: Instant?
    private var lastFrameAt: Instant?
    private var window: (at: Instant, frames: Int, bytes: Int)?
    var malformedPackets = 0

    init(line: ReceiveLine, trackID: String, ssrc: SSRC) {
        self.line = line
        self.trackID = trackID
        self.ssrc = ssrc
        statistics = RTPReceptionStatistics(clockRate: line.clockRate)
        stats = ReceivedTrackStats(trackID: trackID, kind: line.kind.rawValue, mid: line.mid.rawValue, ssrc: ssrc.rawValue)
        if line.kind == .video {
            // With NACK the depacketizer must wait for repairs rather than
            // give a hole up after 10 newer packets (a keyframe alone is
            // ~50): the NACK tracker decides when a packet is lost for good
            // (`repairsAbandoned`). Without NACK nothing will come: 10 it is.
            depacketizer = VP8Depacketizer(reorderWindow: line.nack ? 512 : 10, maxPendingPackets: 1024)
            videoDecoder = try? VP8Decoder()
        } else {
            audioDecoder = try? OpusAudioDecoder(channels: 2)
        }
    }

    var isVideo: Bool { line.kind == .video }

    /// One RTP packet of this track (an RTX repair already unwrapped to the
    /// original sequence number and payload, RFC 4588 §4).
    func receive(sequenceNumber: SequenceNumber, timestamp: UInt32, marker: Bool, payload: UnsafeRawBufferPointer,
                 size: Int, isRepair: Bool, now: Instant) {
        if firstPacketAt == nil { firstPacketAt = now }
        lastPacketAt = now
        stats.packetsReceived += 1
        stats.bytesReceived += size
        if isRepair { stats.retransmissionsReceived += 1 }
        let index = statistics.record(sequence: sequenceNumber, timestamp: timestamp, size: size, arrival: now,
                                      isRepair: isRepair)
        let holeTooWide = line.nack && nack.received(index, now: now) == .gapTooWide
        if isVideo {
            receiveVideo(sequenceNumber: sequenceNumber, timestamp: timestamp, marker: marker, payload: payload, now: now)
            if holeTooWide { repairsAbandoned() }
        } else {
            receiveAudio(index: index, payload: payload, now: now)
        }
    }

    private func receiveVideo(sequenceNumber: SequenceNumber, timestamp: UInt32, marker: Bool,
                              payload: UnsafeRawBufferPointer, now: Instant) {
        guard depacketizer != nil else { return }
        do {
            try depacketizer?.push(sequenceNumber: sequenceNumber, timestamp: timestamp, marker: marker, payload: payload)
        } catch {
            malformedPackets += 1
        }
        while let event = depacketizer?.pollEvent() {
            switch event {
            case .frame(let frame):
                decode(frame, now: now)
            case .frameDropped:
                stats.framesDropped += 1
                videoDecoder?.frameLost()
                wantsKeyframe = true
            case .packetsLost:
                break
            }
        }
    }

    private func decode(_ frame: VP8Frame, now: Instant) {
        guard let decoder = videoDecoder else { return }
        let sample = stats.framesDecoded % 10 == 0
        var width = 0, height = 0, spread = 0
        do {
            let shown = try frame.data.withUnsafeBytes { raw in
                try decoder.decode(raw) { view in
                    width = view.width
                    height = view.height
                    if sample { spread = Self.lumaSpread(view) }
                }
            }
            guard shown else { return }
        } catch {
            // RFC 4585 §6.3.1: a decoder that lost its reference asks for a
            // new picture; so does one that could not decode what came.
            stats.decodeErrors += 1
            wantsKeyframe = true
            return
        }
        stats.framesDecoded += 1
        if frame.isKeyFrame { stats.keyframesDecoded += 1 }
        stats.width = width
        stats.height = height
        if sample, spread > 20 { stats.nonblankFrames += 1 }
        if firstFrameAt == nil { firstFrameAt = now }
        lastFrameAt = now
        if decoder.needsKeyframe == false { wantsKeyframe = false }
    }

    /// Max minus min luma over a coarse grid: a blank (uniform) picture has
    /// none, the synthetic sources have plenty.
    static func lumaSpread(_ view: I420View) -> Int {
        var lo = 255, hi = 0
        let stepX = max(1, view.width / 16), stepY = max(1, view.height / 16)
        var y = 0
        while y < view.height {
            var x = 0
            while x < view.width {
                let v = Int(view.luma(x: x, y: y))
                lo = min(lo, v)
                hi = max(hi, v)
                x += stepX
            }
            y += stepY
        }
        return hi - lo
    }

    private func receiveAudio(index: Int64, payload: UnsafeRawBufferPointer, now: Instant) {
        guard let decoder = audioDecoder, payload.count > 0 else { return }
        if let last = lastAudioIndex {
            // Late or duplicate: the moment for it has passed (no jitter
            // buffer here; concealment already covered it).
            guard index > last else { return }
            let gap = index - last - 1
            if gap > 0, gap <= 5 {
                // RFC 6716 §4.4: conceal the lost 20 ms frames so the decoder's
                // state follows the stream.
                let duration = decoder.lastPacketDuration > 0 ? decoder.lastPacketDuration : 960
                for _ in 0..<gap { _ = try? decoder.conceal(samplesPerChannel: duration) { _ in () } }
            }
        }
        lastAudioIndex = index
        let sample = stats.framesDecoded % 10 == 0
        do {
            let loud = try decoder.decode(payload) { pcm -> Bool in
                guard sample else { return false }
                var peak = 0
                for s in pcm { peak = max(peak, abs(Int(s))) }
                return peak > 100
            }
            stats.framesDecoded += 1
            if loud { stats.nonblankFrames += 1 }
            if firstFrameAt == nil { firstFrameAt = now }
            lastFrameAt = now
        } catch {
            stats.decodeErrors += 1
        }
    }

    /// The NACK tracker gave a hole up: stop waiting for it. Complete
    /// frames after it come out, the incomplete ones are dropped (a
    /// reference is gone anyway, a keyframe must follow).
    func repairsAbandoned() {
        depacketizer?.flush()
        while let event = depacketizer?.pollEvent() {
            switch event {
            case .frame(let frame): decode(frame, now: lastPacketAt ?? Instant.zero)
            case .frameDropped:
                stats.framesDropped += 1
                videoDecoder?.frameLost()
            case .packetsLost: break
            }
        }
        wantsKeyframe = true
    }

    /// Updates the per-second rates (called once a reporting interval).
    func sampleWindow(now: Instant) {
        if let w = window {
            let seconds = Double((now - w.at).nanoseconds) / 1e9
            if seconds > 0.1 {
                stats.currentFPS = Double(stats.framesDecoded - w.frames) / seconds
                stats.currentBitrateKbps = Double(stats.bytesReceived - w.bytes) * 8 / seconds / 1000
            }
        }
        window = (now, stats.framesDecoded, stats.bytesReceived)
    }

    func snapshot(callStart: Instant?, roundTrip: Duration?) -> ReceivedTrackStats {
        var s = stats
        s.packetsLost = Int(statistics.lost)
        let expected = statistics.expected
        s.lossPercent = expected > 0 ? Double(statistics.lost) * 100 / Double(expected) : 0
        s.jitterMs = statistics.jitterSeconds * 1000
        if let first = firstFrameAt, let last = lastFrameAt, stats.framesDecoded > 1, last > first {
            s.fps = Double(stats.framesDecoded - 1) / (Double((last - first).nanoseconds) / 1e9)
        }
        if let first = firstPacketAt, let last = lastPacketAt, last > first {
            s.bitrateKbps = Double(stats.bytesReceived) * 8 / (Double((last - first).nanoseconds) / 1e9) / 1000
        }
        if let callStart {
            s.timeToFirstPacketMs = firstPacketAt.map { Double(($0 - callStart).nanoseconds) / 1e6 }
            s.timeToFirstFrameMs = firstFrameAt.map { Double(($0 - callStart).nanoseconds) / 1e6 }
        }
        s.rttMs = roundTrip.map { Double($0.nanoseconds) / 1e6 }
        return s
    }
}

/// Everything the subscribe connection receives: RTP routed to tracks by
/// SSRC, mid extension or payload type (RFC 8843 §9.2), depacketized and
/// decoded; and the RTCP we owe the SFU: receiver reports (RFC 3550 §6.4.2),
/// NACKs for holes (RFC 4585 §6.2.1), PLIs when a picture is lost
/// (RFC 4585 §6.3.1). Sans-IO.
public final class MediaReceiver {
    public let rtcpSSRC: SSRC
    public let cname: String
    public var clock: NTPClock
    /// Our `call_start` / `call_accept`: times to first packet and frame count from it.
    public var callStartedAt: Instant?
    /// The subscribe connection's RTT (the IO edge measures ICE checks).
    public var roundTrip: Duration?
    public var reportInterval: Duration = .seconds(1)
    /// Keyframe requests per track at most this often.
    public var pliInterval: Duration = .milliseconds(500)

    private var lines: [ReceiveLine] = []
    private var tracks: [Mid: IncomingTrack] = [:]
    private var finished: [IncomingTrack] = []
    private var bySSRC: [UInt32: (track: IncomingTrack, isRTX: Bool)] = [:]
    private var byPayloadType: [UInt8: (mid: Mid, isRTX: Bool)] = [:]
    private var midExtensionID: UInt8?
    private var infos: [String: TrackInfo] = [:]
    private var nextReportAt: Instant?
    public private(set) var unroutablePackets = 0
    public private(set) var senderReportsReceived = 0

    public init(rtcpSSRC: SSRC, cname: String, clock: NTPClock = NTPClock(ntpAtZero: 0)) {
        self.rtcpSSRC = rtcpSSRC
        self.cname = cname
        self.clock = clock
    }

    /// Applies a negotiation: a line with a new SSRC or track starts a new
    /// track (its old one keeps its final stats); an inactive line ends one.
    public func configure(lines newLines: [ReceiveLine], now: Instant) {
        lines = newLines
        var keep: [Mid: IncomingTrack] = [:]
        for line in newLines where line.isActive {
            guard let ssrc = line.ssrc else { continue }
            let trackID = line.trackID ?? "mid-\(line.mid.rawValue)-\(ssrc.rawValue)"
            if let existing = tracks[line.mid], existing.ssrc == ssrc, existing.trackID == trackID {
                keep[line.mid] = existing
            } else {
                keep[line.mid] = IncomingTrack(line: line, trackID: trackID, ssrc: ssrc)
            }
        }
        for (mid, old) in tracks where keep[mid] !== old { finished.append(old) }
        tracks = keep
        bySSRC.removeAll()
        byPayloadType.removeAll()
        midExtensionID = nil
        for line in newLines {
            if midExtensionID == nil { midExtensionID = line.extensions.mid }
            byPayloadType[line.payloadType.rawValue] = (line.mid, false)
            if let rtx = line.rtxPayloadType { byPayloadType[rtx.rawValue] = (line.mid, true) }
            guard let track = tracks[line.mid] else { continue }
            bySSRC[track.ssrc.rawValue] = (track, false)
            if let rtx = line.rtxSSRC { bySSRC[rtx.rawValue] = (track, true) }
        }
        applyInfos()
    }

    /// A `tracks` frame: names the user and source of each track.
    public func updateTracks(_ list: [TrackInfo]) {
        for info in list { infos[info.trackID] = info }
        applyInfos()
    }

    private func applyInfos() {
        for track in tracks.values {
            let info = infos[track.trackID]
                ?? infos.values.first { $0.mid == track.line.mid.rawValue && $0.kind == track.line.kind.rawValue }
            guard let info else { continue }
            track.stats.user = info.user
            track.stats.source = info.source
        }
    }

    /// One decrypted RTP packet from the subscribe connection.
    public func handleRTP(_ packet: [UInt8], now: Instant) {
        packet.withUnsafeBytes { bytes in
            guard let header = try? RTPHeaderView(bytes) else {
                unroutablePackets += 1
                return
            }
            guard let (track, isRTX) = route(header) else {
                unroutablePackets += 1
                return
            }
            if isRTX {
                // RFC 4588 §4: OSN, then the original payload.
                let payload = header.payload
                guard payload.count > 2 else { return }  // an empty RTX packet is padding (probing)
                let osn = UInt16(payload[0]) << 8 | UInt16(payload[1])
                track.receive(sequenceNumber: SequenceNumber(osn), timestamp: header.timestamp, marker: header.marker,
                              payload: UnsafeRawBufferPointer(rebasing: payload[2...]), size: bytes.count,
                              isRepair: true, now: now)
            } else {
                track.receive(sequenceNumber: header.sequenceNumber, timestamp: header.timestamp, marker: header.marker,
                              payload: header.payload, size: bytes.count, isRepair: false, now: now)
            }
        }
    }

    private func route(_ header: RTPHeaderView) -> (IncomingTrack, Bool)? {
        if let hit = bySSRC[header.ssrc.rawValue] { return hit }
        // An SSRC the offer did not list: the mid extension names the line
        // (RFC 8843 §9.2), else the line's own payload types do.
        var found: (Mid, Bool)?
        if let id = midExtensionID, let element = header.extensionElement(id: id) {
            let mid = Mid(rawValue: String(decoding: element.value, as: UTF8.self))
            if let line = lines.first(where: { $0.mid == mid }) {
                found = (mid, line.rtxPayloadType?.rawValue == header.payloadTypeValue)
            }
        }
        if found == nil, let byPT = byPayloadType[header.payloadTypeValue] { found = (byPT.mid, byPT.isRTX) }
        guard let (mid, isRTX) = found, let track = tracks[mid] else { return nil }
        bySSRC[header.ssrc.rawValue] = (track, isRTX)
        return (track, isRTX)
    }

    /// One decrypted RTCP compound: the SFU's sender reports, whose NTP
    /// time our receiver reports echo as LSR (RFC 3550 §6.4.1).
    public func handleRTCP(_ bytes: [UInt8], now: Instant) {
        guard let packets = try? RTCPCompound.parse(bytes) else { return }
        for case .senderReport(let sr) in packets {
            senderReportsReceived += 1
            bySSRC[sr.ssrc.rawValue]?.track.statistics.lastSenderReport =
                (UInt32(truncatingIfNeeded: sr.ntpTimestamp >> 16), now)
        }
    }

    /// When `feedback(now:)` next has something periodic to send.
    public var nextDeadline: Instant? { nextReportAt }

    /// RTCP to send now: NACKs and PLIs as they are due (reduced-size,
    /// RFC 5506, negotiated with rtcp-rsize), and a receiver report with
    /// SDES CNAME every `reportInterval`. At most one compound.
    public func feedback(now: Instant) -> [UInt8]? {
        var packets: [RTCPPacket] = []
        // Ask again only once a repair could have come back (RFC 4585
        // §3.5.3 leaves the timing to the receiver): one and a half RTTs,
        // and no less than 50 ms, since a packet the SFU never got must
        // first be repaired on the publisher's leg.
        let retry = max(.milliseconds(50), (roundTrip ?? .milliseconds(20)) * 3 / 2)
        for track in tracks.values {
            if track.line.nack {
                track.nack.retryInterval = retry
                let abandoned = track.nack.abandoned
                let lost = track.nack.due(now: now)
                if track.nack.abandoned != abandoned { track.repairsAbandoned() }
                if !lost.isEmpty {
                    track.stats.nacksSent += 1
                    packets.append(.genericNACK(RTCPGenericNACK(senderSSRC: rtcpSSRC, mediaSSRC: track.ssrc, missing: lost)))
                }
            }
            if track.isVideo, track.line.pli, track.wantsKeyframe,
               track.lastPLIAt.map({ now - $0 >= pliInterval }) ?? true {
                track.lastPLIAt = now
                track.wantsKeyframe = false
                track.stats.plisSent += 1
                packets.append(.pictureLossIndication(RTCPPictureLossIndication(senderSSRC: rtcpSSRC, mediaSSRC: track.ssrc)))
            }
        }
        if nextReportAt.map({ now >= $0 }) ?? true {
            nextReportAt = now + reportInterval
            var blocks: [RTCPReportBlock] = []
            for track in tracks.values where track.stats.packetsReceived > 0 {
                track.sampleWindow(now: now)
                blocks.append(track.statistics.reportBlock(ssrc: track.ssrc, now: now))
            }
            // RFC 3550 §6.1: a full compound starts with the report and carries CNAME.
            packets.insert(.receiverReport(RTCPReceiverReport(ssrc: rtcpSSRC, reports: Array(blocks.prefix(31)))), at: 0)
            packets.append(.sourceDescription(RTCPSourceDescription(source: rtcpSSRC, cname: cname)))
        }
        guard !packets.isEmpty else { return nil }
        return try? RTCPCompound.serialize(packets)
    }

    /// Every track received so far, ended ones first.
    public func stats() -> [ReceivedTrackStats] {
        let current = tracks.values.sorted { (Int($0.line.mid.rawValue) ?? 0, $0.line.mid.rawValue) < (Int($1.line.mid.rawValue) ?? 0, $1.line.mid.rawValue) }
        return (finished + current).map { $0.snapshot(callStart: callStartedAt, roundTrip: roundTrip) }
    }

    /// The first decoded frame of any track, and of any video / audio track.
    public func firstFrame(kind: MediaKind? = nil) -> Instant? {
        (finished + Array(tracks.values)).filter { kind == nil || $0.line.kind == kind }.compactMap(\.firstFrameAt).min()
    }
}
