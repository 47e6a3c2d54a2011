import RTCBase

/// Which side of the DTLS handshake we play. In WebRTC this follows the SDP
/// `a=setup` attribute (RFC 8842 §5.2, RFC 5763 §5): `active` is the DTLS
/// client, `passive` the server.
public enum DTLSRole: Sendable, Hashable {
    case client
    case server
}

/// The SRTP protection profiles Parley negotiates through `use_srtp`
/// (RFC 5764 §4.1.2, RFC 7714 §14.2).
public enum DTLSSRTPProfile: Sendable, Hashable, CaseIterable {
    /// SRTP_AES128_CM_HMAC_SHA1_80, profile id 0x0001 (RFC 5764 §4.1.2).
    case aes128CmHmacSha1_80
    /// SRTP_AEAD_AES_128_GCM, profile id 0x0007 (RFC 7714 §14.2).
    case aeadAes128Gcm

    /// The two-byte profile identifier carried in the `use_srtp` extension.
    public var id: UInt16 {
        switch self {
        case .aes128CmHmacSha1_80: 0x0001
        case .aeadAes128Gcm: 0x0007
        }
    }

    public init?(id: UInt16) {
        switch id {
        case 0x0001: self = .aes128CmHmacSha1_80
        case 0x0007: self = .aeadAes128Gcm
        default: return nil
        }
    }

    /// Master key length in bytes: both profiles use AES-128.
    public var masterKeyLength: Int { 16 }

    /// Master salt length: 112 bits for AES_CM (RFC 3711 §8.2),
    /// 96 bits for AEAD_AES_128_GCM (RFC 7714 §12).
    public var masterSaltLength: Int {
        switch self {
        case .aes128CmHmacSha1_80: 14
        case .aeadAes128Gcm: 12
        }
    }

    /// The name OpenSSL's `SSL_CTX_set_tlsext_use_srtp` understands.
    var openSSLName: String {
        switch self {
        case .aes128CmHmacSha1_80: "SRTP_AES128_CM_SHA1_80"
        case .aeadAes128Gcm: "SRTP_AEAD_AES_128_GCM"
        }
    }
}

/// SRTP master keys and salts exported from the handshake (RFC 5764 §4.2),
/// already assigned to directions: `local*` protects what we send,
/// `remote*` unprotects what the peer sends.
public struct DTLSSRTPKeys: Sendable, Equatable {
    public var profile: DTLSSRTPProfile
    public var localMasterKey: [UInt8]
    public var localMasterSalt: [UInt8]
    public var remoteMasterKey: [UInt8]
    public var remoteMasterSalt: [UInt8]

    public init(
        profile: DTLSSRTPProfile,
        localMasterKey: [UInt8], localMasterSalt: [UInt8],
        remoteMasterKey: [UInt8], remoteMasterSalt: [UInt8]
    ) {
        self.profile = profile
        self.localMasterKey = localMasterKey
        self.localMasterSalt = localMasterSalt
        self.remoteMasterKey = remoteMasterKey
        self.remoteMasterSalt = remoteMasterSalt
    }
}

/// Why a DTLS connection failed. Small on purpose: callers tear the
/// transport down on any of them; the string is captured once, at failure.
public enum DTLSError: Error, Sendable, Equatable {
    /// OpenSSL aborted the handshake (or the connection); the OpenSSL
    /// error string, or the alert the peer sent, explains why.
    case handshakeFailed(reason: String)
    /// A fatal error after the handshake (a fatal alert from the peer, a
    /// record OpenSSL could not process); the reason as for `handshakeFailed`.
    case connectionFailed(reason: String)
    /// The handshake completed but no SRTP profile was agreed
    /// (the peer ignored or rejected every profile we offered).
    case srtpNegotiationFailed
    /// The peer presented no certificate (RFC 5763 §5 requires one both ways).
    case peerCertificateMissing
    /// The peer's certificate does not hash to the SDP `a=fingerprint`
    /// (RFC 8122 §5): keys are never emitted.
    case fingerprintMismatch
    /// No answer after the last retransmission (RFC 6347 §4.2.4).
    case handshakeTimeout
    /// Text or bytes that do not form a valid value (a fingerprint, a
    /// certificate request) or an operation in the wrong state.
    case invalidInput
    /// OpenSSL could not create a key, certificate or context.
    case certificateGenerationFailed
    /// `send(applicationData:)` before the connection is up, or after it ended.
    case notConnected
}

/// What the connection tells its owner, drained with `pollEvent()`.
public enum DTLSEvent: Sendable, Equatable {
    /// Handshake complete and the peer's fingerprint verified: SRTP can start.
    case connected(DTLSSRTPKeys)
    /// Application data (e.g. SCTP for data channels) from the peer.
    case applicationData([UInt8])
    /// The peer sent close_notify (RFC 5246 §7.2.1).
    case closed
    /// The connection is dead; no further events follow.
    case failed(DTLSError)
}

/// Tunables. The defaults follow RFC 6347 §4.2.4.1 and WebRTC practice.
public struct DTLSConfiguration: Sendable {
    /// Offered (client) or preferred (server) SRTP profiles, most preferred
    /// first. GCM first: it is cheaper per packet and has a shorter tag.
    public var srtpProfiles: [DTLSSRTPProfile]
    /// First retransmission timeout (RFC 6347 §4.2.4.1: 1 s).
    public var initialRetransmitTimeout: Duration
    /// The timeout doubles up to this ceiling (RFC 6347 §4.2.4.1: 60 s).
    public var maximumRetransmitTimeout: Duration
    /// How many times one flight is retransmitted before giving up. At most
    /// 10: OpenSSL fails a flight on its own after 12 timeouts.
    public var maximumRetransmissions: Int

    public init(
        srtpProfiles: [DTLSSRTPProfile] = [.aeadAes128Gcm, .aes128CmHmacSha1_80],
        initialRetransmitTimeout: Duration = .seconds(1),
        maximumRetransmitTimeout: Duration = .seconds(60),
        maximumRetransmissions: Int = 6
    ) {
        self.srtpProfiles = srtpProfiles
        self.initialRetransmitTimeout = initialRetransmitTimeout
        self.maximumRetransmitTimeout = maximumRetransmitTimeout
        self.maximumRetransmissions = maximumRetransmissions
    }
}
