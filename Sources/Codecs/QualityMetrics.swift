#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Objective quality measures used by the codec tests and `parley bench codec`.
public enum VideoQuality {
    /// PSNR of each plane and of the whole picture, in dB. Identical planes
    /// report `infinity`.
    public struct PSNR: Sendable, Equatable {
        public var y: Double
        public var u: Double
        public var v: Double
        /// From the summed squared error of all samples of all three planes
        /// (so luma weighs 4× each chroma plane, as in libvpx's "overall").
        public var overall: Double
    }

    /// PSNR between two pictures of the same size, or nil if sizes differ.
    public static func psnr(_ a: I420View, _ b: I420View) -> PSNR? {
        guard a.width == b.width, a.height == b.height else { return nil }
        let sy = squaredError(a.y, a.strideY, b.y, b.strideY, a.width, a.height)
        let su = squaredError(a.u, a.strideU, b.u, b.strideU, a.chromaWidth, a.chromaHeight)
        let sv = squaredError(a.v, a.strideV, b.v, b.strideV, a.chromaWidth, a.chromaHeight)
        let ny = Double(a.width * a.height), nc = Double(a.chromaWidth * a.chromaHeight)
        return PSNR(y: fromSSE(sy, ny), u: fromSSE(su, nc), v: fromSSE(sv, nc),
                    overall: fromSSE(sy + su + sv, ny + 2 * nc))
    }

    /// PSNR between two frames, or nil if sizes differ.
    public static func psnr(_ a: I420Frame, _ b: I420Frame) -> PSNR? {
        a.withView { va in b.withView { vb in psnr(va, vb) } }
    }

    static func fromSSE(_ sse: UInt64, _ count: Double) -> Double {
        guard sse > 0 else { return .infinity }
        let mse = Double(sse) / count
        return 10 * log10Approx(255.0 * 255.0 / mse)
    }

    private static func squaredError(_ a: UnsafePointer<UInt8>, _ sa: Int, _ b: UnsafePointer<UInt8>, _ sb: Int,
                                     _ w: Int, _ h: Int) -> UInt64 {
        var total: UInt64 = 0
        for row in 0..<h {
            let pa = a + row * sa, pb = b + row * sb
            var rowSum: UInt64 = 0
            for x in 0..<w {
                let d = Int(pa[x]) - Int(pb[x])
                rowSum &+= UInt64(d * d)
            }
            total &+= rowSum
        }
        return total
    }
}

/// Audio quality for lossy round trips. Opus delays its output by the
/// encoder's lookahead (pre-skip) and is perceptual, so the comparison first
/// finds the delay that best aligns decoded with reference audio.
public enum AudioQuality {
    public struct Comparison: Sendable, Equatable {
        /// Samples (per channel) the decoded signal lags the reference.
        public var delay: Int
        /// Signal-to-noise ratio in dB after alignment (noise = difference).
        public var snr: Double
        /// Normalized cross-correlation at that delay, -1...1.
        public var correlation: Double
    }

    /// Compares interleaved int16 audio. The delay (0...`maxDelay` samples
    /// per channel) is the one maximizing normalized correlation of channel
    /// 0 over a window of up to `searchWindow` samples; SNR and correlation
    /// then use all channels over the whole overlap.
    public static func compare(reference: [Int16], decoded: [Int16], channels: Int, maxDelay: Int,
                               searchWindow: Int = 24_000) -> Comparison? {
        guard channels >= 1, maxDelay >= 0 else { return nil }
        let refFrames = reference.count / channels, decFrames = decoded.count / channels
        let window = min(searchWindow, refFrames, decFrames - maxDelay)
        guard window > 0 else { return nil }
        return reference.withUnsafeBufferPointer { ref in
            decoded.withUnsafeBufferPointer { dec in
                var bestDelay = 0
                var bestScore = -Double.infinity
                for delay in 0...maxDelay {
                    var dot = 0.0, ee = 0.0
                    for i in 0..<window {
                        let r = Double(ref[i * channels]), d = Double(dec[(i + delay) * channels])
                        dot += r * d; ee += d * d
                    }
                    let score = ee > 0 ? dot / ee.squareRoot() : 0
                    if score > bestScore { bestScore = score; bestDelay = delay }
                }
                let n = min(refFrames, decFrames - bestDelay)
                var signal = 0.0, noise = 0.0, dot = 0.0, dd = 0.0
                for i in 0..<(n * channels) {
                    let r = Double(ref[i]), d = Double(dec[i + bestDelay * channels])
                    signal += r * r; noise += (r - d) * (r - d); dot += r * d; dd += d * d
                }
                let snr = noise > 0 ? 10 * log10Approx(signal / noise) : .infinity
                let corr = (signal > 0 && dd > 0) ? dot / (signal.squareRoot() * dd.squareRoot()) : 0
                return Comparison(delay: bestDelay, snr: snr, correlation: corr)
            }
        }
    }
}

func log10Approx(_ x: Double) -> Double { log10(x) }
