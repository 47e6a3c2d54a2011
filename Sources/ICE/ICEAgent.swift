import RTCBase
import STUN

/// A full ICE agent (RFC 8445) for the client role: it starts as the
/// controlling agent, pairs its host candidates with the peer's (trickled)
/// candidates, runs paced connectivity checks with retransmission, nominates
/// with regular nomination, answers the peer's checks (triggered checks,
/// peer-reflexive candidates), resolves role conflicts, and keeps consent
/// fresh once connected (RFC 7675).
///
/// Simplifications, all within what the RFC allows for one data stream with
/// one component: every pair starts Waiting (no frozen foundations), the
/// agent gathers nothing itself (its owner passes host addresses at init and
/// relayed addresses from a TURN allocation with `addLocalCandidate`), and
/// the first pair that succeeds is the one nominated.
///
/// Checks of a pair whose local candidate is relayed come out as transmits
/// whose `source` is the relayed address: the owner sends them through its
/// TURN allocation, and feeds what the allocation unwraps back into
/// `handleReceive` with `to:` set to the relayed address (RFC 8445 §5.1.1.2:
/// the base of a relayed candidate is the candidate itself).
public struct ICEAgent: Sendable {
    public struct Configuration: Sendable {
        /// Ta: one new check per interval (RFC 8445 §14.2 default 50 ms).
        public var pacing: Duration = .milliseconds(50)
        /// First retransmission timeout (RFC 8489 §6.2.1: 500 ms for checks).
        public var initialRTO: Duration = .milliseconds(500)
        /// RTO doubles per retransmission up to this cap, which keeps a dead
        /// pair from holding the checklist for a minute.
        public var maxRTO: Duration = .seconds(3)
        /// Rc: transmissions of one check before the pair fails (RFC 8489 §6.2.1: 7).
        public var maxTransmissions: Int = 7
        /// Consent check interval, jittered by ±20% (RFC 7675 §5.1: 5 s).
        public var consentInterval: Duration = .seconds(5)
        /// No authenticated response for this long ends consent (RFC 7675 §5.1: 30 s).
        public var consentTimeout: Duration = .seconds(30)

        public init() {}
    }

    enum PairState: Equatable { case waiting, inProgress, succeeded, failed }

    struct Pair {
        var local: TransportAddress
        var localPriority: UInt32
        var remote: TransportAddress
        var remotePriority: UInt32
        var state: PairState = .waiting
        /// The controlling peer nominated this pair before our own check on it
        /// succeeded (RFC 8445 §7.3.1.5).
        var nominateOnSuccess = false
    }

    enum TransactionKind {
        case check(pair: Int, useCandidate: Bool)
        case consent(pair: Int)
    }

    struct Transaction {
        var kind: TransactionKind
        var transmit: Transmit
        var transmissions: Int
        var rto: Duration
        var deadline: Instant
        var controllingWhenSent: Bool
    }

    public enum State: Sendable, Equatable { case checking, connected, failed, consentExpired }

    public let configuration: Configuration
    private var auth: ICEAuth
    private var rng: any RandomNumberGenerator & Sendable
    public let tieBreaker: UInt64
    public private(set) var isControlling = true
    public private(set) var state: State = .checking
    /// Local candidates, most preferred first within each type.
    public private(set) var localCandidates: [TransportAddress]
    /// Parallel to `localCandidates`.
    private var localTypes: [ICECandidateType]
    /// The related address (raddr/rport) of each local candidate, if any.
    private var localRelated: [TransportAddress?]
    private var remoteCandidates: [TransportAddress: UInt32] = [:]
    private var pairs: [Pair] = []
    private var triggered: [Int] = []
    private var transactions: [STUNTransactionID: Transaction] = [:]
    private var lastCheckSent: Instant?
    private var lastNow = Instant.zero
    private var toNominate: Int?
    private var nominating: Int?
    private var selected: Int?
    private var lastConsent = Instant.zero
    private var nextConsent = Instant.zero
    private var transmits: [Transmit] = []
    private var events: [ICEEvent] = []

    /// - Parameters:
    ///   - localCandidates: the host addresses this agent's sockets are bound
    ///     to; earlier entries are preferred.
    ///   - rng: source of the tie-breaker, transaction ids and consent jitter.
    public init(local: ICECredentials, remote: ICECredentials? = nil, localCandidates: [TransportAddress],
                configuration: Configuration = Configuration(),
                rng: any RandomNumberGenerator & Sendable = SystemRandomNumberGenerator()) {
        self.configuration = configuration
        auth = ICEAuth(local: local, remote: remote)
        self.rng = rng
        tieBreaker = self.rng.next()
        self.localCandidates = localCandidates
        localTypes = Array(repeating: .host, count: localCandidates.count)
        localRelated = Array(repeating: nil, count: localCandidates.count)
    }

    public var localCredentials: ICECredentials { auth.local }

    public mutating func setRemoteCredentials(_ remote: ICECredentials) {
        auth.setRemote(remote)
    }

    /// The local candidates as SDP candidate lines (RFC 8839 §5.1).
    public var localCandidateDescriptions: [ICECandidate] {
        localCandidates.indices.map { localCandidateDescription($0) }
    }

    private func localCandidateDescription(_ i: Int) -> ICECandidate {
        // One candidate per base and type here, so the index is a valid
        // foundation (RFC 8445 §5.1.1.3: same type, base and server share one).
        ICECandidate(foundation: String(i + 1), priority: localPriority(i), address: localCandidates[i],
                     type: localTypes[i], related: localRelated[i])
    }

    /// The type of a local candidate (nil if `address` is not one).
    public func localCandidateType(_ address: TransportAddress) -> ICECandidateType? {
        localCandidates.firstIndex(of: address).map { localTypes[$0] }
    }

    /// Adds a local candidate after creation, typically the relayed address
    /// of a TURN allocation (`type: .relay`, `related`: the mapped address),
    /// and pairs it with every remote candidate known so far. Returns its
    /// SDP description for trickling (RFC 8838), or nil if already present.
    @discardableResult
    public mutating func addLocalCandidate(_ address: TransportAddress, type: ICECandidateType,
                                           related: TransportAddress? = nil) -> ICECandidate? {
        guard !localCandidates.contains(address) else { return nil }
        localCandidates.append(address)
        localTypes.append(type)
        localRelated.append(related)
        let i = localCandidates.count - 1
        for (remote, priority) in remoteCandidates where remote.ip.isIPv4 == address.ip.isIPv4 {
            addPair(local: address, localPriority: localPriority(i), remote: remote, remotePriority: priority)
        }
        return localCandidateDescription(i)
    }

    /// The nominated pair, once connected.
    public var selectedPair: (local: TransportAddress, remote: TransportAddress)? {
        selected.map { (pairs[$0].local, pairs[$0].remote) }
    }

    /// True when `address` is the remote side of a pair that passed a check.
    public func isValidated(_ address: TransportAddress) -> Bool {
        state != .consentExpired && pairs.contains { $0.remote == address && $0.state == .succeeded }
    }

    /// RFC 8445 §5.1.2: the type preference (host 126 … relay 0) dominates,
    /// then earlier candidates of a type are preferred.
    private func localPriority(_ index: Int, type: ICECandidateType? = nil) -> UInt32 {
        ICECandidate.priority(type: type ?? localTypes[index], localPreference: UInt16(clamping: 65535 - index), component: 1)
    }

    // MARK: Candidates

    /// Adds a remote candidate (trickle ICE, RFC 8838). TCP candidates and
    /// unresolved mDNS names are ignored; resolve `.local` names first.
    public mutating func addRemoteCandidate(_ candidate: ICECandidate) {
        guard candidate.transport == .udp, candidate.component == 1, let address = candidate.address else { return }
        addRemoteCandidate(address, priority: candidate.priority)
    }

    public mutating func addRemoteCandidate(_ address: TransportAddress, priority: UInt32) {
        if remoteCandidates[address] != nil { return }
        remoteCandidates[address] = priority
        for (i, local) in localCandidates.enumerated() where local.ip.isIPv4 == address.ip.isIPv4 {
            addPair(local: local, localPriority: localPriority(i), remote: address, remotePriority: priority)
        }
    }

    @discardableResult
    private mutating func addPair(local: TransportAddress, localPriority: UInt32, remote: TransportAddress, remotePriority: UInt32) -> Int {
        if let i = pairs.firstIndex(where: { $0.local == local && $0.remote == remote }) { return i }
        pairs.append(Pair(local: local, localPriority: localPriority, remote: remote, remotePriority: remotePriority))
        if state == .failed { state = .checking }
        return pairs.count - 1
    }

    /// RFC 8445 §6.1.2.3: 2^32·MIN(G,D) + 2·MAX(G,D) + (G>D ? 1 : 0), with G
    /// the controlling agent's candidate priority.
    func pairPriority(_ p: Pair) -> UInt64 {
        let g = UInt64(isControlling ? p.localPriority : p.remotePriority)
        let d = UInt64(isControlling ? p.remotePriority : p.localPriority)
        return (min(g, d) << 32) + 2 * max(g, d) + (g > d ? 1 : 0)
    }

    // MARK: Receive

    /// Handles one datagram that arrived on local address `to`. Returns false
    /// if it is not STUN.
    @discardableResult
    public mutating func handleReceive(_ packet: UnsafeRawBufferPointer, from source: TransportAddress,
                                       to local: TransportAddress, now: Instant) -> Bool {
        lastNow = now
        guard let view = try? STUNMessageView(packet) else { return STUNMessageType.looksLikeSTUN(packet) }
        guard view.type.method == .binding else { return true }
        switch view.type.messageClass {
        case .request: handleRequest(view, from: source, to: local, now: now)
        case .successResponse, .errorResponse: handleResponse(view, from: source, to: local, now: now)
        case .indication: break
        }
        return true
    }

    private mutating func handleRequest(_ view: STUNMessageView, from source: TransportAddress, to local: TransportAddress, now: Instant) {
        switch auth.validate(view) {
        case .discard:
            return
        case .reject(let error, let unknown):
            let bytes = bindingError(transactionID: view.transactionID, error: error, unknown: unknown,
                                     key: error.code == 420 ? auth.localKey : nil)
            transmits.append(Transmit(source: local, destination: source, payload: bytes))
            return
        case .accepted:
            break
        }
        // Role conflict (RFC 8445 §7.3.1.1): the larger tie-breaker keeps or
        // takes the controlling role.
        if isControlling, let theirs = view.iceControlling {
            if tieBreaker >= theirs {
                sendRoleConflict(view, from: source, to: local)
                return
            }
            switchRole(controlling: false)
        } else if !isControlling, let theirs = view.iceControlled {
            if tieBreaker >= theirs {
                switchRole(controlling: true)
            } else {
                sendRoleConflict(view, from: source, to: local)
                return
            }
        }
        if let bytes = makeBytes(capacity: 128, { (buffer) throws(STUNError) -> Int in
            try writeBindingSuccess(into: buffer, transactionID: view.transactionID, mapped: source, key: auth.localKey)
        }) {
            transmits.append(Transmit(source: local, destination: source, payload: bytes))
        }

        // A source we have no candidate for is peer-reflexive (§7.3.1.3).
        guard let localIndex = localCandidates.firstIndex(of: local) else { return }
        let remotePriority = remoteCandidates[source] ?? view.priority ?? 0
        if remoteCandidates[source] == nil { remoteCandidates[source] = remotePriority }
        let index = addPair(local: local, localPriority: localPriority(localIndex),
                            remote: source, remotePriority: remotePriority)

        // Triggered check (§7.3.1.4).
        switch pairs[index].state {
        case .waiting:
            if !triggered.contains(index) { triggered.append(index) }
        case .failed:
            pairs[index].state = .waiting
            triggered.append(index)
        case .inProgress, .succeeded:
            break
        }

        // Nomination by a controlling peer (§7.3.1.5).
        if !isControlling, view.useCandidate {
            if pairs[index].state == .succeeded {
                select(index, now: now)
            } else {
                pairs[index].nominateOnSuccess = true
            }
        }
    }

    private mutating func sendRoleConflict(_ view: STUNMessageView, from source: TransportAddress, to local: TransportAddress) {
        let bytes = bindingError(transactionID: view.transactionID, error: .roleConflict, unknown: [], key: auth.localKey)
        transmits.append(Transmit(source: local, destination: source, payload: bytes))
    }

    private mutating func switchRole(controlling: Bool) {
        guard isControlling != controlling else { return }
        isControlling = controlling
        events.append(.roleChanged(controlling: controlling))
        if !controlling { toNominate = nil }
    }

    private mutating func handleResponse(_ view: STUNMessageView, from source: TransportAddress, to local: TransportAddress, now: Instant) {
        guard let tx = transactions[view.transactionID], let key = auth.remoteKey else { return }
        // RFC 8489 §9.1.4: a response that does not authenticate is dropped
        // as if never received; retransmissions continue.
        guard (try? view.verifyMessageIntegrity(key: key)) != nil else { return }
        if view.fingerprintOffset != nil, (try? view.verifyFingerprint()) == nil { return }
        transactions[view.transactionID] = nil

        switch tx.kind {
        case .consent:
            if view.type.messageClass == .successResponse, source == tx.transmit.destination, local == tx.transmit.source {
                lastConsent = now
            }
        case .check(let index, let useCandidate):
            if useCandidate, nominating == index { nominating = nil }
            // Only symmetric responses validate a pair (§7.2.5.2.1).
            guard source == tx.transmit.destination, local == tx.transmit.source else {
                pairs[index].state = .failed
                return
            }
            if view.type.messageClass == .errorResponse {
                if view.errorCodeNumber == 487 {
                    // §7.2.5.1: switch to the role opposite to the one the
                    // request claimed, and check the pair again.
                    switchRole(controlling: !tx.controllingWhenSent)
                    pairs[index].state = .waiting
                    if !triggered.contains(index) { triggered.append(index) }
                } else if pairs[index].state != .succeeded {
                    pairs[index].state = .failed
                }
                return
            }
            pairs[index].state = .succeeded
            if useCandidate {
                select(index, now: now)
            } else if !isControlling, pairs[index].nominateOnSuccess {
                select(index, now: now)
            } else if isControlling, selected == nil, nominating == nil, toNominate == nil {
                // Regular nomination (§8.1.1): repeat the check with USE-CANDIDATE.
                toNominate = index
            }
        }
    }

    private mutating func select(_ index: Int, now: Instant) {
        guard selected != index, state != .consentExpired else { return }
        selected = index
        toNominate = nil
        if state != .connected {
            state = .connected
            lastConsent = now
            nextConsent = now + jitteredConsentInterval()
        }
        events.append(.connected(local: pairs[index].local, remote: pairs[index].remote))
    }

    private mutating func jitteredConsentInterval() -> Duration {
        // RFC 7675 §5.1: uniformly between 0.8 and 1.2 times the interval.
        let permille = 800 + Int64(rng.next() % 401)
        return .nanoseconds(configuration.consentInterval.nanoseconds / 1000 * permille)
    }

    // MARK: Timers

    public mutating func handleTimeout(now: Instant) {
        lastNow = now
        // Retransmissions and transaction timeouts (RFC 8489 §6.2.1).
        let due = transactions.filter { $0.value.deadline <= now }
        for (id, var tx) in due {
            if tx.transmissions < configuration.maxTransmissions, case .check = tx.kind {
                tx.transmissions += 1
                tx.rto = min(tx.rto * 2, configuration.maxRTO)
                tx.deadline = now + tx.rto
                transmits.append(tx.transmit)
                transactions[id] = tx
            } else {
                transactions[id] = nil
                if case .check(let index, let useCandidate) = tx.kind {
                    if useCandidate { nominating = nil }
                    if pairs[index].state == .inProgress { pairs[index].state = .failed }
                    if useCandidate, selected == nil {
                        // A lost nomination: a successful pair is still worth nominating again.
                        if pairs[index].state == .succeeded { toNominate = index }
                    }
                }
            }
        }

        // Consent freshness (RFC 7675 §5.1).
        if state == .connected, let selected {
            if now - lastConsent >= configuration.consentTimeout {
                state = .consentExpired
                events.append(.consentExpired)
                transactions.removeAll()
                return
            }
            if now >= nextConsent {
                nextConsent = now + jitteredConsentInterval()
                send(pair: selected, kind: .consent(pair: selected), useCandidate: false, now: now, transmissions: configuration.maxTransmissions)
            }
        }

        // One paced check per Ta (RFC 8445 §6.1.4.2).
        if state == .checking || state == .connected, auth.remote != nil,
           lastCheckSent.map({ now >= $0 + configuration.pacing }) ?? true,
           let (index, useCandidate) = nextCheck() {
            if !useCandidate { pairs[index].state = .inProgress }
            send(pair: index, kind: .check(pair: index, useCandidate: useCandidate), useCandidate: useCandidate, now: now, transmissions: 1)
            lastCheckSent = now
        }

        // Every pair failed and nothing is pending: ICE has failed (§8.1.2).
        if state == .checking, !pairs.isEmpty, nominating == nil, toNominate == nil,
           pairs.allSatisfy({ $0.state == .failed }) {
            state = .failed
            events.append(.failed)
        }
    }

    /// The next check to send: a nomination, then triggered checks, then the
    /// highest-priority Waiting pair.
    private mutating func nextCheck() -> (Int, Bool)? {
        if isControlling, let n = toNominate, selected == nil {
            toNominate = nil
            nominating = n
            return (n, true)
        }
        while !triggered.isEmpty {
            let i = triggered.removeFirst()
            if pairs[i].state == .waiting { return (i, false) }
        }
        guard state == .checking else { return nil }
        var best: Int?
        for i in pairs.indices where pairs[i].state == .waiting {
            if best.map({ pairPriority(pairs[i]) > pairPriority(pairs[$0]) }) ?? true { best = i }
        }
        return best.map { ($0, false) }
    }

    private var hasCheckWork: Bool {
        guard auth.remote != nil else { return false }
        if isControlling, toNominate != nil, selected == nil { return true }
        if triggered.contains(where: { pairs[$0].state == .waiting }) { return true }
        return state == .checking && pairs.contains { $0.state == .waiting }
    }

    private mutating func send(pair index: Int, kind: TransactionKind, useCandidate: Bool, now: Instant, transmissions: Int) {
        guard let username = auth.outgoingUsername, let key = auth.remoteKey else { return }
        let pair = pairs[index]
        let tid = STUNTransactionID.random(using: &rng)
        // PRIORITY carries the priority a peer-reflexive candidate learned
        // from this check would have (§7.1.1).
        let localIndex = localCandidates.firstIndex(of: pair.local) ?? 0
        var attrs: [STUNAttribute] = [
            .username(username),
            .priority(localPriority(localIndex, type: .peerReflexive)),
            isControlling ? .iceControlling(tieBreaker: tieBreaker) : .iceControlled(tieBreaker: tieBreaker),
        ]
        if useCandidate { attrs.append(.useCandidate) }
        let message = STUNMessage(type: .bindingRequest, transactionID: tid, attributes: attrs)
        guard let bytes = try? message.encoded(integrity: key, fingerprint: true) else { return }
        let transmit = Transmit(source: pair.local, destination: pair.remote, payload: bytes)
        transmits.append(transmit)
        // Consent checks are not retransmitted: a new one goes out every few
        // seconds, and only the 30 s silence matters (RFC 7675 §5.1).
        let rto = kind.isConsent ? configuration.consentTimeout : configuration.initialRTO
        transactions[tid] = Transaction(kind: kind, transmit: transmit, transmissions: transmissions, rto: rto,
                                        deadline: now + rto, controllingWhenSent: isControlling)
    }

    /// The earliest time `handleTimeout` has work.
    public func pollTimeout() -> Instant? {
        var earliest: Instant?
        func consider(_ t: Instant) { if earliest.map({ t < $0 }) ?? true { earliest = t } }
        for tx in transactions.values { consider(tx.deadline) }
        if (state == .checking || state == .connected), hasCheckWork {
            consider(lastCheckSent.map { max($0 + configuration.pacing, lastNow) } ?? lastNow)
        }
        if state == .checking, !pairs.isEmpty, pairs.allSatisfy({ $0.state == .failed }) { consider(lastNow) }
        if state == .connected {
            consider(nextConsent)
            consider(lastConsent + configuration.consentTimeout)
        }
        return earliest
    }

    public mutating func pollTransmit() -> Transmit? {
        transmits.isEmpty ? nil : transmits.removeFirst()
    }

    public mutating func pollEvent() -> ICEEvent? {
        events.isEmpty ? nil : events.removeFirst()
    }
}

extension ICEAgent.TransactionKind {
    var isConsent: Bool { if case .consent = self { return true } else { return false } }
}
