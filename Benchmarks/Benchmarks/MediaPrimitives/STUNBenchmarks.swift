import Benchmark
import BenchSupport
import ICE
import RTCBase
import STUN

func registerSTUNBenchmarks() {
    // RFC 5769 §2.1 request: validate the header and walk the attributes
    // (STUNMessageView), check MESSAGE-INTEGRITY with a key whose HMAC
    // states are precomputed, check FINGERPRINT.
    let request = ownedBuffer(RFC5769.request)
    let key = STUNIntegrityKey(shortTermPassword: RFC5769.password)
    Benchmark("STUN view parse + MESSAGE-INTEGRITY + FINGERPRINT (RFC 5769 2.1)") { benchmark throws in
        for _ in benchmark.scaledIterations {
            let view = try STUNMessageView(UnsafeRawBufferPointer(request))
            try view.verifyMessageIntegrity(key: key)
            try view.verifyFingerprint()
            blackHole(view.transactionID)
        }
    }

    // The lite agent's allocation-free path: parse a browser's check,
    // authenticate it, update validation/nomination/consent and write the
    // Binding success (XOR-MAPPED-ADDRESS, MESSAGE-INTEGRITY, FINGERPRINT)
    // into a caller buffer.
    let check = ownedBuffer(try! LiteCheck.request())
    let out = UnsafeMutableRawBufferPointer.allocate(byteCount: 128, alignment: 16)
    let source = TransportAddress("203.0.113.5:40000")!
    var agent = ICELiteAgent(
        local: ICECredentials(ufrag: LiteCheck.serverUfrag, password: LiteCheck.serverPassword),
        remote: ICECredentials(ufrag: LiteCheck.clientUfrag, password: LiteCheck.clientPassword))
    do {
        let view = try! STUNMessageView(UnsafeRawBufferPointer(check))
        guard case .success = agent.respond(to: view, from: source, now: .seconds(1), into: out) else {
            fatalError("lite agent did not accept the fixture check")
        }
    }
    var now = Instant.seconds(2)
    Benchmark("ICE-lite respond(to:) Binding request into buffer") { benchmark throws in
        for _ in benchmark.scaledIterations {
            let view = try STUNMessageView(UnsafeRawBufferPointer(check))
            let reply = agent.respond(to: view, from: source, now: now, into: out)
            guard case .success(let n) = reply else { fatalError("unexpected reply \(reply)") }
            blackHole(n)
            now += .milliseconds(1)
        }
    }
}
