#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Deterministic synthetic audio at 48 kHz, int16 interleaved, for tests
/// and benchmarks.

/// Speech-like audio: syllables of voiced sound (a glottal pulse train whose
/// pitch glides between 90 and 240 Hz, shaped by three formant resonators
/// set per vowel) separated by pauses, with a syllable-rate envelope. Not
/// intelligible, but with the spectral shape, pitch movement and silences
/// that exercise Opus's SILK mode, VAD and DTX.
public struct SpeechSource: Sendable {
    public let channels: Int
    private var rng: UInt64
    // Segment state.
    private var segmentRemaining = 0
    private var voiced = false
    private var pitchStart = 120.0, pitchEnd = 160.0, segmentLength = 1
    private var phase = 0.0
    /// Two-pole resonator per formant: coefficients (gain, a1, a2) set per
    /// syllable, state (y[n-1], y[n-2]).
    private var coefficients: [(Double, Double, Double)] = [(0, 0, 0), (0, 0, 0), (0, 0, 0)]
    private var state: [(Double, Double)] = [(0, 0), (0, 0), (0, 0)]

    public init(channels: Int = 1, seed: UInt64 = 0x5EED) {
        self.channels = channels
        rng = seed | 1
        setFormants(Self.vowels[0])
    }

    private mutating func random() -> Double {
        rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17
        return Double(rng % 1_000_000) / 1_000_000
    }

    private static let vowels: [(Double, Double, Double)] = [
        (730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480), (570, 840, 2410),
    ]
    private static let bandwidths = [90.0, 110.0, 170.0]
    private static let formantGains = [1.0, 0.6, 0.3]

    private mutating func setFormants(_ f: (Double, Double, Double)) {
        for (i, frequency) in [f.0, f.1, f.2].enumerated() {
            let r = exp(-Double.pi * Self.bandwidths[i] / 48_000)
            coefficients[i] = ((1 - r) * Self.formantGains[i], 2 * r * cos(2 * Double.pi * frequency / 48_000), -r * r)
        }
    }

    private mutating func startSegment() {
        voiced.toggle()
        if voiced {
            segmentLength = 48 * (120 + Int(random() * 220))      // 120–340 ms syllable
            pitchStart = 90 + random() * 150
            pitchEnd = max(80, min(260, pitchStart + (random() - 0.5) * 80))
            setFormants(Self.vowels[Int(random() * Double(Self.vowels.count)) % Self.vowels.count])
        } else {
            segmentLength = 48 * (60 + Int(random() * 240))       // 60–300 ms pause
        }
        segmentRemaining = segmentLength
    }

    /// Fills `buffer` (interleaved, `count` must be a multiple of channels).
    public mutating func fill(_ buffer: inout [Int16]) {
        let frames = buffer.count / channels
        for i in 0..<frames {
            if segmentRemaining <= 0 { startSegment() }
            let progress = 1 - Double(segmentRemaining) / Double(segmentLength)
            segmentRemaining -= 1
            var x: Double
            if voiced {
                let pitch = pitchStart + (pitchEnd - pitchStart) * progress
                phase += pitch / 48_000
                if phase >= 1 { phase -= 1 }
                // Glottal pulse: a raised-parabola open phase, then closed.
                let open = phase < 0.4 ? phase / 0.4 : 0
                x = 4 * open * (1 - open) + (random() - 0.5) * 0.05   // plus aspiration noise
                x *= 4 * progress * (1 - progress)                       // syllable envelope
            } else {
                x = (random() - 0.5) * 0.002                             // near silence
            }
            var y = 0.0
            for k in 0..<3 {
                let c = coefficients[k]
                let out = c.0 * x + c.1 * state[k].0 + c.2 * state[k].1
                state[k] = (out, state[k].0)
                y += out
            }
            let sample = Int16(clamping: Int((y * 9000).rounded()))
            for ch in 0..<channels { buffer[i * channels + ch] = sample }
        }
    }
}

/// Music-like audio: a looping progression of four-note chords (one per
/// second), each note a fundamental plus two harmonics with a plucked,
/// decaying envelope; in stereo the notes are panned apart. Oscillators
/// are rotating phasors (no transcendental call per sample).
public struct MusicSource: Sendable {
    public let channels: Int
    private var sampleIndex = 0
    /// Per note and harmonic: phasor (cos, sin) and its per-sample rotation.
    private var phasors: [(Double, Double)] = []
    private var rotations: [(Double, Double)] = []
    private var envelope = 0.0

    public init(channels: Int = 2) { self.channels = channels }

    // C major, A minor, F major, G major (MIDI notes).
    private static let chords: [[Int]] = [[48, 60, 64, 67], [45, 57, 60, 64], [41, 57, 60, 65], [43, 55, 59, 62]]
    private static let decay = exp(-3.0 / 48_000)

    private mutating func startChord(_ index: Int) {
        phasors.removeAll(keepingCapacity: true)
        rotations.removeAll(keepingCapacity: true)
        for note in Self.chords[index % Self.chords.count] {
            let f = 440 * pow(2, Double(note - 69) / 12)
            for harmonic in 1...3 {
                let w = 2 * Double.pi * f * Double(harmonic) / 48_000
                phasors.append((1, 0))
                rotations.append((cos(w), sin(w)))
            }
        }
        envelope = 1
    }

    public mutating func fill(_ buffer: inout [Int16]) {
        let frames = buffer.count / channels
        for i in 0..<frames {
            let n = sampleIndex + i
            if n % 48_000 == 0 || phasors.isEmpty { startChord(n / 48_000) }
            let attack = min(1, Double(n % 48_000) / 240)
            envelope *= Self.decay
            var left = 0.0, right = 0.0
            for k in 0..<phasors.count {
                let (c, s) = phasors[k], (rc, rs) = rotations[k]
                phasors[k] = (c * rc - s * rs, c * rs + s * rc)
                let harmonic = Double(k % 3 + 1)
                let v = phasors[k].1 / (harmonic * harmonic) * envelope * attack
                let pan = Double(k / 3) / 3
                left += v * (1 - 0.5 * pan); right += v * (0.5 + 0.5 * pan)
            }
            if channels == 1 {
                buffer[i] = Int16(clamping: Int(((left + right) * 2500).rounded()))
            } else {
                buffer[i * channels] = Int16(clamping: Int((left * 5000).rounded()))
                buffer[i * channels + 1] = Int16(clamping: Int((right * 5000).rounded()))
            }
        }
        sampleIndex += frames
    }
}

/// A pure tone, the simplest signal for round-trip checks.
public struct ToneSource: Sendable {
    public let channels: Int
    public let frequency: Double
    public let amplitude: Double
    private var sampleIndex = 0

    public init(channels: Int = 1, frequency: Double = 440, amplitude: Double = 10_000) {
        self.channels = channels; self.frequency = frequency; self.amplitude = amplitude
    }

    public mutating func fill(_ buffer: inout [Int16]) {
        let frames = buffer.count / channels
        for i in 0..<frames {
            let v = Int16(clamping: Int((amplitude * sin(2 * Double.pi * frequency * Double(sampleIndex + i) / 48_000)).rounded()))
            for c in 0..<channels { buffer[i * channels + c] = v }
        }
        sampleIndex += frames
    }
}
