/// A planar YUV 4:2:0 picture (8-bit, "I420": Y plane, then U, then V), the
/// input and output format of the VP8 wrappers and the Y4M files.
///
/// The three planes live in one contiguous array so a frame is one allocation,
/// made once and then reused for every picture of a stream (`copy(from:)`,
/// sources and decoders write into an existing frame). Chroma planes are
/// `(width + 1) / 2` by `(height + 1) / 2`, the rounding VP8 and Y4M use for
/// odd sizes.
public struct I420Frame: Sendable, Equatable {
    public let width: Int
    public let height: Int
    /// Bytes from one row to the next in the Y plane.
    public let strideY: Int
    /// Bytes from one row to the next in the U and V planes.
    public let strideUV: Int
    /// Y plane, then U plane, then V plane, each `stride * rows` bytes.
    public var storage: [UInt8]

    public var chromaWidth: Int { (width + 1) / 2 }
    public var chromaHeight: Int { (height + 1) / 2 }
    var offsetU: Int { strideY * height }
    var offsetV: Int { strideY * height + strideUV * chromaHeight }

    /// Byte count of the tightly packed picture (what a Y4M FRAME carries).
    public var packedByteCount: Int { width * height + 2 * chromaWidth * chromaHeight }

    /// A black frame (Y = 16, U = V = 128, video range). Dimensions must be in
    /// 1...16384 (VP8's 14-bit size fields).
    public init(width: Int, height: Int) {
        precondition((1...16_384).contains(width) && (1...16_384).contains(height), "I420Frame size out of range")
        self.width = width
        self.height = height
        // Rows padded to 16 bytes: libvpx and SIMD loops like aligned rows and
        // it costs at most 15 bytes per row.
        self.strideY = (width + 15) & ~15
        self.strideUV = (((width + 1) / 2) + 15) & ~15
        let lumaBytes = strideY * height
        let chromaBytes = strideUV * ((height + 1) / 2)
        var bytes = [UInt8](repeating: 128, count: lumaBytes + 2 * chromaBytes)
        bytes.withUnsafeMutableBufferPointer { buffer in
            for i in 0..<lumaBytes { buffer[i] = 16 }
        }
        self.storage = bytes
    }

    /// Calls `body` with read-only plane pointers, valid only inside `body`.
    public func withView<R>(_ body: (I420View) throws -> R) rethrows -> R {
        try storage.withUnsafeBufferPointer { buffer in
            let base = buffer.baseAddress!
            return try body(I420View(
                width: width, height: height,
                y: base, u: base + offsetU, v: base + offsetV,
                strideY: strideY, strideU: strideUV, strideV: strideUV))
        }
    }

    /// Calls `body` with writable plane pointers, valid only inside `body`.
    public mutating func withMutablePlanes<R>(_ body: (I420MutablePlanes) throws -> R) rethrows -> R {
        let (w, h, sy, suv, ou, ov) = (width, height, strideY, strideUV, offsetU, offsetV)
        return try storage.withUnsafeMutableBufferPointer { buffer in
            let base = buffer.baseAddress!
            return try body(I420MutablePlanes(
                width: w, height: h, y: base, u: base + ou, v: base + ov, strideY: sy, strideUV: suv))
        }
    }

    /// Copies a picture of the same size into this frame (no allocation when
    /// this frame's storage is uniquely referenced). Returns false, copying
    /// nothing, if the sizes differ.
    @discardableResult
    public mutating func copy(from view: I420View) -> Bool {
        guard view.width == width, view.height == height else { return false }
        let cw = chromaWidth, ch = chromaHeight
        withMutablePlanes { dst in
            copyPlane(from: view.y, view.strideY, to: dst.y, dst.strideY, width: view.width, rows: view.height)
            copyPlane(from: view.u, view.strideU, to: dst.u, dst.strideUV, width: cw, rows: ch)
            copyPlane(from: view.v, view.strideV, to: dst.v, dst.strideUV, width: cw, rows: ch)
        }
        return true
    }

    /// Copies a tightly packed picture of this size (`packedByteCount` bytes
    /// at `packed`: Y rows, then U, then V, no padding — a Y4M FRAME) into
    /// this frame.
    public mutating func copy(packed: UnsafePointer<UInt8>) {
        let (w, h, cw, ch) = (width, height, chromaWidth, chromaHeight)
        let u = packed + w * h
        copy(from: I420View(width: w, height: h, y: packed, u: u, v: u + cw * ch, strideY: w, strideU: cw, strideV: cw))
    }

    /// Frames are equal when their visible pixels are; row padding is ignored.
    public static func == (lhs: I420Frame, rhs: I420Frame) -> Bool {
        guard lhs.width == rhs.width, lhs.height == rhs.height else { return false }
        return lhs.withView { a in rhs.withView { b in a.pixelsEqual(b) } }
    }
}

private func copyPlane(from src: UnsafePointer<UInt8>, _ srcStride: Int,
                       to dst: UnsafeMutablePointer<UInt8>, _ dstStride: Int, width: Int, rows: Int) {
    for row in 0..<rows {
        (dst + row * dstStride).update(from: src + row * srcStride, count: width)
    }
}

/// Read-only pointers to an I420 picture owned by someone else (an
/// `I420Frame` or a decoder). Only valid inside the closure that handed it
/// out: do not store it.
public struct I420View {
    public let width: Int
    public let height: Int
    public let y: UnsafePointer<UInt8>
    public let u: UnsafePointer<UInt8>
    public let v: UnsafePointer<UInt8>
    public let strideY: Int
    public let strideU: Int
    public let strideV: Int

    public init(width: Int, height: Int, y: UnsafePointer<UInt8>, u: UnsafePointer<UInt8>, v: UnsafePointer<UInt8>,
                strideY: Int, strideU: Int, strideV: Int) {
        self.width = width; self.height = height
        self.y = y; self.u = u; self.v = v
        self.strideY = strideY; self.strideU = strideU; self.strideV = strideV
    }

    public var chromaWidth: Int { (width + 1) / 2 }
    public var chromaHeight: Int { (height + 1) / 2 }

    /// Luma sample at (x, y); no bounds check beyond a precondition.
    public func luma(x: Int, y row: Int) -> UInt8 {
        precondition(x >= 0 && x < width && row >= 0 && row < height)
        return y[row * strideY + x]
    }

    func pixelsEqual(_ other: I420View) -> Bool {
        guard width == other.width, height == other.height else { return false }
        func planeEqual(_ a: UnsafePointer<UInt8>, _ sa: Int, _ b: UnsafePointer<UInt8>, _ sb: Int, _ w: Int, _ h: Int) -> Bool {
            for row in 0..<h where memcmpBytes(a + row * sa, b + row * sb, w) == false { return false }
            return true
        }
        return planeEqual(y, strideY, other.y, other.strideY, width, height)
            && planeEqual(u, strideU, other.u, other.strideU, chromaWidth, chromaHeight)
            && planeEqual(v, strideV, other.v, other.strideV, chromaWidth, chromaHeight)
    }
}

private func memcmpBytes(_ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>, _ count: Int) -> Bool {
    for i in 0..<count where a[i] != b[i] { return false }
    return true
}

/// Writable plane pointers handed out by `I420Frame.withMutablePlanes`.
public struct I420MutablePlanes {
    public let width: Int
    public let height: Int
    public let y: UnsafeMutablePointer<UInt8>
    public let u: UnsafeMutablePointer<UInt8>
    public let v: UnsafeMutablePointer<UInt8>
    public let strideY: Int
    public let strideUV: Int
    public var chromaWidth: Int { (width + 1) / 2 }
    public var chromaHeight: Int { (height + 1) / 2 }
}
