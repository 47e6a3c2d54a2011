import RTCBase
import STUN

/// The SFU's side of ICE: a lite implementation (RFC 8445 §2.5) that only
/// answers connectivity checks, is always controlled, and follows the peer's
/// nominations. Consent freshness (RFC 7675) is tracked from the peer's
/// checks: a browser sends one every few seconds, and if none arrives for the
/// consent timeout the peer is gone.
///
/// Sans-IO: feed datagrams with `handleReceive`, timers with
/// `handleTimeout`, drain `pollTransmit`/`pollEvent`, schedule by `pollTimeout`.
public struct ICELiteAgent: Sendable {
    public struct Configuration: Sendable {
        /// RFC 7675 §5.1 recommends 30 s.
        public var consentTimeout: Duration = .seconds(30)
        public init(consentTimeout: Duration = .seconds(30)) { self.consentTimeout = consentTimeout }
    }

    public let configuration: Configuration
    private var auth: ICEAuth
    /// Addresses that passed a check, with the time of their latest one.
    private var validated: [TransportAddress: Instant] = [:]
    public private(set) var selectedAddress: TransportAddress?
    public private(set) var consentExpired = false
    private var transmits: [Transmit] = []
    private var transmitHead = 0
    private var events: [ICEEvent] = []
    private var eventHead = 0

    public init(local: ICECredentials, remote: ICECredentials? = nil, configuration: Configuration = Configuration()) {
        self.configuration = configuration
        auth = ICEAuth(local: local, remote: remote)
    }

    public var localCredentials: ICECredentials { auth.local }
    public var remoteCredentials: ICECredentials? { auth.remote }

    /// Sets the peer's ufrag/password (from its offer or answer).
    public mutating func setRemoteCredentials(_ remote: ICECredentials) {
        auth.setRemote(remote)
    }

    /// ICE restart (RFC 8445 §9): checks are answered with the new
    /// credentials from now on. Addresses validated before keep consent
    /// until it runs out, so media continues while the peer re-checks; the
    /// peer's next nomination selects the pair anew.
    public mutating func restart(local: ICECredentials, remote: ICECredentials?) {
        auth = ICEAuth(local: local, remote: remote)
    }

    /// True when `address` has passed an authenticated check and consent has
    /// not expired: the media edge accepts media only from such addresses.
    public func isValidated(_ address: TransportAddress) -> Bool {
        !consentExpired && validated[address] != nil
    }

    /// Handles one datagram. Returns false if it is not STUN (the caller
    /// routes it to DTLS/SRTP); true if it was STUN, answered or dropped.
    @discardableResult
    public mutating func handleReceive(_ packet: UnsafeRawBufferPointer, from source: TransportAddress, now: Instant) -> Bool {
        guard let view = try? STUNMessageView(packet) else {
            return STUNMessageType.looksLikeSTUN(packet)
        }
        guard view.type == .bindingRequest else {
            // Indications (keepalives) and stray responses need no answer.
            return true
        }
        var scratch = [UInt8](repeating: 0, count: 128)
        let reply = scratch.withUnsafeMutableBytes { buffer in
            respond(to: view, from: source, now: now, into: buffer)
        }
        switch reply {
        case .drop:
            break
        case .success(let n):
            scratch.removeSubrange(n...)
            transmits.append(Transmit(destination: source, payload: scratch))
        case .error(let bytes):
            transmits.append(Transmit(destination: source, payload: bytes))
        }
        return true
    }

    /// What `respond(to:from:now:into:)` did.
    public enum Reply: Sendable, Equatable {
        /// Nothing to send.
        case drop
        /// A success response of this many bytes is in the caller's buffer.
        case success(byteCount: Int)
        /// Send this error response (rare, so it may allocate).
        case error([UInt8])
    }

    /// The allocation-free core for the media edge: validates a Binding
    /// request and writes the success response into `buffer` (128 bytes is
    /// enough). Updates validation, nomination and consent like
    /// `handleReceive`, but queues nothing.
    /// `mapped`, when given, is reported in XOR-MAPPED-ADDRESS instead of
    /// `source` (the edge's name for the peer is not its real address).
    public mutating func respond(to view: STUNMessageView, from source: TransportAddress, mapped: TransportAddress? = nil,
                                 now: Instant, into buffer: UnsafeMutableRawBufferPointer) -> Reply {
        guard view.type == .bindingRequest, !consentExpired else { return .drop }
        switch auth.validate(view) {
        case .discard:
            return .drop
        case .reject(let error, let unknown):
            // A request that failed authentication gets an unauthenticated
            // error (RFC 8489 §9.1.3).
            return .error(bindingError(transactionID: view.transactionID, error: error, unknown: unknown,
                                       key: error.code == 420 ? auth.localKey : nil))
        case .accepted:
            break
        }
        // RFC 8445 §7.3.1.1: we are controlled. A peer that also claims the
        // controlled role must become controlling; a lite agent cannot take
        // that role (§6.1.1), so it always answers 487, which makes a full
        // peer switch (§7.2.5.1).
        if view.contains(.iceControlled) {
            return .error(bindingError(transactionID: view.transactionID, error: .roleConflict, unknown: [],
                                       key: auth.localKey))
        }
        guard let n = try? writeBindingSuccess(into: buffer, transactionID: view.transactionID,
                                                mapped: mapped ?? source, key: auth.localKey) else { return .drop }
        validated[source] = now
        // RFC 8445 §7.3.1.5: USE-CANDIDATE from the controlling agent
        // nominates this pair; a lite agent uses the latest nomination.
        if view.useCandidate, selectedAddress != source {
            selectedAddress = source
            events.append(.selectedPair(remote: source))
        }
        return .success(byteCount: n)
    }

    /// Applies the consent timer (RFC 7675 §5.1).
    public mutating func handleTimeout(now: Instant) {
        guard !consentExpired, let deadline = pollTimeout(), now >= deadline else {
            pruneStale(now: now)
            return
        }
        consentExpired = true
        events.append(.consentExpired)
    }

    /// Forgets addresses that have not been checked within the consent
    /// timeout, so an address the peer abandoned stops being accepted.
    private mutating func pruneStale(now: Instant) {
        let limit = configuration.consentTimeout
        if validated.values.contains(where: { now - $0 >= limit }) {
            validated = validated.filter { now - $0.value < limit }
        }
    }

    /// When consent for the selected address runs out.
    public func pollTimeout() -> Instant? {
        guard !consentExpired, let selectedAddress, let last = validated[selectedAddress] else { return nil }
        return last + configuration.consentTimeout
    }

    public mutating func pollTransmit() -> Transmit? {
        guard transmitHead < transmits.count else { return nil }
        defer {
            transmitHead += 1
            if transmitHead == transmits.count { transmits.removeAll(keepingCapacity: true); transmitHead = 0 }
        }
        return transmits[transmitHead]
    }

    public mutating func pollEvent() -> ICEEvent? {
        guard eventHead < events.count else { return nil }
        defer {
            eventHead += 1
            if eventHead == events.count { events.removeAll(keepingCapacity: true); eventHead = 0 }
        }
        return events[eventHead]
    }
}
