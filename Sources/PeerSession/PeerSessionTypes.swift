import DTLS
import ICE
import RTCBase
import SRTP
import TURN

/// Which local candidates ICE may use (the `iceTransportPolicy` of
/// W3C WebRTC §4.2.1).
public enum PeerICETransportPolicy: Sendable, Hashable {
    /// Host candidates and relayed candidates alike.
    case all
    /// Only relayed candidates: every packet goes through a TURN server, so
    /// the peer never learns a host address.
    case relay
}

/// Which ICE role a transport plays (RFC 8445 §2.5, §6.1.1).
public enum PeerICERole: Sendable, Hashable {
    /// The SFU side: an ICE-lite agent that is always controlled, answers
    /// checks and follows the peer's nomination.
    case server
    /// A full agent in the controlling role with its own host candidates: it
    /// runs the checks and nominates.
    case client
}

/// Everything a transport needs up front. Remote parameters may be left
/// nil and supplied later with `setRemoteCredentials`, `setRemoteFingerprint`
/// and `addRemoteCandidate` as SDP (and trickled candidates) arrive.
public struct PeerSessionConfiguration: Sendable {
    public var iceRole: PeerICERole
    /// From the `a=setup` negotiation (RFC 8842 §5.2): `active` is the DTLS
    /// client, `passive` the DTLS server. Independent of the ICE role.
    public var dtlsRole: DTLSRole
    public var localCredentials: ICECredentials
    /// Host addresses the IO edge's sockets are bound to (client role only;
    /// an ICE-lite server advertises its candidates through SDP alone).
    public var localCandidates: [TransportAddress]
    public var certificate: DTLSCertificate
    public var remoteCredentials: ICECredentials?
    public var remoteFingerprint: DTLSFingerprint?
    public var remoteCandidates: [ICECandidate]
    /// Retransmission timers and SRTP profile preference (most preferred
    /// first) for the DTLS handshake.
    public var dtls: DTLSConfiguration
    /// Timers of the full agent (client role).
    public var ice: ICEAgent.Configuration
    /// Consent timeout of the lite agent (server role).
    public var iceLite: ICELiteAgent.Configuration
    /// Largest DTLS datagram; 1200 keeps handshake flights under common
    /// path MTUs including tunnels.
    public var mtu: Int
    /// SRTP replay window, in packets (RFC 3711 §3.3.2).
    public var replayWindowSize: Int
    /// TURN servers to allocate a relayed candidate on (client role). The
    /// transport reaches them from the first of `localCandidates` unless a
    /// server's `localAddress` says otherwise.
    public var turnServers: [TURNClientConfiguration]
    /// `.relay` keeps the host candidates out of ICE (they still carry the
    /// traffic to the TURN servers).
    public var iceTransportPolicy: PeerICETransportPolicy

    public init(
        iceRole: PeerICERole, dtlsRole: DTLSRole, localCredentials: ICECredentials,
        localCandidates: [TransportAddress] = [], certificate: DTLSCertificate,
        remoteCredentials: ICECredentials? = nil, remoteFingerprint: DTLSFingerprint? = nil,
        remoteCandidates: [ICECandidate] = [], dtls: DTLSConfiguration = DTLSConfiguration(),
        ice: ICEAgent.Configuration = ICEAgent.Configuration(),
        iceLite: ICELiteAgent.Configuration = ICELiteAgent.Configuration(),
        mtu: Int = 1200, replayWindowSize: Int = 1024,
        turnServers: [TURNClientConfiguration] = [], iceTransportPolicy: PeerICETransportPolicy = .all
    ) {
        self.iceRole = iceRole
        self.dtlsRole = dtlsRole
        self.localCredentials = localCredentials
        self.localCandidates = localCandidates
        self.certificate = certificate
        self.remoteCredentials = remoteCredentials
        self.remoteFingerprint = remoteFingerprint
        self.remoteCandidates = remoteCandidates
        self.dtls = dtls
        self.ice = ice
        self.iceLite = iceLite
        self.mtu = mtu
        self.replayWindowSize = replayWindowSize
        self.turnServers = turnServers
        self.iceTransportPolicy = iceTransportPolicy
    }

    /// SRTP profile preference, most preferred first (what DTLS offers or
    /// picks through `use_srtp`, RFC 5764 §4.1.2).
    public var srtpProfiles: [DTLSSRTPProfile] {
        get { dtls.srtpProfiles }
        set { dtls.srtpProfiles = newValue }
    }
}

/// Where the transport is in its life.
public enum PeerSessionState: Sendable, Hashable {
    /// ICE connectivity checks are running (or awaited, for the lite side);
    /// no pair is selected yet, though a DTLS server may already be answering.
    case checking
    /// ICE selected a pair; the DTLS handshake is running.
    case handshaking
    /// DTLS is done, SRTP is keyed and ICE selected a pair: media flows.
    case connected
    /// Consent expired or the peer closed DTLS.
    case disconnected
    case failed
    /// Closed locally with `close()`.
    case closed
}

public enum PeerDisconnectReason: Sendable, Hashable {
    /// No authenticated STUN traffic within the consent timeout (RFC 7675 §5.1).
    case consentExpired
    /// The peer sent DTLS close_notify (RFC 5246 §7.2.1).
    case closedByPeer
}

/// Why a transport failed, or why a send was refused.
public enum PeerSessionError: Error, Sendable, Equatable {
    /// Every candidate pair failed (RFC 8445 §8.1.2).
    case iceFailed
    /// The peer's certificate does not match the signalled `a=fingerprint`
    /// (RFC 8122 §5, RFC 5763 §5).
    case fingerprintMismatch
    /// The DTLS handshake or connection failed otherwise.
    case dtls(DTLSError)
    /// The negotiated DTLS-SRTP profile has no SRTP transform here.
    case unsupportedProfile
    /// SRTP keys are not ready, or the transport has ended.
    case notConnected
    /// Protecting a packet failed (malformed RTP/RTCP, buffer too small).
    case srtp(SRTPError)
    /// With the relay policy: every TURN allocation failed (the last error).
    case relayFailed(TURNClientError)
}

/// What a transport reports, drained with `pollEvent()`.
public enum PeerSessionEvent: Sendable, Equatable {
    /// ICE selected (or switched) the remote address media goes to.
    case iceConnected(remote: TransportAddress)
    /// DTLS finished and the fingerprint matched: SRTP is keyed.
    case connected(profile: SRTPProfile)
    /// A new local candidate (a relayed one, once its TURN allocation is
    /// granted): signal it to the peer (trickle ICE, RFC 8838).
    case localCandidate(ICECandidate)
    /// A decrypted RTP packet.
    case rtp([UInt8])
    /// A decrypted RTCP compound packet.
    case rtcp([UInt8])
    case disconnected(PeerDisconnectReason)
    case failed(PeerSessionError)
}

/// Running totals for monitoring; never reset.
public struct PeerSessionCounters: Sendable, Hashable {
    /// Datagrams that are no known protocol (RFC 7983 demux), not STUN
    /// though shaped like it, or RTP/RTCP too short or malformed to unprotect.
    public var malformedDatagrams = 0
    /// DTLS or SRTP datagrams from an address ICE has not validated.
    public var unvalidatedSourceDrops = 0
    /// SRTP/SRTCP packets before keys existed.
    public var mediaBeforeKeys = 0
    /// SRTP/SRTCP tags that did not verify.
    public var srtpAuthFailures = 0
    /// Replayed or too-old packets (RFC 3711 §3.3.2).
    public var srtpReplays = 0
    public var rtpPacketsIn = 0
    public var rtcpPacketsIn = 0
    public var rtpPacketsOut = 0
    public var rtcpPacketsOut = 0
    /// Every datagram byte received / handed out for sending.
    public var bytesIn = 0
    public var bytesOut = 0

    public init() {}
}

extension SRTPProfile {
    init?(_ profile: DTLSSRTPProfile) {
        self.init(dtlsProfileID: profile.id)
    }
}
