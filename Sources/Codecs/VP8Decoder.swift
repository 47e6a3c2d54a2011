internal import CVPX

/// The uncompressed data chunk at the start of every VP8 frame
/// (RFC 6386 §9.1): a 3-byte frame tag, and for keyframes a start code and
/// the picture size. Parsed without libvpx so a receiver can tell keyframes
/// and sizes before decoding, and so garbage is rejected with a typed error.
public struct VP8FrameHeader: Sendable, Equatable {
    public var isKeyframe: Bool
    /// 0...3 (reconstruction filter / loop filter type).
    public var version: Int
    public var showFrame: Bool
    /// Size in bytes of the first partition (after the header bytes).
    public var firstPartitionSize: Int
    /// Keyframes only: picture size and the 2-bit upscaling hints.
    public var width: Int?
    public var height: Int?
    public var horizontalScale: Int?
    public var verticalScale: Int?

    public enum ParseError: Error, Sendable, Equatable {
        case tooShort
        case invalidVersion
        /// A keyframe without the 0x9d 0x01 0x2a start code.
        case missingStartCode
        case zeroDimension
        /// The first partition runs past the end of the frame.
        case firstPartitionOverrun
    }

    public init(parsing bytes: UnsafeRawBufferPointer) throws(ParseError) {
        guard bytes.count >= 3 else { throw .tooShort }
        let tag = UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16
        isKeyframe = tag & 1 == 0                 // frame type: 0 = key frame
        version = Int((tag >> 1) & 7)
        showFrame = (tag >> 4) & 1 == 1
        firstPartitionSize = Int(tag >> 5)
        guard version <= 3 else { throw .invalidVersion }
        var headerSize = 3
        if isKeyframe {
            guard bytes.count >= 10 else { throw .tooShort }
            guard bytes[3] == 0x9d, bytes[4] == 0x01, bytes[5] == 0x2a else { throw .missingStartCode }
            let w = Int(bytes[6]) | Int(bytes[7]) << 8
            let h = Int(bytes[8]) | Int(bytes[9]) << 8
            width = w & 0x3fff; horizontalScale = w >> 14
            height = h & 0x3fff; verticalScale = h >> 14
            guard width != 0, height != 0 else { throw .zeroDimension }
            headerSize = 10
        }
        guard firstPartitionSize <= bytes.count - headerSize else { throw .firstPartitionOverrun }
    }

    public init(parsing bytes: [UInt8]) throws(ParseError) {
        let result: Result<VP8FrameHeader, ParseError> = bytes.withUnsafeBytes { raw in
            do throws(ParseError) { return .success(try VP8FrameHeader(parsing: raw)) } catch { return .failure(error) }
        }
        self = try result.get()
    }
}

public enum VP8DecoderError: Error, Sendable, Equatable {
    case emptyFrame
    /// The bytes are not a VP8 frame (RFC 6386 §9.1 header check failed).
    case malformedHeader(VP8FrameHeader.ParseError)
    /// A reference was lost (decode error, corruption or a reported gap);
    /// only a keyframe can be decoded now. Ask the sender for one (PLI/FIR).
    case needsKeyframe
    /// libvpx decoded the frame but flagged it corrupt
    /// (`VP8D_GET_FRAME_CORRUPTED`); it is not shown.
    case corruptFrame
    /// libvpx returned this `vpx_codec_err_t`.
    case libvpx(code: Int32)
}

/// A VP8 decoder (libvpx). Tracks whether its references are intact: after
/// an error, a corrupt frame or `frameLost()`, it refuses inter frames with
/// `.needsKeyframe` until a keyframe decodes (RFC 7741 §4.4 / RFC 4585 PLI
/// is the sender-side answer). A new decoder also waits for a keyframe.
public final class VP8Decoder {
    private let context: UnsafeMutablePointer<vpx_codec_ctx_t>
    /// True until a keyframe has been decoded and after any loss.
    public private(set) var needsKeyframe = true
    /// Frames decoded and frames rejected, for stats.
    public private(set) var decodedFrameCount = 0
    public private(set) var rejectedFrameCount = 0

    /// - Parameter threads: decoder threads (`vpxdec --threads`); helps only
    ///   with token partitions.
    public init(threads: Int = 1) throws(VP8DecoderError) {
        let context = UnsafeMutablePointer<vpx_codec_ctx_t>.allocate(capacity: 1)
        context.initialize(to: vpx_codec_ctx_t())
        var cfg = vpx_codec_dec_cfg_t(threads: UInt32(max(1, threads)), w: 0, h: 0)
        let status = shim_vpx_codec_dec_init(context, vpx_codec_vp8_dx(), &cfg, 0)
        guard status == VPX_CODEC_OK else {
            context.deallocate()
            throw .libvpx(code: Int32(status.rawValue))
        }
        self.context = context
    }

    deinit {
        vpx_codec_destroy(context)
        context.deallocate()
    }

    /// Tells the decoder a frame it should have seen never arrived (a gap in
    /// picture ids or sequence numbers of a referenced layer). Inter frames
    /// are refused until the next keyframe.
    public func frameLost() { needsKeyframe = true }

    /// Decodes one complete VP8 frame and, if it is shown, calls `body` with
    /// the picture. The view points into libvpx's frame buffer and is valid
    /// only inside `body`. Returns whether a picture was shown.
    @discardableResult
    public func decode(_ frame: UnsafeRawBufferPointer, _ body: (I420View) -> Void) throws(VP8DecoderError) -> Bool {
        guard frame.count > 0, let base = frame.baseAddress else { throw .emptyFrame }
        let header: VP8FrameHeader
        do throws(VP8FrameHeader.ParseError) { header = try VP8FrameHeader(parsing: frame) } catch {
            rejectedFrameCount += 1
            throw .malformedHeader(error)
        }
        if needsKeyframe && !header.isKeyframe {
            rejectedFrameCount += 1
            throw .needsKeyframe
        }
        let status = vpx_codec_decode(context, base.assumingMemoryBound(to: UInt8.self), UInt32(frame.count), nil, 0)
        guard status == VPX_CODEC_OK else {
            needsKeyframe = true
            rejectedFrameCount += 1
            drainFrames()
            throw .libvpx(code: Int32(status.rawValue))
        }
        var corrupted: Int32 = 0
        if shim_vp8d_get_frame_corrupted(context, &corrupted) == VPX_CODEC_OK, corrupted != 0 {
            needsKeyframe = true
            rejectedFrameCount += 1
            drainFrames()
            throw .corruptFrame
        }
        if header.isKeyframe { needsKeyframe = false }
        decodedFrameCount += 1
        var shown = false
        var iterator: vpx_codec_iter_t? = nil
        while let image = vpx_codec_get_frame(context, &iterator) {
            let img = image.pointee
            guard img.fmt == VPX_IMG_FMT_I420, let y = img.planes.0, let u = img.planes.1, let v = img.planes.2 else {
                continue
            }
            body(I420View(width: Int(img.d_w), height: Int(img.d_h), y: y, u: u, v: v,
                          strideY: Int(img.stride.0), strideU: Int(img.stride.1), strideV: Int(img.stride.2)))
            shown = true
        }
        return shown
    }

    /// Decodes into `frame`, which is replaced by a frame of the decoded
    /// size if its size differs (an allocation only then). Takes any
    /// contiguous bytes (`[UInt8]`, an `IVFFrame`'s `ArraySlice`). Returns
    /// whether a picture was shown.
    @discardableResult
    public func decode<Bytes: Collection<UInt8>>(_ bytes: Bytes, into frame: inout I420Frame)
        throws(VP8DecoderError) -> Bool {
        func run(_ raw: UnsafeRawBufferPointer) -> Result<Bool, VP8DecoderError> {
            do throws(VP8DecoderError) {
                return .success(try decode(raw) { view in
                    if view.width != frame.width || view.height != frame.height {
                        frame = I420Frame(width: view.width, height: view.height)
                    }
                    frame.copy(from: view)
                })
            } catch { return .failure(error) }
        }
        let result = bytes.withContiguousStorageIfAvailable { run(UnsafeRawBufferPointer($0)) }
            ?? Array(bytes).withUnsafeBytes { run($0) }
        return try result.get()
    }

    private func drainFrames() {
        var iterator: vpx_codec_iter_t? = nil
        while vpx_codec_get_frame(context, &iterator) != nil {}
    }
}
