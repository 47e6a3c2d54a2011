extension SessionDescription {
    /// The SDP text, lines ending in CRLF (RFC 8866 §5), in the order RFC 8866
    /// §5 gives: v o s i u e p c b t r z k, unknown line types, then a=;
    /// per media: m i c b k, unknown line types, then a=.
    public func serialized() -> String {
        var out = ""
        out.reserveCapacity(4096)
        func line(_ type: String, _ value: String) {
            out += type
            out += "="
            out += value
            out += "\r\n"
        }
        func attributes(_ list: [SDPAttribute]) {
            for a in list {
                out += "a="
                out += a.name
                if let v = a.value {
                    out += ":"
                    out += v
                }
                out += "\r\n"
            }
        }
        func others(_ list: [SDPLine]) {
            for l in list { line(String(decoding: CollectionOfOne(l.type), as: UTF8.self), l.value) }
        }
        func connectionLine(_ c: ConnectionData) { line("c", c.networkType + " " + c.addressType + " " + c.address) }

        line("v", String(version))
        line("o", "\(origin.username) \(origin.sessionID) \(origin.sessionVersion) \(origin.networkType) \(origin.addressType) \(origin.address)")
        line("s", sessionName)
        if let information { line("i", information) }
        if let uri { line("u", uri) }
        for e in emails { line("e", e) }
        for p in phones { line("p", p) }
        if let connection { connectionLine(connection) }
        for b in bandwidths { line("b", b.type + ":" + String(b.value)) }
        for t in timings {
            line("t", "\(t.start) \(t.stop)")
            for r in t.repeats { line("r", r) }
        }
        if let timeZones { line("z", timeZones) }
        if let encryptionKey { line("k", encryptionKey) }
        others(otherLines)
        attributes(self.attributes)

        for m in media {
            var ml = m.kind.rawValue + " " + String(m.port)
            if let count = m.portCount { ml += "/" + String(count) }
            ml += " " + m.proto
            for f in m.formats { ml += " " + f }
            line("m", ml)
            if let i = m.information { line("i", i) }
            if let c = m.connection { connectionLine(c) }
            for b in m.bandwidths { line("b", b.type + ":" + String(b.value)) }
            if let k = m.encryptionKey { line("k", k) }
            others(m.otherLines)
            attributes(m.attributes)
        }
        return out
    }
}

extension SessionDescription: CustomStringConvertible {
    public var description: String { serialized() }
}
