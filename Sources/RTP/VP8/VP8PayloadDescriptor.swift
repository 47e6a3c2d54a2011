import RTCBase

/// Which part of a VP8 payload descriptor ran out of bytes.
public enum VP8DescriptorField: Sendable, Equatable {
    /// The required first octet (X|R|N|S|R|PID).
    case required
    /// The I|L|T|K octet that X=1 announces.
    case extendedControlBits
    /// The first PictureID octet (I=1).
    case pictureID
    /// The second PictureID octet (M=1).
    case extendedPictureID
    /// TL0PICIDX (L=1).
    case tl0PicIndex
    /// The TID|Y|KEYIDX octet (T=1 or K=1).
    case temporalLayerKeyIndex
}

/// Errors of the VP8 payload format (RFC 7741).
public enum VP8Error: Error, Sendable, Equatable {
    /// The descriptor ends before the field its flags announce.
    case truncated(VP8DescriptorField)
    /// A field to be written does not fit (PictureID over 7/15 bits, PID over
    /// 3 bits, TID over 2 bits, KEYIDX over 5 bits).
    case invalidValue
    /// An in-place rewrite asked for a field the descriptor does not carry.
    case missingField(VP8DescriptorField)
    /// The VP8 payload header (RFC 7741 §4.3) is shorter than 3 bytes, or a
    /// keyframe's uncompressed chunk (RFC 6386 §9.1) is shorter than 10.
    case truncatedPayloadHeader
    /// A keyframe without the 9d 01 2a start code (RFC 6386 §9.1).
    case badStartCode
    /// Keyframe-only data was asked of an interframe.
    case notKeyFrame
    /// Nothing to packetize.
    case emptyFrame
    /// The payload size limit leaves no room for frame data after the descriptor.
    case payloadSizeTooSmall
    /// The caller's buffer is too small.
    case bufferTooSmall
}

/// Offsets of the rewritable fields of a VP8 payload descriptor, parsed
/// without allocating (RFC 7741 §4.2). The SFU uses this on every forwarded
/// video packet.
@frozen
public struct VP8DescriptorLayout: Sendable, Equatable {
    /// Descriptor length in bytes: the VP8 data starts here.
    public let length: Int
    /// Offset of the PictureID field, or -1.
    public let pictureIDOffset: Int
    /// True when PictureID is 15 bits (M=1).
    public let longPictureID: Bool
    /// Offset of TL0PICIDX, or -1.
    public let tl0PicIndexOffset: Int
    /// Offset of the TID|Y|KEYIDX octet, or -1.
    public let temporalLayerKeyIndexOffset: Int

    @inlinable
    public init(parsing b: UnsafeRawBufferPointer) throws(VP8Error) {
        let count = b.count
        guard count >= 1 else { throw .truncated(.required) }
        var offset = 1
        var pictureID = -1
        var long = false
        var tl0 = -1
        var tk = -1
        if b[0] & 0x80 != 0 {
            guard count > offset else { throw .truncated(.extendedControlBits) }
            let flags = b[offset]
            offset &+= 1
            if flags & 0x80 != 0 {  // I
                guard count > offset else { throw .truncated(.pictureID) }
                pictureID = offset
                if b[offset] & 0x80 != 0 {  // M: 15-bit PictureID
                    long = true
                    guard count > offset &+ 1 else { throw .truncated(.extendedPictureID) }
                    offset &+= 2
                } else {
                    offset &+= 1
                }
            }
            if flags & 0x40 != 0 {  // L
                guard count > offset else { throw .truncated(.tl0PicIndex) }
                tl0 = offset
                offset &+= 1
            }
            if flags & 0x30 != 0 {  // T or K: one shared octet
                guard count > offset else { throw .truncated(.temporalLayerKeyIndex) }
                tk = offset
                offset &+= 1
            }
        }
        length = offset
        pictureIDOffset = pictureID
        longPictureID = long
        tl0PicIndexOffset = tl0
        temporalLayerKeyIndexOffset = tk
    }

    /// The PictureID (7 or 15 bits), or nil.
    @inlinable
    public func pictureID(in b: UnsafeRawBufferPointer) -> UInt16? {
        guard pictureIDOffset >= 0 else { return nil }
        if longPictureID {
            return UInt16(b[pictureIDOffset] & 0x7F) << 8 | UInt16(b[pictureIDOffset &+ 1])
        }
        return UInt16(b[pictureIDOffset] & 0x7F)
    }

    @inlinable
    public func tl0PicIndex(in b: UnsafeRawBufferPointer) -> UInt8? {
        tl0PicIndexOffset >= 0 ? b[tl0PicIndexOffset] : nil
    }

    /// Rewrites PictureID in place, keeping its length: a 7-bit field takes
    /// the low 7 bits of `value`, a 15-bit field the low 15.
    @inlinable
    public func setPictureID(_ value: UInt16, in b: UnsafeMutableRawBufferPointer) throws(VP8Error) {
        guard pictureIDOffset >= 0 else { throw .missingField(.pictureID) }
        if longPictureID {
            b[pictureIDOffset] = 0x80 | UInt8(truncatingIfNeeded: value >> 8) & 0x7F
            b[pictureIDOffset &+ 1] = UInt8(truncatingIfNeeded: value)
        } else {
            b[pictureIDOffset] = UInt8(truncatingIfNeeded: value) & 0x7F
        }
    }

    @inlinable
    public func setTL0PicIndex(_ value: UInt8, in b: UnsafeMutableRawBufferPointer) throws(VP8Error) {
        guard tl0PicIndexOffset >= 0 else { throw .missingField(.tl0PicIndex) }
        b[tl0PicIndexOffset] = value
    }
}

/// The VP8 payload descriptor (RFC 7741 §4.2):
///
///     X|R|N|S|R|PID        required
///     I|L|T|K|RSV          if X
///     M|PictureID(7)       if I
///     PictureID(8)         if M
///     TL0PICIDX            if L
///     TID(2)|Y|KEYIDX(5)   if T or K
///
/// Reserved bits are written as zero and ignored on parse, as are TID/Y when
/// T=0 and KEYIDX when K=0 (§4.2).
public struct VP8PayloadDescriptor: Sendable, Equatable {
    /// N: the frame can be discarded without affecting others.
    public var nonReference: Bool
    /// S: this packet starts a VP8 partition.
    public var startOfPartition: Bool
    /// PID: the partition index, 0–7.
    public var partitionIndex: UInt8
    /// PictureID, 7 or 15 bits depending on `longPictureID`.
    public var pictureID: UInt16?
    /// M: PictureID is written in 15 bits.
    public var longPictureID: Bool
    public var tl0PicIndex: UInt8?
    /// TID, 0–3 (T=1).
    public var temporalLayerID: UInt8?
    /// Y: layer sync; only written when T=1.
    public var layerSync: Bool
    /// KEYIDX, 0–31 (K=1).
    public var keyIndex: UInt8?
    /// Keeps X=1 with an all-zero I|L|T|K octet, which is legal and must
    /// survive a parse→build round trip unchanged.
    public var emptyExtension: Bool

    public init(
        nonReference: Bool = false, startOfPartition: Bool = false, partitionIndex: UInt8 = 0,
        pictureID: UInt16? = nil, longPictureID: Bool = true, tl0PicIndex: UInt8? = nil,
        temporalLayerID: UInt8? = nil, layerSync: Bool = false, keyIndex: UInt8? = nil, emptyExtension: Bool = false
    ) {
        self.nonReference = nonReference
        self.startOfPartition = startOfPartition
        self.partitionIndex = partitionIndex
        self.pictureID = pictureID
        self.longPictureID = longPictureID
        self.tl0PicIndex = tl0PicIndex
        self.temporalLayerID = temporalLayerID
        self.layerSync = layerSync
        self.keyIndex = keyIndex
        self.emptyExtension = emptyExtension
    }

    /// Parses the descriptor at the start of an RTP payload.
    public init(parsing b: UnsafeRawBufferPointer) throws(VP8Error) {
        let layout = try VP8DescriptorLayout(parsing: b)
        let first = b[0]
        nonReference = first & 0x20 != 0
        startOfPartition = first & 0x10 != 0
        partitionIndex = first & 0x07
        pictureID = layout.pictureID(in: b)
        // M only means something when I=1; default to long otherwise.
        longPictureID = layout.pictureIDOffset >= 0 ? layout.longPictureID : true
        tl0PicIndex = layout.tl0PicIndex(in: b)
        let flags: UInt8 = first & 0x80 != 0 ? b[1] : 0
        if layout.temporalLayerKeyIndexOffset >= 0 {
            let tk = b[layout.temporalLayerKeyIndexOffset]
            temporalLayerID = flags & 0x20 != 0 ? tk >> 6 : nil
            layerSync = flags & 0x20 != 0 && tk & 0x20 != 0
            keyIndex = flags & 0x10 != 0 ? tk & 0x1F : nil
        } else {
            temporalLayerID = nil
            layerSync = false
            keyIndex = nil
        }
        emptyExtension = first & 0x80 != 0 && flags & 0xF0 == 0
    }

    public init(parsing bytes: [UInt8]) throws(VP8Error) {
        self = try withBytes(bytes) { (b) throws(VP8Error) in try VP8PayloadDescriptor(parsing: b) }
    }

    var hasExtension: Bool {
        emptyExtension || pictureID != nil || tl0PicIndex != nil || temporalLayerID != nil || keyIndex != nil
    }

    /// Bytes `write` produces.
    public var length: Int {
        guard hasExtension else { return 1 }
        var n = 2
        if pictureID != nil { n += longPictureID ? 2 : 1 }
        if tl0PicIndex != nil { n += 1 }
        if temporalLayerID != nil || keyIndex != nil { n += 1 }
        return n
    }

    public func write(to writer: inout ByteWriter) throws(VP8Error) {
        guard partitionIndex < 8, (temporalLayerID ?? 0) < 4, (keyIndex ?? 0) < 32 else { throw .invalidValue }
        if let pictureID, pictureID >= (longPictureID ? 0x8000 : 0x80) { throw .invalidValue }
        guard writer.remaining >= length else { throw .bufferTooSmall }
        try writing(VP8Error.bufferTooSmall) { () throws(ByteReaderError) in
            var first = partitionIndex
            if hasExtension { first |= 0x80 }
            if nonReference { first |= 0x20 }
            if startOfPartition { first |= 0x10 }
            try writer.write(first)
            guard hasExtension else { return }
            var flags: UInt8 = 0
            if pictureID != nil { flags |= 0x80 }
            if tl0PicIndex != nil { flags |= 0x40 }
            if temporalLayerID != nil { flags |= 0x20 }
            if keyIndex != nil { flags |= 0x10 }
            try writer.write(flags)
            if let pictureID {
                if longPictureID {
                    try writer.write(0x8000 | pictureID)
                } else {
                    try writer.write(UInt8(pictureID))
                }
            }
            if let tl0PicIndex { try writer.write(tl0PicIndex) }
            if temporalLayerID != nil || keyIndex != nil {
                var tk: UInt8 = 0
                if let temporalLayerID {
                    tk |= temporalLayerID << 6
                    if layerSync { tk |= 0x20 }
                }
                if let keyIndex { tk |= keyIndex }
                try writer.write(tk)
            }
        }
    }

    public func serialized() throws(VP8Error) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: length)
        try withMutableBytes(&out) { (b) throws(VP8Error) in
            var w = ByteWriter(b)
            try write(to: &w)
        }
        return out
    }

    /// True when this RTP payload starts a VP8 keyframe: the first packet of
    /// partition 0 (S=1, PID=0) whose payload header has P=0 (RFC 7741 §4.3).
    public static func isKeyFrame(rtpPayload b: UnsafeRawBufferPointer) -> Bool {
        guard let layout = try? VP8DescriptorLayout(parsing: b), b[0] & 0x17 == 0x10,
              let header = try? VP8PayloadHeader(parsing: UnsafeRawBufferPointer(rebasing: b[layout.length...]))
        else { return false }
        return header.isKeyFrame
    }
}

/// The first three bytes of a VP8 frame, which the first packet of
/// partition 0 carries right after the descriptor (RFC 7741 §4.3; the frame
/// tag of RFC 6386 §9.1, a little-endian 24-bit field).
public struct VP8PayloadHeader: Sendable, Equatable {
    /// From the inverted P bit: 0 means keyframe.
    public var isKeyFrame: Bool
    /// VER, 3 bits.
    public var version: UInt8
    /// H: show_frame.
    public var showFrame: Bool
    /// Size of the first partition in bytes, 19 bits.
    public var firstPartitionSize: UInt32

    public init(parsing b: UnsafeRawBufferPointer) throws(VP8Error) {
        guard b.count >= 3 else { throw .truncatedPayloadHeader }
        let tag = UInt32(b[0]) | UInt32(b[1]) << 8 | UInt32(b[2]) << 16
        isKeyFrame = tag & 1 == 0
        version = UInt8(tag >> 1 & 0x7)
        showFrame = tag >> 4 & 1 != 0
        firstPartitionSize = tag >> 5
    }
}

/// The uncompressed data chunk that follows the frame tag of a keyframe
/// (RFC 6386 §9.1): start code 9d 01 2a, then 16-bit little-endian width and
/// height, each with a 2-bit upscaling code in the top bits.
public struct VP8KeyFrameHeader: Sendable, Equatable {
    public var width: UInt16
    public var horizontalScale: UInt8
    public var height: UInt16
    public var verticalScale: UInt8

    public init(width: UInt16, horizontalScale: UInt8 = 0, height: UInt16, verticalScale: UInt8 = 0) {
        self.width = width
        self.horizontalScale = horizontalScale
        self.height = height
        self.verticalScale = verticalScale
    }

    /// Parses from the start of the frame (the frame tag included).
    public init(parsing b: UnsafeRawBufferPointer) throws(VP8Error) {
        let header = try VP8PayloadHeader(parsing: b)
        guard header.isKeyFrame else { throw .notKeyFrame }
        guard b.count >= 10 else { throw .truncatedPayloadHeader }
        guard b[3] == 0x9D, b[4] == 0x01, b[5] == 0x2A else { throw .badStartCode }
        let w = UInt16(b[6]) | UInt16(b[7]) << 8
        let h = UInt16(b[8]) | UInt16(b[9]) << 8
        width = w & 0x3FFF
        horizontalScale = UInt8(w >> 14)
        height = h & 0x3FFF
        verticalScale = UInt8(h >> 14)
    }
}
