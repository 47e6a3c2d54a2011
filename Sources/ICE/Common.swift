import RTCBase
import STUN

/// A username fragment and password (RFC 8445 §5.3, RFC 8839 §5.4).
public struct ICECredentials: Hashable, Sendable {
    public var ufrag: String
    public var password: String
    public init(ufrag: String, password: String) {
        self.ufrag = ufrag
        self.password = password
    }

    /// Fresh credentials from `generator`: a 4+ character ufrag and a 22+
    /// character password of ice-chars, i.e. at least 24 and 128 random bits
    /// (RFC 8445 §5.3).
    public static func random(using generator: inout some RandomNumberGenerator) -> ICECredentials {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
        func token(_ n: Int) -> String {
            String((0..<n).map { _ in alphabet[Int(generator.next() % 64)] })
        }
        return ICECredentials(ufrag: token(8), password: token(24))
    }
}

/// What an agent reports to its owner.
public enum ICEEvent: Hashable, Sendable {
    /// Lite agent: the peer nominated this address (again or a new one);
    /// media goes there from now on.
    case selectedPair(remote: TransportAddress)
    /// Full agent: a pair was nominated and answered; media may flow.
    case connected(local: TransportAddress, remote: TransportAddress)
    /// Every candidate pair failed (full agent).
    case failed
    /// No authenticated check/response for the consent timeout
    /// (RFC 7675 §5.1): stop sending media to the peer.
    case consentExpired
    /// The agent changed role after a role conflict (RFC 8445 §7.3.1.1).
    case roleChanged(controlling: Bool)
}

/// Result of authenticating a Binding request addressed to us
/// (RFC 8445 §7.3, RFC 8489 §9.1.3).
enum CheckValidation {
    /// Authenticated; respond with success.
    case accepted
    /// Respond with this error.
    case reject(STUNErrorCode, unknown: [UInt16])
    /// Not for us or not trustworthy enough to answer: drop silently.
    case discard
}

/// Per-agent credential material, precomputed once so checking a request
/// allocates nothing.
struct ICEAuth {
    let local: ICECredentials
    let localKey: STUNIntegrityKey
    /// "localUfrag:" as bytes; with the remote ufrag when known.
    let expectedUsernamePrefix: [UInt8]
    var expectedUsername: [UInt8]?
    var remote: ICECredentials?
    var remoteKey: STUNIntegrityKey?

    init(local: ICECredentials, remote: ICECredentials?) {
        self.local = local
        localKey = STUNIntegrityKey(shortTermPassword: local.password)
        expectedUsernamePrefix = Array((local.ufrag + ":").utf8)
        setRemote(remote)
    }

    mutating func setRemote(_ remote: ICECredentials?) {
        self.remote = remote
        remoteKey = remote.map { STUNIntegrityKey(shortTermPassword: $0.password) }
        expectedUsername = remote.map { Array((local.ufrag + ":" + $0.ufrag).utf8) }
    }

    /// USERNAME for our outgoing checks: "remoteUfrag:localUfrag" (RFC 8445 §7.2.2).
    var outgoingUsername: String? { remote.map { $0.ufrag + ":" + local.ufrag } }

    /// Checks a request per RFC 8489 §9.1.3 (short-term credentials) and
    /// RFC 8445 §7.3: FINGERPRINT must be present and valid (else discard),
    /// USERNAME and MESSAGE-INTEGRITY present (else 400), USERNAME must be
    /// "localUfrag:remoteUfrag" and the MAC must verify with our password
    /// (else 401), unknown comprehension-required attributes give 420.
    func validate(_ view: STUNMessageView) -> CheckValidation {
        guard (try? view.verifyFingerprint()) != nil else { return .discard }
        guard let username = view.usernameBytes, view.messageIntegrityOffset != nil else {
            return .reject(.badRequest, unknown: [])
        }
        let usernameOK: Bool
        if let expectedUsername {
            usernameOK = expectedUsername.withUnsafeBytes { equal(username, $0) }
        } else {
            // Remote credentials not known yet (checks can race the answer):
            // accept any remote ufrag after ours.
            usernameOK = expectedUsernamePrefix.withUnsafeBytes { p in
                username.count > p.count && equal(UnsafeRawBufferPointer(rebasing: username[0..<p.count]), p)
            }
        }
        guard usernameOK, (try? view.verifyMessageIntegrity(key: localKey)) != nil else {
            return .reject(.unauthorized, unknown: [])
        }
        let unknown = view.unknownComprehensionRequired()
        if !unknown.isEmpty { return .reject(.unknownAttribute, unknown: unknown) }
        // PRIORITY is mandatory in checks (RFC 8445 §7.1.1).
        guard view.priority != nil else { return .reject(.badRequest, unknown: []) }
        return .accepted
    }
}

@inline(__always)
func equal(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
    guard a.count == b.count else { return false }
    for i in 0..<a.count where a[i] != b[i] { return false }
    return true
}

/// Writes a Binding success response (XOR-MAPPED-ADDRESS, MESSAGE-INTEGRITY
/// with our password, FINGERPRINT; RFC 8445 §7.3.1.2) into `buffer`.
/// Returns the byte count.
func writeBindingSuccess(into buffer: UnsafeMutableRawBufferPointer, transactionID: STUNTransactionID,
                         mapped: TransportAddress, key: STUNIntegrityKey) throws(STUNError) -> Int {
    var w = try STUNMessageWriter(into: buffer, type: .bindingSuccess, transactionID: transactionID)
    try w.appendAddress(.xorMappedAddress, mapped)
    try w.appendMessageIntegrity(key: key)
    try w.appendFingerprint()
    return w.count
}

/// An error response. 400 and 420 carry no MESSAGE-INTEGRITY when the request
/// did not authenticate (RFC 8489 §6.3.4, §9.1.3); 487 does.
func bindingError(transactionID: STUNTransactionID, error: STUNErrorCode, unknown: [UInt16],
                  key: STUNIntegrityKey?) -> [UInt8] {
    var attrs: [STUNAttribute] = [.errorCode(error)]
    if !unknown.isEmpty { attrs.append(.unknownAttributes(unknown)) }
    let m = STUNMessage(type: .bindingError, transactionID: transactionID, attributes: attrs)
    return (try? m.encoded(integrity: key, fingerprint: true)) ?? []
}

/// Runs a writer over a fresh `capacity`-byte array and trims it to what was written.
func makeBytes(capacity: Int, _ body: (UnsafeMutableRawBufferPointer) throws(STUNError) -> Int) -> [UInt8]? {
    var out = [UInt8](repeating: 0, count: capacity)
    let n = out.withUnsafeMutableBytes { p -> Int? in
        do throws(STUNError) { return try body(p) } catch { return nil }
    }
    guard let n else { return nil }
    out.removeSubrange(n...)
    return out
}
