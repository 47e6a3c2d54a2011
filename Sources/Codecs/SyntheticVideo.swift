/// Deterministic synthetic video for tests and benchmarks: the same frame
/// index always gives the same picture, so runs are comparable.

@inline(__always)
func hash32(_ a: Int, _ b: Int, _ c: Int) -> UInt32 {
    var h = UInt32(truncatingIfNeeded: a &* 0x27d4_eb2d) ^ UInt32(truncatingIfNeeded: b &* 0x1656_67b1)
        ^ UInt32(truncatingIfNeeded: c &* 0x85eb_ca6b)
    h ^= h >> 15; h = h &* 0x2c1b_3c6d; h ^= h >> 12; h = h &* 0x297a_2d39; h ^= h >> 15
    return h
}

@inline(__always)
private func clampByte(_ v: Int) -> UInt8 { UInt8(clamping: v) }

/// Camera-like content: a slowly panning gradient background, a textured
/// band of fine detail (stripes and a checkerboard, hard for the encoder)
/// sliding sideways, a bouncing disc, and low sensor-like noise.
public struct CameraSource: Sendable {
    public let width: Int
    public let height: Int
    public private(set) var frameIndex = 0
    /// Peak-to-peak noise amplitude in luma steps (0 disables).
    public var noiseAmplitude: Int

    public init(width: Int, height: Int, noiseAmplitude: Int = 4) {
        self.width = width; self.height = height; self.noiseAmplitude = noiseAmplitude
    }

    /// Renders the next frame into `frame` (which must be this size).
    public mutating func nextFrame(into frame: inout I420Frame) {
        render(frameIndex, into: &frame)
        frameIndex += 1
    }

    /// Renders frame `t` into `frame`.
    public func render(_ t: Int, into frame: inout I420Frame) {
        precondition(frame.width == width && frame.height == height, "CameraSource: frame size mismatch")
        let w = width, h = height
        let bandTop = h / 3, bandBottom = h / 3 + max(8, h / 4)
        let bandShift = (t * 3) % w
        // Disc bounces on a triangle wave in both axes.
        let radius = max(4, min(w, h) / 8)
        func tri(_ t: Int, _ span: Int) -> Int { let p = t % (2 * span); return p < span ? p : 2 * span - p }
        let cx = radius + tri(t * 4, max(1, w - 2 * radius))
        let cy = radius + tri(t * 3, max(1, h - 2 * radius))
        let r2 = radius * radius
        let noise = noiseAmplitude
        frame.withMutablePlanes { p in
            for y in 0..<h {
                let row = p.y + y * p.strideY
                let inBand = y >= bandTop && y < bandBottom
                for x in 0..<w {
                    var v = 40 + ((x + 2 * t) * 140 / max(1, w)) + (y * 60 / max(1, h))
                    if inBand {
                        let u = (x + bandShift) % w
                        if u < w / 2 {
                            v = (u / 2 + y) % 4 < 2 ? 220 : 50            // fine diagonal stripes
                        } else {
                            v = ((u / 4) + (y / 4)) % 2 == 0 ? 200 : 70   // 4-pixel checkerboard
                        }
                    }
                    let dx = x - cx, dy = y - cy
                    if dx * dx + dy * dy <= r2 { v = 235 - (dx * dx + dy * dy) * 60 / max(1, r2) }
                    if noise > 0 { v += Int(hash32(x, y, t) % UInt32(noise + 1)) - noise / 2 }
                    row[x] = clampByte(v)
                }
            }
            let cw = p.chromaWidth, ch = p.chromaHeight
            for y in 0..<ch {
                let urow = p.u + y * p.strideUV, vrow = p.v + y * p.strideUV
                for x in 0..<cw {
                    let dx = 2 * x - cx, dy = 2 * y - cy
                    if dx * dx + dy * dy <= r2 {
                        urow[x] = 90; vrow[x] = 200                       // reddish disc
                    } else {
                        urow[x] = clampByte(128 + (x - cw / 2) * 40 / max(1, cw) + (t % 64) - 32)
                        vrow[x] = clampByte(128 + (y - ch / 2) * 40 / max(1, ch))
                    }
                }
            }
        }
    }
}

/// Screen-share-like content: a desktop with windows of text-like glyph
/// rows (static), one window whose text scrolls one line every few
/// frames, and a moving mouse cursor. Mostly unchanged between frames, with
/// sharp edges: what screen-content tuning is for.
public struct ScreenSource: Sendable {
    public let width: Int
    public let height: Int
    public private(set) var frameIndex = 0
    /// Frames between one-line scroll steps.
    public var framesPerScrollStep: Int

    public init(width: Int, height: Int, framesPerScrollStep: Int = 5) {
        self.width = width; self.height = height; self.framesPerScrollStep = max(1, framesPerScrollStep)
    }

    public mutating func nextFrame(into frame: inout I420Frame) {
        render(frameIndex, into: &frame)
        frameIndex += 1
    }

    // 6×10 character cells with 5×7 glyphs chosen by a hash of (line, column).
    static let cellWidth = 6, cellHeight = 10

    /// 96 glyph shapes, 35 bits each (5 columns × 7 rows), made once.
    static let glyphs: [UInt64] = (0..<96).map { g in
        UInt64(hash32(g, 3, 11)) << 3 | UInt64(hash32(g, 5, 13) & 7) | 1 << 32   // bottom row: a baseline dot
    }

    @inline(__always)
    static func glyphPixel(line: Int, column: Int, gx: Int, gy: Int) -> Bool {
        guard gx < 5, gy >= 1, gy < 8 else { return false }
        let code = hash32(line, column, 7)
        if code % 7 == 0 { return false }                         // spaces between "words"
        let bits = glyphs[Int(code % 96)]
        return (bits >> UInt64(gx + (gy - 1) * 5)) & 1 == 1
    }

    public func render(_ t: Int, into frame: inout I420Frame) {
        precondition(frame.width == width && frame.height == height, "ScreenSource: frame size mismatch")
        let w = width, h = height
        // Two windows: left static document, right scrolling log.
        let left = (x0: w / 20, y0: h / 10, x1: w / 2 - w / 40, y1: h - h / 10)
        let right = (x0: w / 2 + w / 40, y0: h / 6, x1: w - w / 20, y1: h - h / 6)
        let titleBar = max(6, h / 24)
        let scroll = (t / framesPerScrollStep) * Self.cellHeight
        let cursorX = (t * 5) % max(1, w), cursorY = (h / 4 + (t * 2) % max(1, h / 2))
        frame.withMutablePlanes { p in
            for y in 0..<h {
                let row = p.y + y * p.strideY
                for x in 0..<w {
                    var v = 96                                            // desktop
                    let index = x >= left.x0 && x < left.x1 && y >= left.y0 && y < left.y1 ? 0
                        : (x >= right.x0 && x < right.x1 && y >= right.y0 && y < right.y1 ? 1 : -1)
                    if index >= 0 {
                        let win = index == 0 ? left : right
                        if y < win.y0 + titleBar {
                            v = 60
                        } else {
                            v = 235
                            let localY = y - win.y0 - titleBar + (index == 1 ? scroll : 0)
                            let localX = x - win.x0 - 4
                            if localX >= 0 {
                                let line = localY / Self.cellHeight, column = localX / Self.cellWidth
                                if Self.glyphPixel(line: line + index * 1000, column: column,
                                                   gx: localX % Self.cellWidth, gy: localY % Self.cellHeight) {
                                    v = 20
                                }
                            }
                        }
                    }
                    // Arrow cursor: a small right triangle with an outline.
                    let dx = x - cursorX, dy = y - cursorY
                    if dx >= 0, dy >= 0, dy < 12, dx <= dy / 2 + 1 { v = dx == dy / 2 + 1 || dy == 11 ? 16 : 240 }
                    row[x] = UInt8(v)
                }
            }
            let cw = p.chromaWidth, ch = p.chromaHeight
            for y in 0..<ch {
                let urow = p.u + y * p.strideUV, vrow = p.v + y * p.strideUV
                for x in 0..<cw {
                    let (fx, fy) = (2 * x, 2 * y)
                    var (u, v): (UInt8, UInt8) = (150, 110)              // bluish desktop
                    if fx >= left.x0 && fx < left.x1 && fy >= left.y0 && fy < left.y1 {
                        (u, v) = fy < left.y0 + titleBar ? (170, 100) : (128, 128)
                    } else if fx >= right.x0 && fx < right.x1 && fy >= right.y0 && fy < right.y1 {
                        (u, v) = fy < right.y0 + titleBar ? (170, 100) : (128, 128)
                    }
                    urow[x] = u; vrow[x] = v
                }
            }
        }
    }
}
