import Benchmark
import BenchSupport
import SRTP

// SRTP protect and unprotect of 1200-octet RTP packets, for Parley's
// SRTPContext, libsrtp2 and the OpenSSL-only ceiling. Each sample works on a
// batch of 1000 packets (scaledIterations) in one preallocated buffer: the
// batch is refilled outside the measurement (plaintext with the next 1000
// sequence numbers; for unprotect, then protected by the same
// implementation's sender), so every packet measured is fresh and in
// sequence, and the measured region holds only the 1000 crypto calls. The
// warm-up sample creates the per-SSRC stream state.
func registerSRTPBenchmarks() {
    for profile in benchProfiles {
        do {
            try crossCheckSRTP(profile: profile)
        } catch {
            fatalError("SRTP cross-check failed for \(profile.benchName): \(error)")
        }
        let name = profile.benchName

        do {
            let parley = try! ParleySRTP(profile: profile)
            let batch = PacketBatch(count: 1000)
            Benchmark("SRTP protect \(name) 1200B parley") { benchmark throws in
                batch.fillPlain()
                benchmark.startMeasurement()
                try parley.protectAll(batch)
                benchmark.stopMeasurement()
            }
        }
        do {
            let parley = try! ParleySRTP(profile: profile)
            let batch = PacketBatch(count: 1000)
            Benchmark("SRTP unprotect \(name) 1200B parley") { benchmark throws in
                batch.fillPlain()
                try parley.protectAll(batch)
                benchmark.startMeasurement()
                try parley.unprotectAll(batch)
                benchmark.stopMeasurement()
            }
        }
        do {
            let lib = try! LibSRTP(profile: profile)
            let batch = PacketBatch(count: 1000)
            Benchmark("SRTP protect \(name) 1200B libsrtp2") { benchmark throws in
                batch.fillPlain()
                benchmark.startMeasurement()
                try lib.protectAll(batch)
                benchmark.stopMeasurement()
            }
        }
        do {
            let lib = try! LibSRTP(profile: profile)
            let batch = PacketBatch(count: 1000)
            Benchmark("SRTP unprotect \(name) 1200B libsrtp2") { benchmark throws in
                batch.fillPlain()
                try lib.protectAll(batch)
                benchmark.startMeasurement()
                try lib.unprotectAll(batch)
                benchmark.stopMeasurement()
            }
        }
        do {
            let ceiling = try! OpenSSLCeiling(profile: profile)
            let batch = PacketBatch(count: 1000)
            Benchmark("SRTP protect \(name) 1200B openssl ceiling") { benchmark throws in
                batch.fillPlain()
                benchmark.startMeasurement()
                try ceiling.protectAll(batch)
                benchmark.stopMeasurement()
            }
        }
        do {
            let ceiling = try! OpenSSLCeiling(profile: profile)
            let batch = PacketBatch(count: 1000)
            Benchmark("SRTP unprotect \(name) 1200B openssl ceiling") { benchmark throws in
                batch.fillPlain()
                try ceiling.protectAll(batch)
                benchmark.startMeasurement()
                try ceiling.unprotectAll(batch)
                benchmark.stopMeasurement()
            }
        }
    }
}
