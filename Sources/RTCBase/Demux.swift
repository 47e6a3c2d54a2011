/// What a datagram on the shared media port is, by its first byte
/// (RFC 7983 §7, as updated by RFC 9443 for TURN channels).
public enum PacketKind: Sendable, Equatable {
    case stun
    case zrtp
    case dtls
    case turnChannel
    case rtp
    case rtcp
    case unknown

    public static func classify(_ packet: UnsafeRawBufferPointer) -> PacketKind {
        guard let first = packet.first else { return .unknown }
        switch first {
        case 0...3: return .stun
        case 16...19: return .zrtp
        case 20...63: return .dtls
        case 64...79: return .turnChannel
        case 128...191:
            // RTCP packet types 192–223 sit where RTP's marker bit and payload
            // type are (RFC 5761 §4): payload types 64–95 are not used for RTP.
            guard packet.count >= 2 else { return .unknown }
            return (192...223).contains(packet[1]) ? .rtcp : .rtp
        default: return .unknown
        }
    }

    public static func classify(_ bytes: [UInt8]) -> PacketKind {
        bytes.withUnsafeBytes { classify($0) }
    }
}
