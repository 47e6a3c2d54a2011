@testable import DTLS
import RTCBase
import Testing

/// Certificates are slowish to make (key generation); tests share two.
enum TestCertificates {
    static let client: DTLSCertificate = try! DTLSCertificate(commonName: "client")
    static let server: DTLSCertificate = try! DTLSCertificate(commonName: "server")
    static let other: DTLSCertificate = try! DTLSCertificate(commonName: "mallory")
}

/// Which way a datagram travels on the fake link.
enum Direction: Hashable { case clientToServer, serverToClient }

/// A client and a server joined by an in-memory link under a fake clock that
/// jumps straight to the next engine deadline, so retransmission schedules of
/// seconds run in microseconds of real time.
final class DTLSLink {
    let client: DTLSConnection
    let server: DTLSConnection
    var now = Instant.zero
    var clientEvents: [DTLSEvent] = []
    var serverEvents: [DTLSEvent] = []
    /// Every datagram either side put on the wire, with its send time.
    var sent: [(direction: Direction, time: Instant, datagram: [UInt8])] = []
    /// How many non-empty batches each side has sent (a batch is what one
    /// side had queued when the link pumped: a flight or a retransmission).
    var batchCount: [Direction: Int] = [:]
    /// What the link does to a batch: the default delivers it unchanged.
    var policy: (Direction, _ batchIndex: Int, [[UInt8]]) -> [[UInt8]] = { _, _, batch in batch }

    init(client: DTLSConnection, server: DTLSConnection) {
        self.client = client
        self.server = server
    }

    convenience init(
        clientConfiguration: DTLSConfiguration = DTLSConfiguration(),
        serverConfiguration: DTLSConfiguration = DTLSConfiguration(),
        clientKnowsFingerprint: DTLSFingerprint? = TestCertificates.server.fingerprint,
        serverKnowsFingerprint: DTLSFingerprint? = TestCertificates.client.fingerprint,
        mtu: Int = 1200
    ) throws {
        let client = try DTLSConnection(role: .client, certificate: TestCertificates.client,
                                        remoteFingerprint: clientKnowsFingerprint, mtu: mtu,
                                        configuration: clientConfiguration)
        let server = try DTLSConnection(role: .server, certificate: TestCertificates.server,
                                        remoteFingerprint: serverKnowsFingerprint, mtu: mtu,
                                        configuration: serverConfiguration)
        self.init(client: client, server: server)
    }

    var clientKeys: DTLSSRTPKeys? { Self.keys(in: clientEvents) }
    var serverKeys: DTLSSRTPKeys? { Self.keys(in: serverEvents) }

    static func keys(in events: [DTLSEvent]) -> DTLSSRTPKeys? {
        for case .connected(let keys) in events { return keys }
        return nil
    }

    static func failure(in events: [DTLSEvent]) -> DTLSError? {
        for case .failed(let error) in events { return error }
        return nil
    }

    var largestDatagram: Int { sent.map(\.datagram.count).max() ?? 0 }

    /// Moves datagrams both ways until neither side has anything to send.
    func exchange() {
        for _ in 0..<1000 {
            let fromClient = drain(client, .clientToServer)
            let fromServer = drain(server, .serverToClient)
            if fromClient.isEmpty && fromServer.isEmpty { break }
            for datagram in fromClient { server.handleReceive(datagram, now: now) }
            for datagram in fromServer { client.handleReceive(datagram, now: now) }
            collectEvents()
        }
        collectEvents()
    }

    private func drain(_ connection: DTLSConnection, _ direction: Direction) -> [[UInt8]] {
        var batch: [[UInt8]] = []
        while let datagram = connection.pollTransmit() {
            // Every datagram on the wire: whole records, within the MTU.
            if datagram.count > connection.mtu { Issue.record("datagram of \(datagram.count) bytes above MTU \(connection.mtu)") }
            if !datagram.withUnsafeBytes({ DTLSRecordFraming.isWellFormed($0) }) { Issue.record("datagram is not whole DTLS records") }
            sent.append((direction, now, datagram))
            batch.append(datagram)
        }
        guard !batch.isEmpty else { return [] }
        let index = batchCount[direction, default: 0]
        batchCount[direction] = index + 1
        return policy(direction, index, batch)
    }

    func collectEvents() {
        while let event = client.pollEvent() { clientEvents.append(event) }
        while let event = server.pollEvent() { serverEvents.append(event) }
    }

    /// Starts the client and runs until `done` holds or nothing is pending.
    @discardableResult
    func run(until done: (DTLSLink) -> Bool = { $0.clientKeys != nil && $0.serverKeys != nil },
             maxSteps: Int = 200) -> Bool {
        server.start(now: now)
        client.start(now: now)
        for _ in 0..<maxSteps {
            exchange()
            if done(self) { return true }
            let deadlines = [client.pollTimeout(), server.pollTimeout()].compactMap { $0 }
            guard let next = deadlines.min() else { return done(self) }
            now = max(now, next)
            client.handleTimeout(now: now)
            server.handleTimeout(now: now)
        }
        return done(self)
    }
}

