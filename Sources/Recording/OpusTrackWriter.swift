import Codecs
import RTCBase
import RTP

/// Opus RTP (RFC 7587: one Opus packet per payload, 48 kHz timestamps) into
/// an Ogg Opus file (RFC 7845).
///
/// Packets pass a small reorder buffer (by sequence number) and are written
/// in order; one that arrives after its place was written is dropped. The
/// granule position must count exactly the samples of the packets on the
/// pages (RFC 7845 §4: a muxer "MUST NOT increment the granule position by
/// anything other than the number of samples contained in packets that
/// actually appear"), so a gap in the RTP timestamps — loss, DTX silence
/// (RFC 7587 §4.2 lets a sender stop sending), a new source — is filled
/// with packets of empty frames, which §4 recommends ("packets that
/// explicitly request the use of Packet Loss Concealment") and which a
/// decoder conceals (RFC 6716 §3.2.1: a zero-length frame means lost or
/// DTX). That keeps the granule tied to the RTP clock and the file in sync
/// with the other tracks of the call.
final class OpusTrackWriter {
    /// RFC 7845 §4.2 says pre-skip is the encoder's delay; libopus's at
    /// 48 kHz is 312 samples (6.5 ms), what WebRTC senders use.
    static let preSkip = 312
    /// WebRTC signals opus/48000/2 (RFC 7587 §7): decode to stereo.
    static let channels = 2

    private let file: RecordingFile
    private var muxer: OggOpusMuxer
    private var timeline = MediaTimeline(clockRate: 48_000)
    private var sequences = SequenceUnwrapper()
    private var held: [Int64: HeldPacket] = [:]
    private var lastReleased: Int64?
    private var sequenceGuard = SequenceGuard()
    /// Packets held for reordering: 8 × 20 ms = 160 ms of jitter.
    private let reorderWindow = 8
    /// Samples per channel in the file so far, pre-skip included (the
    /// granule position of the last packet's end).
    private(set) var samplesWritten: Int64 = 0
    /// TOC byte and duration of the last packet written: fill packets copy
    /// its mode, bandwidth and channels so the decoder's state continues.
    private var previousTOC: UInt8?
    private var previousSamples: Int64 = 960
    private var filler: [UInt8] = [0, 0]

    private(set) var packetsWritten = 0
    private(set) var packetsDropped = 0
    private(set) var packetsLost = 0
    private(set) var malformedPayloads = 0
    private(set) var ignoredPackets = 0

    private struct HeldPacket {
        var payload: [UInt8]
        var timestamp: UInt32
        var arrival: Instant
        var samples: Int
    }

    init(file: RecordingFile, serialNumber: UInt32) {
        self.file = file
        muxer = OggOpusMuxer(head: OpusHead(channels: Self.channels, preSkip: Self.preSkip),
                             tags: OpusTags(vendor: "Parley", comments: ["ENCODER=Parley TrackRecorder"]),
                             serialNumber: serialNumber)
        drainMuxer()
    }

    func beginSource() {
        releaseAll()
        sequences = SequenceUnwrapper()
        lastReleased = nil
        sequenceGuard = SequenceGuard()
        timeline.markDiscontinuity()
    }

    func handle(_ packet: RTPHeaderView, arrival: Instant) {
        let payload = packet.payload
        guard !payload.isEmpty else {
            // Padding only (bandwidth probing) is no audio; an empty payload
            // without padding breaks RFC 7587 §4.2 (R1 of RFC 6716 §3.4).
            if packet.hasPadding { ignoredPackets += 1 } else { malformedPayloads += 1 }
            return
        }
        guard let info = try? OpusPacketInfo(parsing: payload) else {
            malformedPayloads += 1
            return
        }
        switch sequenceGuard.check(packet.sequenceNumber.rawValue) {
        case .accept:
            break
        case .reject:
            malformedPayloads += 1
            return
        case .restart:
            releaseAll()
            sequences = SequenceUnwrapper()
            lastReleased = nil
        }
        let index = sequences.unwrap(packet.sequenceNumber)
        if let last = lastReleased, index <= last {
            packetsDropped += 1 // too late: later audio is already in the file
            return
        }
        guard held[index] == nil else {
            ignoredPackets += 1 // duplicate
            return
        }
        held[index] = HeldPacket(payload: Array(payload), timestamp: packet.timestamp, arrival: arrival,
                                 samples: info.samples)
        while held.count > reorderWindow { releaseOldest() }
    }

    private func releaseAll() {
        while !held.isEmpty { releaseOldest() }
    }

    private func releaseOldest() {
        guard let index = held.keys.min(), let packet = held.removeValue(forKey: index) else { return }
        if let last = lastReleased, index > last + 1 { packetsLost += Int(index - last - 1) }
        lastReleased = index
        write(packet)
    }

    private func write(_ packet: HeldPacket) {
        let target = timeline.place(timestamp: packet.timestamp, arrival: packet.arrival,
                                    minimumAdvance: previousSamples)
        if let toc = previousTOC, target - samplesWritten >= 120 {
            conceal(samples: target - samplesWritten, like: OpusTOC(toc))
        }
        // Written even if it starts a little before `target` says (a sender
        // whose timestamps step less than its packets last): audio is never
        // thrown away for timing, and the granule only grows.
        let appended: Bool = packet.payload.withUnsafeBytes { bytes in
            do throws(OggOpusError) {
                try muxer.append(packet: bytes, samples: packet.samples)
                return true
            } catch { return false }
        }
        guard appended else {
            malformedPayloads += 1
            return
        }
        samplesWritten += Int64(packet.samples)
        packetsWritten += 1
        if let toc = packet.payload.first { previousTOC = toc }
        previousSamples = Int64(packet.samples)
        drainMuxer()
    }

    /// Appends packets of zero-length frames covering `samples` (rounded
    /// down to 2.5 ms, the shortest Opus frame). Code 3 packets (RFC 6716
    /// §3.2.5) with a frame count byte and no data: CBR, M frames of zero
    /// bytes, up to 120 ms each (R5), in the previous packet's configuration;
    /// a remainder shorter than its frames goes in 2.5 ms CELT frames of the
    /// same bandwidth (configs 16–31, Table 2).
    private func conceal(samples: Int64, like toc: OpusTOC) {
        var remaining = samples - samples % 120
        let stereo: UInt8 = toc.isStereo ? 0x04 : 0
        while remaining > 0 {
            var frameTOC = OpusTOC(toc.config << 3 | stereo | 0x03)
            if Int64(frameTOC.samplesPerFrame) > remaining {
                let celtBase: UInt8
                switch toc.bandwidth {
                case .narrowband: celtBase = 16
                case .mediumband, .wideband: celtBase = 20
                case .superWideband: celtBase = 24
                case .fullband: celtBase = 28
                }
                frameTOC = OpusTOC(celtBase << 3 | stereo | 0x03)
            }
            let perFrame = Int64(frameTOC.samplesPerFrame)
            let count = min(remaining / perFrame, 5760 / perFrame, 48)
            filler[0] = frameTOC.rawValue
            filler[1] = UInt8(count)
            let ok: Bool = filler.withUnsafeBytes { bytes in
                (try? muxer.append(packet: bytes, samples: Int(count * perFrame))) != nil
            }
            guard ok else { return }
            samplesWritten += count * perFrame
            remaining -= count * perFrame
        }
        drainMuxer()
    }

    private func drainMuxer() {
        guard !muxer.output.isEmpty else { return }
        file.append(muxer.output)
        muxer.output.removeAll(keepingCapacity: true)
    }

    /// Playable media time: the granule minus pre-skip (RFC 7845 §4.2).
    var durationSeconds: Double { Double(max(0, samplesWritten - Int64(Self.preSkip))) / 48_000 }

    /// Writes what is held and the end-of-stream page (RFC 7845 §4.5 would
    /// allow trimming the end; a recording ends where its last packet does).
    func finish() throws(RecordingError) {
        releaseAll()
        muxer.finish()
        drainMuxer()
        try file.finish(rewritingStartWith: nil)
    }
}
