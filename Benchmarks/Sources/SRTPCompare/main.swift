#if canImport(Glibc)
import Glibc
#endif
import BenchSupport
import SRTP

// Same-run SRTP throughput ratios, Parley vs libsrtp2 vs the OpenSSL-only
// ceiling, for 1200-octet RTP packets. For each profile and direction, each
// round times `batches` batches of `batchSize` packets per implementation,
// the implementations' batches alternating so machine noise hits all three
// alike; a round's rate is the batch size over the median batch time, and
// the printout is the median of `rounds` rounds (after one warm-up round). Only the crypto calls are timed: refilling a batch with
// fresh plaintext (the next sequence numbers), and for unprotect protecting
// it with the same implementation's sender, happen between timings.
//
//   swift run -c release SRTPCompare [--rounds N] [--batches N]

var rounds = 7
var batches = 128
let batchSize = 128
do {
    var args = CommandLine.arguments.dropFirst().makeIterator()
    while let a = args.next() {
        switch a {
        case "--rounds": rounds = Int(args.next() ?? "") ?? rounds
        case "--batches": batches = Int(args.next() ?? "") ?? batches
        default:
            print("usage: SRTPCompare [--rounds N] [--batches N]")
            exit(2)
        }
    }
}

struct Implementation {
    let batch = PacketBatch(count: batchSize)
    /// Fills `batch` with the packets to be timed.
    let prepare: (PacketBatch) throws -> Void
    /// The timed work.
    let run: (PacketBatch) throws -> Void

    /// Times one batch: prepare untimed, then the crypto calls.
    func timeBatch(_ clock: ContinuousClock) throws -> Duration {
        try prepare(batch)
        let start = clock.now
        try run(batch)
        return clock.now - start
    }
}

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// Packets per second of each implementation over one round: batch size
/// over the median batch time. Batches of the implementations alternate, so
/// slow phases of the shared machine land on all of them alike, and the
/// median drops batches that lost the CPU to another process (preemption
/// only ever adds time).
func round(_ implementations: [Implementation], clock: ContinuousClock, batches: Int) throws -> [Double] {
    var times = [[Double]](repeating: [], count: implementations.count)
    for _ in 0..<batches {
        for (i, implementation) in implementations.enumerated() {
            let d = try implementation.timeBatch(clock)
            times[i].append(Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18)
        }
    }
    return times.map { Double(batchSize) / median($0) }
}

func rate(_ x: Double) -> String {
    // Three significant figures, like "1030000".
    guard x >= 1000 else { return String(Int(x.rounded())) }
    var scale = 1.0
    while x / scale >= 1000 { scale *= 10 }
    return String(Int((x / scale).rounded() * scale))
}

func ratio(_ x: Double) -> String {
    let r = (x * 100).rounded() / 100
    let whole = Int(r)
    let cents = Int(((r - Double(whole)) * 100).rounded())
    return "\(whole).\(cents < 10 ? "0" : "")\(cents)"
}

let clock = ContinuousClock()
for profile in benchProfiles {
    try crossCheckSRTP(profile: profile)
    for direction in ["protect", "unprotect"] {
        let parley = try ParleySRTP(profile: profile)
        let lib = try LibSRTP(profile: profile)
        let ceiling = try OpenSSLCeiling(profile: profile)
        let implementations: [Implementation]
        if direction == "protect" {
            implementations = [
                Implementation(prepare: { $0.fillPlain() }, run: { try parley.protectAll($0) }),
                Implementation(prepare: { $0.fillPlain() }, run: { try lib.protectAll($0) }),
                Implementation(prepare: { $0.fillPlain() }, run: { try ceiling.protectAll($0) }),
            ]
        } else {
            implementations = [
                Implementation(prepare: { $0.fillPlain(); try parley.protectAll($0) }, run: { try parley.unprotectAll($0) }),
                Implementation(prepare: { $0.fillPlain(); try lib.protectAll($0) }, run: { try lib.unprotectAll($0) }),
                Implementation(prepare: { $0.fillPlain(); try ceiling.protectAll($0) }, run: { try ceiling.unprotectAll($0) }),
            ]
        }
        var results = [[Double]](repeating: [], count: implementations.count)
        for r in 0...rounds {
            let pps = try round(implementations, clock: clock, batches: batches)
            if r > 0 {  // round 0 warms up
                for i in pps.indices { results[i].append(pps[i]) }
            }
        }
        let p = median(results[0]), l = median(results[1]), c = median(results[2])
        print("srtp \(direction) \(profile.benchName) \(rtpPacketSize)B: parley \(rate(p)) pkt/s, libsrtp2 \(rate(l)) pkt/s, "
            + "openssl ceiling \(rate(c)) pkt/s, parley/ceiling \(ratio(p / c)), parley/libsrtp2 \(ratio(p / l))")
    }
}
