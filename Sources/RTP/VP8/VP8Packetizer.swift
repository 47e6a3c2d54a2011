import RTCBase

/// Splits encoded VP8 frames into RTP payloads (RFC 7741 §4.1, §4.2).
///
/// The whole frame is sent as partition 0: S=1 and PID=0 on its first packet
/// only, which is what receivers key on to find frame starts. Packets are
/// balanced (sizes differ by at most one byte) rather than filled greedily,
/// so a frame slightly over the limit does not leave a tiny tail packet.
/// The caller sets the RTP marker on the packet flagged as last.
public struct VP8Packetizer: Sendable {
    /// PictureID for the next frame; advances by one per frame.
    public var pictureID: UInt16
    /// Write PictureID (I=1).
    public var usesPictureID: Bool
    /// Write PictureID in 15 bits (M=1) rather than 7.
    public var longPictureID: Bool
    /// TL0PICIDX of the next base-layer frame, or nil to leave L=0. It
    /// advances on every frame with TID 0; higher layers repeat the latest.
    public var nextTL0PicIndex: UInt8?

    public init(pictureID: UInt16 = 0, usesPictureID: Bool = true, longPictureID: Bool = true, tl0PicIndex: UInt8? = nil) {
        self.pictureID = pictureID
        self.usesPictureID = usesPictureID
        self.longPictureID = longPictureID
        nextTL0PicIndex = tl0PicIndex
    }

    /// Per-frame temporal-scalability fields.
    public struct FrameOptions: Sendable {
        public var temporalLayerID: UInt8?
        public var layerSync: Bool
        public var nonReference: Bool
        public var keyIndex: UInt8?

        public init(temporalLayerID: UInt8? = nil, layerSync: Bool = false, nonReference: Bool = false, keyIndex: UInt8? = nil) {
            self.temporalLayerID = temporalLayerID
            self.layerSync = layerSync
            self.nonReference = nonReference
            self.keyIndex = keyIndex
        }
    }

    /// Packetizes one frame, calling `emit(descriptor, data, isLast)` per
    /// packet: the RTP payload is `descriptor` followed by `data` (a slice of
    /// `frame`), at most `maxPayloadSize` bytes in all. Handing the two parts
    /// over separately lets the caller copy them straight into its packet
    /// buffer: no heap allocation and no intermediate copy. The descriptor
    /// bytes are valid only during the call.
    public mutating func packetize(
        frame: UnsafeRawBufferPointer, maxPayloadSize: Int, options: FrameOptions = FrameOptions(),
        emit: (_ descriptor: UnsafeRawBufferPointer, _ data: UnsafeRawBufferPointer, _ isLast: Bool) -> Void
    ) throws(VP8Error) {
        guard !frame.isEmpty else { throw .emptyFrame }
        var tl0: UInt8?
        if let next = nextTL0PicIndex {
            // Upper temporal layers carry the TL0PICIDX of the latest base frame.
            tl0 = (options.temporalLayerID ?? 0) == 0 ? next : next &- 1
        }
        var descriptor = VP8PayloadDescriptor(
            nonReference: options.nonReference, startOfPartition: true, partitionIndex: 0,
            pictureID: usesPictureID ? pictureID & (longPictureID ? 0x7FFF : 0x7F) : nil, longPictureID: longPictureID,
            tl0PicIndex: tl0, temporalLayerID: options.temporalLayerID, layerSync: options.layerSync,
            keyIndex: options.keyIndex)
        let headerLength = descriptor.length
        let capacity = maxPayloadSize - headerLength
        guard capacity > 0 else { throw .payloadSizeTooSmall }
        let packets = (frame.count + capacity - 1) / capacity
        let base = frame.count / packets
        let extra = frame.count % packets

        // The descriptor is at most 6 bytes: a fixed small stack buffer.
        let failure: VP8Error? = withUnsafeTemporaryAllocation(byteCount: 8, alignment: 1) { scratch in
            var offset = 0
            for i in 0..<packets {
                let size = base + (i < extra ? 1 : 0)
                var writer = ByteWriter(scratch)
                do throws(VP8Error) {
                    try descriptor.write(to: &writer)
                } catch {
                    return error
                }
                emit(
                    UnsafeRawBufferPointer(rebasing: scratch[..<writer.offset]),
                    UnsafeRawBufferPointer(rebasing: frame[offset..<(offset + size)]),
                    i == packets - 1)
                offset += size
                descriptor.startOfPartition = false
            }
            return nil
        }
        if let failure { throw failure }
        if usesPictureID { pictureID = (pictureID &+ 1) & (longPictureID ? 0x7FFF : 0x7F) }
        if let next = nextTL0PicIndex, (options.temporalLayerID ?? 0) == 0 { nextTL0PicIndex = next &+ 1 }
    }

    /// Packetizes one frame into owned payloads; the last gets the marker.
    public mutating func packetize(
        frame: [UInt8], maxPayloadSize: Int, options: FrameOptions = FrameOptions()
    ) throws(VP8Error) -> [[UInt8]] {
        var out: [[UInt8]] = []
        try withBytes(frame) { (b) throws(VP8Error) in
            try packetize(frame: b, maxPayloadSize: maxPayloadSize, options: options) { descriptor, data, _ in
                var payload = [UInt8]()
                payload.reserveCapacity(descriptor.count + data.count)
                payload += descriptor
                payload += data
                out.append(payload)
            }
        }
        return out
    }
}
