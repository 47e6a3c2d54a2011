import Foundation
import Glibc
import NIOCore
import RTCBase
import STUN
import UDPIO

/// A TURN client on a raw UDP socket, for the relay measurement: its
/// control transactions are blocking (loopback answers in microseconds),
/// its data path belongs to `RelayStepThread`.
final class RawTURNClient: @unchecked Sendable {
    let fd: Int32
    let server: TransportAddress
    private var retry: TURNCredentialRetry
    var credentials: LongTermCredentials? { retry.credentials }
    private(set) var relayed: TransportAddress?

    init(server: TransportAddress, username: String, password: String) throws {
        fd = try UDPSocket.bind(TransportAddress(ip: .v4(0x7F00_0001), port: 0), receiveBuffer: 4 << 20, sendBuffer: 4 << 20)
        self.server = server
        retry = TURNCredentialRetry(username: username, password: password)
    }

    func close() {
        if credentials != nil, relayed != nil {
            _ = try? request(.refresh) { tid, c throws(STUNError) in
                try TURNClientMessages.refresh(transactionID: tid, lifetime: 0, credentials: try need(c))
            }
        }
        Glibc.close(fd)
    }

    /// Sends `bytes`, retransmitting at 500 ms, 1 s, 2 s (RFC 8489 §6.2.1),
    /// until the answer with `transactionID` arrives; other datagrams are dropped.
    private func transact(_ bytes: [UInt8], transactionID: STUNTransactionID) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: 2048)
        for attempt in 0..<4 {
            var storage = sockaddr_in6()
            let length = withUnsafeMutableBytes(of: &storage) { SocketAddressBytes.write(server, to: $0.baseAddress!) }
            let sent = bytes.withUnsafeBytes { b in
                withUnsafePointer(to: &storage) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, b.baseAddress, b.count, 0, $0, length) }
                }
            }
            guard sent == bytes.count else { throw TURNBenchError("sendto failed: errno \(errno)") }
            let deadline = monotonicNanos() + UInt64(500_000_000) << UInt64(attempt)
            while case let now = monotonicNanos(), now < deadline {
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&p, 1, Int32((deadline - now) / 1_000_000) + 1) == 1 else { continue }
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                guard n >= 20 else { continue }
                let answer = Array(buffer[..<n])
                let matches = answer.withUnsafeBytes {
                    STUNMessageType.looksLikeSTUN($0) && STUNTransactionID(bytes: $0[8..<20]) == transactionID
                }
                if matches { return answer }
            }
        }
        throw TURNBenchError("no answer to a TURN request after 4 tries")
    }

    /// One authenticated request, answering 401 and 438 (RFC 8489 §9.2.3-9.2.4).
    func request(_ method: STUNMethod,
                 build: (STUNTransactionID, LongTermCredentials?) throws(STUNError) -> [UInt8]) throws -> STUNMessage {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<TURNCredentialRetry.attempts {
            let tid = STUNTransactionID.random(using: &rng)
            let answer = try transact(try build(tid, credentials), transactionID: tid)
            if let message = try retry.handle(answer, method: method, transactionID: tid) { return message }
        }
        throw retry.exhausted(method)
    }

    func allocate() throws -> TransportAddress {
        let message = try request(.allocate) { tid, c throws(STUNError) in try TURNClientMessages.allocate(transactionID: tid, credentials: c) }
        for case .xorRelayedAddress(let address) in message.attributes {
            relayed = address
            return address
        }
        throw TURNBenchError("Allocate success without XOR-RELAYED-ADDRESS")
    }

    /// CreatePermission then ChannelBind towards `peer` (RFC 8656 §9, §12).
    func bind(channel number: UInt16, to peer: TransportAddress) throws {
        _ = try request(.createPermission) { tid, c throws(STUNError) in
            try TURNClientMessages.createPermission(transactionID: tid, peer: peer, credentials: try need(c))
        }
        _ = try request(.channelBind) { tid, c throws(STUNError) in
            try TURNClientMessages.channelBind(transactionID: tid, channel: number, peer: peer, credentials: try need(c))
        }
    }
}

/// A sender and a receiver, each with its own allocation; the sender's
/// ChannelData goes to the receiver's relayed address through both.
struct RelayPair: Sendable {
    var sender: RawTURNClient
    var receiver: RawTURNClient
    static let channel: UInt16 = 0x4000
}

/// Allocates and binds `count` pairs (sequentially: each transaction is a loopback round trip).
func setUpPairs(count: Int, server: ServerUnderTest) async throws -> [RelayPair] {
    guard let target = transportAddress(server.address) else { throw TURNBenchError("bad server address \(server.address)") }
    var pairs: [RelayPair] = []
    do {
        for _ in 0..<count {
            let a = try RawTURNClient(server: target, username: server.username, password: server.password)
            let b = try RawTURNClient(server: target, username: server.username, password: server.password)
            pairs.append(RelayPair(sender: a, receiver: b))
            let (ra, rb) = (try a.allocate(), try b.allocate())
            try a.bind(channel: RelayPair.channel, to: rb)
            try b.bind(channel: RelayPair.channel, to: ra)
        }
    } catch {
        closePairs(pairs)
        throw error
    }
    return pairs
}

func closePairs(_ pairs: [RelayPair]) {
    for p in pairs {
        p.sender.close()
        p.receiver.close()
    }
}

/// One step of the relay load on its own thread: paces `rate` ChannelData
/// messages per second over the senders, round robin, with sendmmsg (one
/// datagram per message: no GSO, so the servers receive what independent
/// clients would send), and counts what the receivers get with recvmmsg.
/// If it falls behind by more than 5 ms worth it drops the backlog instead
/// of bursting; the shortfall shows as a step the generator could not deliver.
final class RelayStepThread: @unchecked Sendable {
    private let pairs: [RelayPair]
    private let server: TransportAddress
    private let step: UInt32
    private let rate: Double
    private let seconds: Double
    private let payloadSize: Int
    private let finished: CheckedContinuation<(sent: Int, delivered: Int, planned: Int), any Error>

    init(pairs: [RelayPair], step: UInt32, rate: Int, seconds: Double, payloadSize: Int,
         finished: CheckedContinuation<(sent: Int, delivered: Int, planned: Int), any Error>) {
        self.pairs = pairs
        server = pairs[0].sender.server
        self.step = step
        self.rate = Double(rate)
        self.seconds = seconds
        self.payloadSize = payloadSize
        self.finished = finished
    }

    func start() {
        let thread = Thread { [self] in
            do { finished.resume(returning: try run()) } catch { finished.resume(throwing: error) }
        }
        thread.name = "parley-bench-turn"
        thread.start()
    }

    private func run() throws -> (sent: Int, delivered: Int, planned: Int) {
        let poll = try EventPoll(capacity: 64)
        for (i, p) in pairs.enumerated() {
            try poll.add(p.sender.fd, token: UInt64(2 * i))
            try poll.add(p.receiver.fd, token: UInt64(2 * i + 1))
        }
        let slots = ReceiveSlots(slotCount: 64, slotSize: 2048)
        let queue = SendQueue(capacity: 256, arenaSize: 256 * (payloadSize + 16), segmentation: false)
        let planned = Int((rate * seconds).rounded())
        let cap = max(8, Int(rate * 0.005))
        let start = monotonicNanos() + 5_000_000
        let end = start + UInt64(seconds * 1e9)
        var (sent, skipped, delivered, next) = (0, 0, 0, 0)
        var sequence: UInt64 = 0
        var graceEnd: UInt64?
        while true {
            let now = monotonicNanos()
            if now >= start, graceEnd == nil {
                let due = now >= end ? planned : min(planned, Int(rate * Double(now - start) / 1e9))
                var want = due - sent - skipped
                if want > cap {
                    skipped += want - cap
                    want = cap
                }
                for _ in 0..<max(0, want) {
                    let p = pairs[next]
                    let (size, step, pair, seq) = (payloadSize, step, UInt32(next), sequence)
                    next = next + 1 == pairs.count ? 0 : next + 1
                    queue.append(fd: p.sender.fd, to: server, reserving: size + 4) { out in
                        RelayPayload.write(channel: RelayPair.channel, size: size, step: step, pair: pair, sequence: seq, into: out)
                    }
                    sequence &+= 1
                }
                sent += max(0, want)
                queue.flush()
                if now >= end { graceEnd = now + 1_000_000_000 }
            }
            if let graceEnd, delivered >= sent || now >= graceEnd { break }
            let ready = poll.wait(timeoutMilliseconds: graceEnd == nil ? 0 : 1)
            for e in 0..<max(0, ready) {
                let p = pairs[Int(poll.token(e) / 2)]
                let fd = poll.token(e) % 2 == 0 ? p.sender.fd : p.receiver.fd
                while true {
                    let (first, count) = slots.receive(from: fd, limit: slots.slotCount)
                    for slot in first..<(first + max(0, count)) {
                        if let m = RelayPayload.read(slots.datagram(slot).bytes), m.step == step { delivered += 1 }
                    }
                    slots.reset()
                    if count < slots.slotCount { break }
                }
            }
        }
        return (sent, delivered, planned)
    }
}

/// One step: `rate` ChannelData messages per second in total for `seconds`,
/// then up to a second for stragglers. Only messages tagged with this step
/// count. The thread starts from `loop` so it inherits the bench's CPU pinning.
func runRelayStep(step: UInt32, rate: Int, seconds: Double, pairs: [RelayPair], loop: any EventLoop,
                  payloadSize: Int) async throws -> (result: RelayResult, generatorLimited: Bool) {
    let counts = try await withCheckedThrowingContinuation { continuation in
        let thread = RelayStepThread(pairs: pairs, step: step, rate: rate, seconds: seconds, payloadSize: payloadSize,
                                     finished: continuation)
        loop.execute { thread.start() }
    }
    let result = RelayResult(rate: rate, sent: counts.sent, delivered: counts.delivered, seconds: seconds)
    return (result, counts.sent < counts.planned * 97 / 100)
}
