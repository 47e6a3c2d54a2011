/// Why an RTP packet could not be parsed, rewritten or built.
public enum RTPError: Error, Sendable, Equatable {
    /// Shorter than the fixed header, CSRC list or extension block claims.
    case truncated
    /// The version field is not 2 (RFC 3550 §5.1).
    case badVersion(UInt8)
    /// P bit set but the pad count is zero or reaches into the header (RFC 3550 §5.1).
    case badPadding
    /// An RFC 8285 element overruns the extension block.
    case malformedExtension
    /// No element with that id, or the packet has no extension block.
    case extensionNotFound
    /// In-place rewrite asked for a value of a different length than the element holds.
    case extensionLengthMismatch
    /// The builder was given an element the chosen form cannot carry
    /// (one-byte: id 1–14, 1–16 bytes; two-byte: id 1–255, 0–255 bytes), or
    /// a generic extension whose data is not a whole number of words.
    case invalidExtension
    /// More than 15 CSRCs.
    case tooManyCSRCs
    /// The caller's buffer is too small for what is being written.
    case bufferTooSmall
}
