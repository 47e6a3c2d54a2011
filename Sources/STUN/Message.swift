import RTCBase

/// An owned STUN message: type, transaction id and decoded attributes.
/// Convenient for everything off the hot path (TURN control, clients, tests);
/// the hot path uses `STUNMessageView` and `STUNMessageWriter`.
public struct STUNMessage: Hashable, Sendable {
    public var type: STUNMessageType
    public var transactionID: STUNTransactionID
    public var attributes: [STUNAttribute]

    public init(type: STUNMessageType, transactionID: STUNTransactionID, attributes: [STUNAttribute] = []) {
        self.type = type
        self.transactionID = transactionID
        self.attributes = attributes
    }

    /// Decodes every counted attribute of a validated view (attributes after
    /// MESSAGE-INTEGRITY are dropped per RFC 8489 §14.5). Integrity and
    /// fingerprint are not checked here: use the view's verify methods.
    public init(_ view: STUNMessageView) throws(STUNError) {
        type = view.type
        transactionID = view.transactionID
        var attrs = [STUNAttribute]()
        for raw in view.attributes { attrs.append(try raw.decode(transactionID: view.transactionID)) }
        attributes = attrs
    }

    public init(parsing bytes: UnsafeRawBufferPointer) throws(STUNError) {
        try self.init(STUNMessageView(bytes))
    }

    public init(parsing bytes: [UInt8]) throws(STUNError) {
        let result = bytes.withUnsafeBytes { (p) -> Result<STUNMessage, STUNError> in
            do throws(STUNError) { return .success(try STUNMessage(parsing: p)) } catch { return .failure(error) }
        }
        self = try result.get()
    }

    public func first(_ type: STUNAttributeType) -> STUNAttribute? {
        attributes.first { $0.type == type }
    }

    // Common lookups.
    public var username: String? { if case .username(let s)? = first(.username) { return s }; return nil }
    public var realm: String? { if case .realm(let s)? = first(.realm) { return s }; return nil }
    public var nonce: String? { if case .nonce(let s)? = first(.nonce) { return s }; return nil }
    public var errorCode: STUNErrorCode? { if case .errorCode(let e)? = first(.errorCode) { return e }; return nil }
    public var xorMappedAddress: TransportAddress? {
        if case .xorMappedAddress(let a)? = first(.xorMappedAddress) { return a }; return nil
    }

    /// Serializes the message.
    ///
    /// - `integrity`: if given, MESSAGE-INTEGRITY is computed with this key,
    ///   at the position of a `.messageIntegrity` placeholder in `attributes`
    ///   or else after the other attributes. Without a key a
    ///   `.messageIntegrity` value is written as stored.
    /// - `integritySHA256`: likewise for MESSAGE-INTEGRITY-SHA256.
    /// - `fingerprint`: computes FINGERPRINT (replacing a stored one, or
    ///   appended last).
    /// - `padding`: the byte used to pad values.
    public func encoded(integrity: STUNIntegrityKey? = nil, integritySHA256: STUNIntegrityKey? = nil,
                        fingerprint: Bool = false, padding: UInt8 = 0) throws(STUNError) -> [UInt8] {
        var size = stunHeaderSize + attributes.reduce(0) { $0 + $1.encodedSize }
        size += 24 + 36 + 8  // room for anything appended
        var out = [UInt8](repeating: 0, count: size)
        let result = out.withUnsafeMutableBytes { (buffer) -> Result<Int, STUNError> in
            do throws(STUNError) {
                var w = try STUNMessageWriter(into: buffer, type: type, transactionID: transactionID)
                w.padding = padding
                var wroteMI = false, wroteMI256 = false, wroteFP = false
                for a in attributes {
                    switch a {
                    case .messageIntegrity where integrity != nil:
                        if let integrity { try w.appendMessageIntegrity(key: integrity) }
                        wroteMI = true
                    case .messageIntegritySHA256(let v) where integritySHA256 != nil:
                        if let integritySHA256 {
                            try w.appendMessageIntegritySHA256(key: integritySHA256, length: (16...32).contains(v.count) ? v.count / 4 * 4 : 32)
                        }
                        wroteMI256 = true
                    case .fingerprint where fingerprint:
                        try w.appendFingerprint()
                        wroteFP = true
                    default:
                        try w.append(a)
                    }
                }
                if let integrity, !wroteMI { try w.appendMessageIntegrity(key: integrity) }
                if let integritySHA256, !wroteMI256 { try w.appendMessageIntegritySHA256(key: integritySHA256) }
                if fingerprint, !wroteFP { try w.appendFingerprint() }
                return .success(w.count)
            } catch {
                return .failure(error)
            }
        }
        let count = try result.get()
        out.removeSubrange(count...)
        return out
    }
}
