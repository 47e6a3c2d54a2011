/// An SRTP protection profile: the cipher, the tag and the key sizes that both
/// ends agreed on (SDES crypto suite or DTLS-SRTP `use_srtp` profile).
public enum SRTPProfile: Sendable, Hashable, CaseIterable {
    /// AES-128 counter mode with an 80-bit HMAC-SHA1 tag (RFC 3711 §5, the
    /// mandatory-to-implement profile of RFC 5764 §4.1.2).
    case aes128CMHMACSHA1_80
    /// As above with a 32-bit tag on SRTP. SRTCP keeps the 80-bit tag
    /// (RFC 5764 §4.1.2: "SRTCP auth tag length 80 bits" for both).
    case aes128CMHMACSHA1_32
    /// AES-128 in Galois/Counter Mode, 16-octet tag (RFC 7714 §14.2).
    case aeadAES128GCM

    /// Length of the master key in octets.
    public var masterKeyLength: Int { 16 }

    /// Length of the master salt in octets: 112 bits for AES-CM (RFC 3711
    /// §8.2), 96 bits for AES-GCM (RFC 7714 §14.2).
    public var masterSaltLength: Int {
        switch self {
        case .aes128CMHMACSHA1_80, .aes128CMHMACSHA1_32: 14
        case .aeadAES128GCM: 12
        }
    }

    /// Octets `protectRTP` appends: the authentication tag (no MKI).
    public var rtpOverhead: Int {
        switch self {
        case .aes128CMHMACSHA1_80: 10
        case .aes128CMHMACSHA1_32: 4
        case .aeadAES128GCM: 16
        }
    }

    /// Octets `protectRTCP` appends: the tag plus the 4-octet E‖SRTCP index
    /// word (RFC 3711 §3.4, RFC 7714 §9).
    public var rtcpOverhead: Int { rtcpTagLength + 4 }

    /// Largest overhead of either kind; size send buffers with this.
    public var maxOverhead: Int { max(rtpOverhead, rtcpOverhead) }

    var rtpTagLength: Int { rtpOverhead }

    var rtcpTagLength: Int {
        switch self {
        case .aes128CMHMACSHA1_80, .aes128CMHMACSHA1_32: 10
        case .aeadAES128GCM: 16
        }
    }

    var isAEAD: Bool { self == .aeadAES128GCM }

    /// The DTLS-SRTP protection profile number (RFC 5764 §4.1.2, RFC 7714 §14.2).
    public var dtlsProfileID: UInt16 {
        switch self {
        case .aes128CMHMACSHA1_80: 0x0001
        case .aes128CMHMACSHA1_32: 0x0002
        case .aeadAES128GCM: 0x0007
        }
    }

    public init?(dtlsProfileID: UInt16) {
        switch dtlsProfileID {
        case 0x0001: self = .aes128CMHMACSHA1_80
        case 0x0002: self = .aes128CMHMACSHA1_32
        case 0x0007: self = .aeadAES128GCM
        default: return nil
        }
    }

    /// The profile's name as OpenSSL's `SSL_set_tlsext_use_srtp` spells it.
    public var openSSLName: String {
        switch self {
        case .aes128CMHMACSHA1_80: "SRTP_AES128_CM_SHA1_80"
        case .aes128CMHMACSHA1_32: "SRTP_AES128_CM_SHA1_32"
        case .aeadAES128GCM: "SRTP_AEAD_AES_128_GCM"
        }
    }
}

/// A master key and master salt: what one direction of an SRTP session is
/// keyed with.
public struct SRTPMasterKey: Sendable, Hashable {
    public var key: [UInt8]
    public var salt: [UInt8]

    public init(key: [UInt8], salt: [UInt8]) {
        self.key = key
        self.salt = salt
    }

    /// Splits the keying material exported by DTLS-SRTP (RFC 5764 §4.2:
    /// client key ‖ server key ‖ client salt ‖ server salt, exporter label
    /// "EXTRACTOR-dtls_srtp") into the client's and the server's write keys.
    /// The length to export is `2 * (masterKeyLength + masterSaltLength)`.
    public static func splitDTLSExport(
        _ material: [UInt8], profile: SRTPProfile
    ) throws(SRTPError) -> (client: SRTPMasterKey, server: SRTPMasterKey) {
        let k = profile.masterKeyLength
        let s = profile.masterSaltLength
        guard material.count == 2 * (k + s) else { throw .invalidKeyLength }
        let client = SRTPMasterKey(
            key: Array(material[0..<k]), salt: Array(material[(2 * k)..<(2 * k + s)]))
        let server = SRTPMasterKey(
            key: Array(material[k..<(2 * k)]), salt: Array(material[(2 * k + s)..<(2 * k + 2 * s)]))
        return (client, server)
    }
}
