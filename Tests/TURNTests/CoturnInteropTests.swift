import Foundation
import Glibc
import RTCBase
import STUN
import Testing
import TURN

/// A UDP socket on 127.0.0.1 with an ephemeral port (test plumbing only).
final class LoopbackUDPSocket {
    let fd: Int32
    let address: TransportAddress

    init() throws {
        let s = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), Int32(IPPROTO_UDP))
        guard s >= 0 else { throw InteropError.socket("socket() errno \(errno)") }
        var sin = LoopbackUDPSocket.socketAddress(TransportAddress(ip: .v4(0x7F00_0001), port: 0))
        let bound = withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { close(s); throw InteropError.socket("bind() errno \(errno)") }
        var out = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &out) {
            $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) { getsockname(s, $0, &length) }
        }
        fd = s
        address = TransportAddress(ip: .v4(0x7F00_0001), port: UInt16(bigEndian: out.sin_port))
    }

    deinit { close(fd) }

    static func socketAddress(_ a: TransportAddress) -> sockaddr_in {
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = a.port.bigEndian
        if case .v4(let v) = a.ip { sin.sin_addr.s_addr = v.bigEndian }
        return sin
    }

    func send(_ bytes: [UInt8], to destination: TransportAddress) {
        var sin = LoopbackUDPSocket.socketAddress(destination)
        _ = bytes.withUnsafeBytes { b in
            withUnsafePointer(to: &sin) {
                $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) {
                    sendto(fd, b.baseAddress, b.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
    }

    /// One datagram if one is waiting (call after poll says readable).
    func receive() -> (bytes: [UInt8], from: TransportAddress)? {
        var buffer = [UInt8](repeating: 0, count: 2048)
        var sin = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let n = buffer.withUnsafeMutableBytes { b in
            withUnsafeMutablePointer(to: &sin) {
                $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) {
                    recvfrom(fd, b.baseAddress, b.count, Int32(MSG_DONTWAIT), $0, &length)
                }
            }
        }
        guard n >= 0 else { return nil }
        let from = TransportAddress(ip: .v4(UInt32(bigEndian: sin.sin_addr.s_addr)), port: UInt16(bigEndian: sin.sin_port))
        return (Array(buffer[0..<n]), from)
    }
}

enum InteropError: Error, CustomStringConvertible {
    case socket(String)
    case coturn(String)
    var description: String {
        switch self {
        case .socket(let s): return "socket: \(s)"
        case .coturn(let s): return "coturn: \(s)"
        }
    }
}

/// The real-clock `Instant` for driving engines against a live server.
func wallInstant() -> Instant {
    Instant(nanoseconds: Int64(DispatchTime.now().uptimeNanoseconds))
}

/// A `turnserver` child process on 127.0.0.1, killed when the test ends.
final class CoturnProcess {
    static let username = "parley"
    static let password = "interop-secret"
    static let realm = "interop.test"

    let process = Process()
    let port: UInt16
    let relayPorts: ClosedRange<UInt16>
    let logPath: String
    let pidPath: String

    static func executable() -> String? {
        let candidates = ["/usr/bin/turnserver", "/usr/sbin/turnserver", "/usr/local/bin/turnserver"]
            + (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map { "\($0)/turnserver" }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    init(executable: String) throws {
        // A port that was free a moment ago, and a relay range away from the
        // usual ephemeral ports, varied by pid so parallel runs rarely clash.
        let probe = try LoopbackUDPSocket()
        port = probe.address.port
        let base = UInt16(20000 + Int(getpid() % 200) * 50)
        relayPorts = base...(base + 49)
        logPath = NSTemporaryDirectory() + "parley-coturn-\(getpid())-\(port).log"
        pidPath = NSTemporaryDirectory() + "parley-coturn-\(getpid())-\(port).pid"
        FileManager.default.createFile(atPath: logPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = [
            "-n", "--no-cli", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
            "--listening-port=\(port)", "--min-port=\(relayPorts.lowerBound)", "--max-port=\(relayPorts.upperBound)",
            "--lt-cred-mech", "--user=\(CoturnProcess.username):\(CoturnProcess.password)",
            "--realm=\(CoturnProcess.realm)", "--allow-loopback-peers", "--no-tls", "--no-dtls",
            "--log-file=stdout", "--simple-log", "--pidfile=\(pidPath)",
        ]
        let log = FileHandle(forWritingAtPath: logPath)
        process.standardOutput = log
        process.standardError = log
        withExtendedLifetime(probe) {}
        try process.run()
    }

    var address: TransportAddress { TransportAddress(ip: .v4(0x7F00_0001), port: port) }

    func stop() {
        if process.isRunning {
            process.terminate()
            // SIGTERM is normally enough; make sure it is gone either way.
            let deadline = Date().addingTimeInterval(2)
            while process.isRunning, Date() < deadline { usleep(20_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: logPath)
        try? FileManager.default.removeItem(atPath: pidPath)
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
}

/// Waits for datagrams on `sockets` for at most `timeout`; returns which are readable.
func pollReadable(_ sockets: [LoopbackUDPSocket], timeout: Duration) -> [Bool] {
    var fds = sockets.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
    let ms = Int32(max(0, min(timeout.nanoseconds / 1_000_000, 1000)))
    _ = poll(&fds, nfds_t(fds.count), ms)
    return fds.map { $0.revents & Int16(POLLIN) != 0 }
}

@Suite("Interop with coturn (real UDP on 127.0.0.1)", .serialized)
struct CoturnInteropTests {
    @Test(.timeLimit(.minutes(1)))
    func allocatesPermitsBindsAndRelaysBothWays() throws {
        guard let executable = CoturnProcess.executable() else {
            Issue.record("turnserver (coturn) is not installed; install it with `apt-get install -y coturn` (the Makefile does).")
            return
        }
        let coturn = try CoturnProcess(executable: executable)
        defer { coturn.stop() }
        let clientSocket = try LoopbackUDPSocket()
        let peerSocket = try LoopbackUDPSocket()

        // Wait until coturn answers a Binding request (it needs a moment to start).
        var rng = ClientTestRNG(seed: UInt64(getpid()))
        let started = wallInstant()
        var ready = false
        while !ready, wallInstant() - started < .seconds(5) {
            let probe = try STUNMessage(type: .bindingRequest, transactionID: .random(using: &rng)).encoded()
            clientSocket.send(probe, to: coturn.address)
            if pollReadable([clientSocket], timeout: .milliseconds(100))[0] {
                while let (bytes, _) = clientSocket.receive() {
                    if (try? STUNMessage(parsing: bytes))?.type == .bindingSuccess { ready = true }
                }
            }
        }
        try #require(ready, "coturn did not answer on \(coturn.address) within 5 s; log:\n\(coturn.log)")

        var client = TURNClientAllocation(
            configuration: TURNClientConfiguration(server: coturn.address, username: CoturnProcess.username,
                                                   password: CoturnProcess.password, localAddress: clientSocket.address),
            rng: ClientTestRNG(seed: 1234))
        var events: [TURNClientEvent] = []
        var fromPeers: [(peer: TransportAddress, payload: [UInt8], channelData: Bool)] = []
        var atPeer: [(from: TransportAddress, payload: [UInt8])] = []
        var sentKinds: [PacketKind] = []

        /// Runs the client against the sockets until `done` or `limit`.
        func flush() {
            while let t = client.pollTransmit() {
                sentKinds.append(PacketKind.classify(t.payload))
                clientSocket.send(t.payload, to: t.destination)
            }
            while let e = client.pollEvent() { events.append(e) }
        }
        func drive(for limit: Duration, until done: () -> Bool) {
            let end = wallInstant() + limit
            defer { flush() }
            while wallInstant() < end {
                let now = wallInstant()
                if let t = client.pollTimeout(), t <= now { client.handleTimeout(now: now) }
                flush()
                if done() { return }
                let wait = min(client.pollTimeout().map { $0 - wallInstant() } ?? .milliseconds(50), .milliseconds(50))
                let readable = pollReadable([clientSocket, peerSocket], timeout: wait)
                if readable[0] {
                    while let (bytes, from) = clientSocket.receive() {
                        if let data = client.handleReceive(bytes, from: from, now: wallInstant()) {
                            fromPeers.append((data.peer, data.payload, PacketKind.classify(bytes) == .turnChannel))
                        }
                    }
                }
                if readable[1] {
                    while let (bytes, from) = peerSocket.receive() { atPeer.append((from, bytes)) }
                }
            }
        }

        // Allocate: 401 with REALM/NONCE, then the signed request.
        client.start(now: wallInstant())
        drive(for: .seconds(3)) { client.state != .allocating }
        try #require(client.state == .allocated, "events \(events); coturn log:\n\(coturn.log)")
        let relayed = try #require(client.relayedAddress)
        #expect(relayed.ip == .v4(0x7F00_0001))
        #expect(coturn.relayPorts.contains(relayed.port), "relay port \(relayed.port) outside \(coturn.relayPorts)")
        #expect(client.mappedAddress == clientSocket.address)
        #expect(events.first == .allocated(relayed: relayed, mapped: clientSocket.address))

        // Client → peer: held for CreatePermission, then relayed from the relayed address.
        let hello = Array("hello through coturn".utf8)
        client.send(hello, to: peerSocket.address, now: wallInstant())
        drive(for: .seconds(2)) { !atPeer.isEmpty }
        #expect(atPeer.first?.payload == hello)
        #expect(atPeer.first?.from == relayed)

        // Peer → relayed address → client, unwrapped.
        peerSocket.send(Array("reply one".utf8), to: relayed)
        drive(for: .seconds(2)) { !fromPeers.isEmpty }
        #expect(fromPeers.first?.peer == peerSocket.address)
        #expect(fromPeers.first?.payload == Array("reply one".utf8))

        // Once ChannelBind succeeded, both directions use ChannelData.
        drive(for: .seconds(2)) { client.isChannelBound(peerSocket.address) }
        #expect(client.isChannelBound(peerSocket.address))
        let viaChannel = Array("over the channel".utf8)
        let kindsBefore = sentKinds.count
        client.send(viaChannel, to: peerSocket.address, now: wallInstant())
        drive(for: .seconds(2)) { atPeer.count >= 2 }
        #expect(atPeer.last?.payload == viaChannel)
        #expect(atPeer.last?.from == relayed)
        #expect(sentKinds.dropFirst(kindsBefore).first == .turnChannel)
        peerSocket.send(Array("reply two".utf8), to: relayed)
        drive(for: .seconds(2)) { fromPeers.count >= 2 }
        #expect(fromPeers.last?.payload == Array("reply two".utf8))
        #expect(fromPeers.last?.peer == peerSocket.address)
        #expect(fromPeers.last?.channelData == true)

        // Deallocate: Refresh with LIFETIME 0, answered.
        client.close(now: wallInstant())
        drive(for: .seconds(2)) { client.state == .closed }
        #expect(client.state == .closed)
        #expect(events.last == .closed)
        #expect(!events.contains { if case .failed = $0 { return true } else { return false } })
    }
}
