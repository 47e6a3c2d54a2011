/// Why a packet could not be protected or unprotected. Every failure leaves
/// the context's state (rollover counters, replay windows) as it was.
public enum SRTPError: Error, Sendable, Hashable {
    /// Master key or salt length does not match the profile.
    case invalidKeyLength
    /// Shorter than an RTP/RTCP header plus the trailer, or `length` is
    /// outside the buffer.
    case packetTooShort
    /// Not RTP/RTCP version 2, or the CSRC list / header extension runs past
    /// the end of the packet.
    case malformedHeader
    /// The buffer has no room for the tag (and SRTCP index) after `length`.
    case bufferTooSmall
    /// The tag did not verify (wrong key, tampering, or a wrong ROC guess).
    case authenticationFailed
    /// This packet index was already received (RFC 3711 §3.3.2).
    case replayed
    /// The packet index is behind the replay window.
    case tooOld
    /// The 48-bit SRTP or 31-bit SRTCP index space is used up: rekey.
    case indexExhausted
    /// libcrypto reported an error (should not happen with valid keys).
    case cryptoFailure
}
