import RTCBase

/// One reassembled VP8 frame.
public struct VP8Frame: Sendable, Equatable {
    public var timestamp: UInt32
    /// The encoded frame: payloads with descriptors removed, in order.
    public var data: [UInt8]
    public var isKeyFrame: Bool
    /// Width, height and scaling of a keyframe (RFC 6386 §9.1); nil otherwise
    /// or if the keyframe header is unreadable.
    public var keyFrameHeader: VP8KeyFrameHeader?
    public var pictureID: UInt16?
    public var tl0PicIndex: UInt8?
    public var temporalLayerID: UInt8?
    public var firstSequenceNumber: SequenceNumber
    public var lastSequenceNumber: SequenceNumber
}

/// Reassembles VP8 frames from RTP packets (RFC 7741 §4.5).
///
/// Packets may arrive out of order; they are held by (unwrapped) sequence
/// number. A frame is complete when its first packet (S=1, PID=0), every
/// packet after it, and its last packet (marker set, or the next packet
/// carries a new timestamp) are present. Frames come out in sequence order.
/// A hole that stays open while `reorderWindow` newer packets arrive is
/// declared lost: the frame it belongs to is dropped (never handed out
/// partial), and `needsKeyFrame` is raised until a keyframe completes, which
/// is when a receiver should send PLI.
///
/// Sans-IO: `push` packets, then drain `pollEvent()`.
public struct VP8Depacketizer: Sendable {
    public enum Event: Sendable, Equatable {
        case frame(VP8Frame)
        /// An incomplete frame was discarded.
        case frameDropped(timestamp: UInt32)
        /// `count` packets from `first` were given up as lost.
        case packetsLost(first: SequenceNumber, count: Int)
    }

    struct Pending: Sendable {
        var timestamp: UInt32
        var marker: Bool
        var isFrameStart: Bool
        var pictureID: UInt16?
        var tl0PicIndex: UInt8?
        var temporalLayerID: UInt8?
        var data: [UInt8]
    }

    /// Newer packets that may arrive while a hole is still waited for.
    public var reorderWindow: Int
    /// Upper bound on held packets; past it, holes are given up at once.
    public var maxPendingPackets: Int
    /// True from the start and after any loss, until a keyframe is output.
    public private(set) var needsKeyFrame = true

    private var unwrapper = SequenceUnwrapper()
    private var pending: [Int64: Pending] = [:]
    private var nextExpected: Int64?
    private var highest: Int64 = .min
    private var lastDroppedTimestamp: UInt32?
    private var events: [Event] = []
    private var eventIndex = 0
    private var flushing = false

    public init(reorderWindow: Int = 10, maxPendingPackets: Int = 1024) {
        self.reorderWindow = reorderWindow
        self.maxPendingPackets = maxPendingPackets
    }

    /// Adds one packet. Duplicates and packets older than what was already
    /// output are ignored. Throws if the VP8 descriptor is malformed (the
    /// packet is then ignored and will count as lost).
    public mutating func push(
        sequenceNumber: SequenceNumber, timestamp: UInt32, marker: Bool, payload: UnsafeRawBufferPointer
    ) throws(VP8Error) {
        let layout = try VP8DescriptorLayout(parsing: payload)
        let index = unwrapper.unwrap(sequenceNumber)
        if let nextExpected, index < nextExpected { return }
        if pending[index] != nil { return }
        let tk = layout.temporalLayerKeyIndexOffset
        let hasT = payload[0] & 0x80 != 0 && payload[1] & 0x20 != 0
        pending[index] = Pending(
            timestamp: timestamp, marker: marker, isFrameStart: payload[0] & 0x17 == 0x10,
            pictureID: layout.pictureID(in: payload), tl0PicIndex: layout.tl0PicIndex(in: payload),
            temporalLayerID: tk >= 0 && hasT ? payload[tk] >> 6 : nil,
            data: Array(payload[layout.length...]))
        highest = max(highest, index)
        assemble()
    }

    /// Adds one packet from a parsed RTP view.
    public mutating func push(_ packet: some RTPHeaderFields) throws(VP8Error) {
        try push(
            sequenceNumber: packet.sequenceNumber, timestamp: packet.timestamp, marker: packet.marker,
            payload: packet.payload)
    }

    /// Gives up every open hole and outputs or drops everything held (end of stream).
    public mutating func flush() {
        flushing = true
        assemble()
        flushing = false
    }

    public mutating func pollEvent() -> Event? {
        guard eventIndex < events.count else {
            events.removeAll(keepingCapacity: true)
            eventIndex = 0
            return nil
        }
        defer { eventIndex += 1 }
        return events[eventIndex]
    }

    /// Packets currently held.
    public var pendingPacketCount: Int { pending.count }

    private func givenUp(_ index: Int64) -> Bool {
        flushing || highest - index >= Int64(reorderWindow) || pending.count > maxPendingPackets
    }

    private mutating func assemble() {
        // Until the first frame is output or dropped there is no anchor: the
        // oldest held packet stands in, so an early packet arriving late is
        // still taken.
        while !pending.isEmpty, let start = nextExpected ?? pending.keys.min() {
            guard let first = pending[start] else {
                guard givenUp(start) else { return }
                // Skip the hole up to the next held packet.
                let next = pending.keys.lazy.filter { $0 > start }.min() ?? (highest + 1)
                events.append(.packetsLost(first: SequenceNumber(UInt16(truncatingIfNeeded: start)), count: Int(next - start)))
                needsKeyFrame = true
                nextExpected = next
                continue
            }
            guard first.isFrameStart else {
                // A continuation whose frame start is gone: drop to the next
                // start. Before anchoring, the start may still be on its way.
                if nextExpected == nil, !givenUp(start) { return }
                drop(from: start, timestamp: first.timestamp)
                continue
            }
            var end = start
            var last: Int64?
            while true {
                guard let p = pending[end] else {
                    guard givenUp(end) else { return }
                    drop(from: start, timestamp: first.timestamp)
                    break
                }
                if end != start, p.timestamp != first.timestamp || p.isFrameStart {
                    // A new frame began without a marker on the old one.
                    last = end - 1
                    break
                }
                if p.marker {
                    last = end
                    break
                }
                end += 1
            }
            if let last { output(from: start, through: last) }
        }
    }

    /// Drops the frame with `timestamp` starting at `start`, and any packets
    /// after it up to the next frame start.
    private mutating func drop(from start: Int64, timestamp: UInt32) {
        if lastDroppedTimestamp != timestamp {
            events.append(.frameDropped(timestamp: timestamp))
            lastDroppedTimestamp = timestamp
        }
        needsKeyFrame = true
        var index = start
        pending[index] = nil
        index += 1
        var holeStart: Int64?
        while index <= highest {
            if let p = pending[index] {
                if let h = holeStart {
                    events.append(.packetsLost(first: SequenceNumber(UInt16(truncatingIfNeeded: h)), count: Int(index - h)))
                    holeStart = nil
                }
                if p.isFrameStart { break }
                if p.timestamp != timestamp, lastDroppedTimestamp != p.timestamp {
                    events.append(.frameDropped(timestamp: p.timestamp))
                    lastDroppedTimestamp = p.timestamp
                }
                pending[index] = nil
            } else if !givenUp(index) {
                // A hole that may still fill: its packet could be this frame's
                // or the next frame's start; wait for it.
                break
            } else if holeStart == nil {
                holeStart = index
            }
            index += 1
        }
        // An unreported given-up hole just before a hole still waited for is
        // left for `assemble` to report as one run.
        nextExpected = holeStart ?? index
    }

    private mutating func output(from start: Int64, through last: Int64) {
        var data: [UInt8] = []
        var size = 0
        for i in start...last { size += pending[i]?.data.count ?? 0 }
        data.reserveCapacity(size)
        for i in start...last { data += pending[i]?.data ?? [] }
        guard let first = pending[start] else { return }
        for i in start...last { pending[i] = nil }
        nextExpected = last + 1
        let keyFrameHeader = data.withUnsafeBytes { try? VP8KeyFrameHeader(parsing: $0) }
        let isKey = data.withUnsafeBytes { (try? VP8PayloadHeader(parsing: $0))?.isKeyFrame ?? false }
        if isKey { needsKeyFrame = false }
        events.append(.frame(VP8Frame(
            timestamp: first.timestamp, data: data, isKeyFrame: isKey, keyFrameHeader: keyFrameHeader,
            pictureID: first.pictureID, tl0PicIndex: first.tl0PicIndex, temporalLayerID: first.temporalLayerID,
            firstSequenceNumber: SequenceNumber(UInt16(truncatingIfNeeded: start)),
            lastSequenceNumber: SequenceNumber(UInt16(truncatingIfNeeded: last)))))
    }
}
