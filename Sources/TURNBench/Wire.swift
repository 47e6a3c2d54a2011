import RTCBase
import STUN

/// Why a datagram is not a good answer to one of the bench's Binding requests.
public enum BindingCheckError: Error, Sendable, Equatable {
    /// Not a well-formed STUN message.
    case malformed(STUNError)
    /// A STUN message, but not a Binding success response.
    case notBindingSuccess(STUNMessageType)
    /// FINGERPRINT present but wrong (RFC 8489 §14.7).
    case badFingerprint
    /// No XOR-MAPPED-ADDRESS (RFC 8489 §7.3.1 requires one in a success response).
    case missingMappedAddress
    /// The server reflected an address other than the socket the request came from.
    case mappedAddressMismatch(TransportAddress)
}

/// Binding requests and their validation, allocation-free: the STUN load
/// writes one per response it receives, at a few hundred thousand a second.
public enum BindingProbe {
    /// Header + FINGERPRINT.
    public static let requestSize = stunHeaderSize + 8

    /// Writes a Binding request with FINGERPRINT (RFC 8489 §14.7: lets the
    /// server tell STUN from other traffic on a multiplexed port) into
    /// `buffer`; returns the number of bytes written.
    public static func writeRequest(transactionID: STUNTransactionID,
                                    into buffer: UnsafeMutableRawBufferPointer) throws(STUNError) -> Int {
        var w = try STUNMessageWriter(into: buffer, type: .bindingRequest, transactionID: transactionID)
        try w.appendFingerprint()
        return w.count
    }

    /// Checks that `packet` is a Binding success response whose
    /// XOR-MAPPED-ADDRESS is `mapped` (the sending socket's own address: on
    /// loopback there is no NAT, so anything else is a server bug); checks
    /// FINGERPRINT when the server added one. Returns the transaction id so
    /// the caller can match it against what is outstanding.
    public static func validateResponse(_ packet: UnsafeRawBufferPointer,
                                        mapped: TransportAddress) throws(BindingCheckError) -> STUNTransactionID {
        let view: STUNMessageView
        do { view = try STUNMessageView(packet) } catch { throw .malformed(error) }
        guard view.type == .bindingSuccess else { throw .notBindingSuccess(view.type) }
        if view.fingerprintOffset != nil {
            do { try view.verifyFingerprint() } catch { throw .badFingerprint }
        }
        guard let reflected = view.xorMappedAddress else { throw .missingMappedAddress }
        guard reflected == mapped else { throw .mappedAddressMismatch(reflected) }
        return view.transactionID
    }
}

/// Long-term credentials as a TURN client holds them after the first 401
/// (RFC 8489 §9.2.3): the server's realm and current nonce.
public struct LongTermCredentials: Sendable {
    public var username: String
    public var password: String
    public var realm: String
    public var nonce: String
    public let key: STUNIntegrityKey

    public init(username: String, password: String, realm: String, nonce: String) {
        self.username = username
        self.password = password
        self.realm = realm
        self.nonce = nonce
        self.key = STUNIntegrityKey(username: username, realm: realm, password: password)
    }
}

/// How a TURN server answered one control request.
public enum TURNReply: Sendable, Equatable {
    case success(STUNMessage)
    /// 401 with REALM and NONCE: retry with credentials (RFC 8656 §7.2).
    case challenge(realm: String, nonce: String)
    /// 438 with a fresh NONCE: retry with it (RFC 8489 §9.2.4).
    case staleNonce(nonce: String)
    case failure(STUNErrorCode)
}

/// Why a datagram is not an acceptable answer to a TURN control request.
public enum TURNReplyError: Error, Sendable, Equatable {
    case malformed(STUNError)
    /// Another transaction, or not a response to `method`.
    case unexpected(STUNMessageType)
    /// A success response whose MESSAGE-INTEGRITY does not check with our key.
    case badIntegrity
    /// An error response without ERROR-CODE, or a 401/438 without REALM/NONCE.
    case incomplete
}

/// The client half of the TURN control exchanges the bench needs
/// (RFC 8656 §7 Allocate, §9 CreatePermission, §12 ChannelBind, §8 Refresh),
/// built on `STUNMessage` since they happen once per client.
public enum TURNClientMessages {
    /// Allocate for a UDP relay (REQUESTED-TRANSPORT 17); without credentials
    /// it is the first request that draws the 401 challenge.
    public static func allocate(transactionID: STUNTransactionID, credentials: LongTermCredentials?) throws(STUNError) -> [UInt8] {
        try build(.allocate, transactionID, [.requestedTransport(protocolNumber: 17)], credentials)
    }

    public static func createPermission(transactionID: STUNTransactionID, peer: TransportAddress,
                                        credentials: LongTermCredentials) throws(STUNError) -> [UInt8] {
        try build(.createPermission, transactionID, [.xorPeerAddress(peer)], credentials)
    }

    public static func channelBind(transactionID: STUNTransactionID, channel: UInt16, peer: TransportAddress,
                                   credentials: LongTermCredentials) throws(STUNError) -> [UInt8] {
        try build(.channelBind, transactionID, [.channelNumber(channel), .xorPeerAddress(peer)], credentials)
    }

    /// Refresh with LIFETIME 0 deletes the allocation (RFC 8656 §8).
    public static func refresh(transactionID: STUNTransactionID, lifetime: UInt32,
                               credentials: LongTermCredentials) throws(STUNError) -> [UInt8] {
        try build(.refresh, transactionID, [.lifetime(seconds: lifetime)], credentials)
    }

    private static func build(_ method: STUNMethod, _ transactionID: STUNTransactionID, _ attributes: [STUNAttribute],
                              _ credentials: LongTermCredentials?) throws(STUNError) -> [UInt8] {
        var attrs = attributes
        if let c = credentials {
            // RFC 8489 §9.2.4: USERNAME, REALM and NONCE precede MESSAGE-INTEGRITY.
            attrs += [.username(c.username), .realm(c.realm), .nonce(c.nonce)]
        }
        let message = STUNMessage(type: STUNMessageType(method: method, messageClass: .request),
                                  transactionID: transactionID, attributes: attrs)
        return try message.encoded(integrity: credentials?.key, fingerprint: true)
    }

    /// Reads the answer to a `method` request with `transactionID`.
    /// Success responses are checked with `credentials`' key when given
    /// (RFC 8489 §9.2.5: a client discards responses that fail integrity).
    public static func parseReply(_ packet: [UInt8], method: STUNMethod, transactionID: STUNTransactionID,
                                  credentials: LongTermCredentials?) throws(TURNReplyError) -> TURNReply {
        let result = packet.withUnsafeBytes { (bytes) -> Result<TURNReply, TURNReplyError> in
            do throws(TURNReplyError) {
                return .success(try parseReply(bytes, method: method, transactionID: transactionID, credentials: credentials))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    public static func parseReply(_ packet: UnsafeRawBufferPointer, method: STUNMethod, transactionID: STUNTransactionID,
                                  credentials: LongTermCredentials?) throws(TURNReplyError) -> TURNReply {
        let view: STUNMessageView
        do { view = try STUNMessageView(packet) } catch { throw .malformed(error) }
        guard view.transactionID == transactionID, view.type.method == method,
              view.type.messageClass == .successResponse || view.type.messageClass == .errorResponse
        else { throw .unexpected(view.type) }
        if view.type.messageClass == .successResponse, let credentials {
            do { try view.verifyMessageIntegrity(key: credentials.key) } catch { throw .badIntegrity }
        }
        let message: STUNMessage
        do { message = try STUNMessage(view) } catch { throw .malformed(error) }
        if view.type.messageClass == .successResponse { return .success(message) }
        guard let error = message.errorCode else { throw .incomplete }
        switch error.code {
        case 401 where credentials == nil:
            guard let realm = message.realm, let nonce = message.nonce else { throw .incomplete }
            return .challenge(realm: realm, nonce: nonce)
        case 438:
            guard let nonce = message.nonce else { throw .incomplete }
            return .staleNonce(nonce: nonce)
        default:
            return .failure(error)
        }
    }
}

/// The client side of long-term credentials across retries (RFC 8489
/// §9.2.3-9.2.4): learns realm and nonce from a 401, a fresh nonce from a
/// 438. Shared by the bench's NIO and raw-socket TURN clients.
struct TURNCredentialRetry {
    let username: String
    let password: String
    private(set) var credentials: LongTermCredentials?
    static let attempts = 4

    init(username: String, password: String) {
        self.username = username
        self.password = password
    }

    /// The success message, or nil to retry with the updated credentials.
    mutating func handle(_ answer: [UInt8], method: STUNMethod, transactionID: STUNTransactionID) throws -> STUNMessage? {
        switch try TURNClientMessages.parseReply(answer, method: method, transactionID: transactionID, credentials: credentials) {
        case .success(let message):
            return message
        case .challenge(let realm, let nonce):
            credentials = LongTermCredentials(username: username, password: password, realm: realm, nonce: nonce)
        case .staleNonce(let nonce):
            guard credentials != nil else { throw TURNBenchError("\(method): 438 before any 401") }
            credentials?.nonce = nonce
        case .failure(let code):
            throw TURNBenchError("\(method) refused: \(code)")
        }
        return nil
    }

    func exhausted(_ method: STUNMethod) -> TURNBenchError {
        TURNBenchError("\(method): still challenged after \(TURNCredentialRetry.attempts) tries")
    }
}

/// ChannelData payloads carry a step number, the sending pair and a sequence
/// number so the receiver counts each message of the current step once.
public enum RelayPayload {
    /// Channel data header (4) + step (4) + pair (4) + sequence (8).
    public static let minimumSize = 20

    /// Writes a ChannelData message of `size` bytes of application data on
    /// `channel` into `buffer` (at least `size + 4` bytes).
    public static func write(channel: UInt16, size: Int, step: UInt32, pair: UInt32, sequence: UInt64,
                             into buffer: UnsafeMutableRawBufferPointer) -> Int {
        guard size >= minimumSize - 4, buffer.count >= size + 4 else { return 0 }
        buffer[0] = UInt8(channel >> 8)
        buffer[1] = UInt8(truncatingIfNeeded: channel)
        buffer[2] = UInt8(truncatingIfNeeded: size >> 8)
        buffer[3] = UInt8(truncatingIfNeeded: size)
        store(step, at: 4, in: buffer)
        store(pair, at: 8, in: buffer)
        store(UInt32(truncatingIfNeeded: sequence >> 32), at: 12, in: buffer)
        store(UInt32(truncatingIfNeeded: sequence), at: 16, in: buffer)
        return size + 4
    }

    /// The (channel, step, pair, sequence) of a ChannelData message, or nil
    /// when it is not one of ours (too short, not a channel number).
    public static func read(_ bytes: UnsafeRawBufferPointer) -> (channel: UInt16, step: UInt32, pair: UInt32, sequence: UInt64)? {
        guard bytes.count >= minimumSize, bytes[0] & 0xC0 == 0x40 else { return nil }
        let length = Int(bytes[2]) << 8 | Int(bytes[3])
        guard length + 4 <= bytes.count, length >= minimumSize - 4 else { return nil }
        let channel = UInt16(bytes[0]) << 8 | UInt16(bytes[1])
        let high = UInt64(load(12, bytes)) << 32
        return (channel, load(4, bytes), load(8, bytes), high | UInt64(load(16, bytes)))
    }

    @inline(__always)
    private static func store(_ v: UInt32, at i: Int, in b: UnsafeMutableRawBufferPointer) {
        b[i] = UInt8(v >> 24); b[i + 1] = UInt8(truncatingIfNeeded: v >> 16)
        b[i + 2] = UInt8(truncatingIfNeeded: v >> 8); b[i + 3] = UInt8(truncatingIfNeeded: v)
    }

    @inline(__always)
    private static func load(_ i: Int, _ b: UnsafeRawBufferPointer) -> UInt32 {
        UInt32(b[i]) << 24 | UInt32(b[i + 1]) << 16 | UInt32(b[i + 2]) << 8 | UInt32(b[i + 3])
    }
}
