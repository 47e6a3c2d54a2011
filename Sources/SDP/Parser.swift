import RTCBase

extension SessionDescription {
    /// Parses SDP text. Lines may end in CRLF or a bare LF (RFC 8866 §5 asks
    /// for CRLF but tells parsers to accept LF). Blank lines and line types RFC
    /// 8866 does not define are tolerated; the `m=` line and the attributes
    /// with a strict grammar (rtpmap, fmtp, extmap, fingerprint, ssrc,
    /// ssrc-group, rid, simulcast, setup, sctp-port, max-message-size) are not.
    public init(parsing text: String) throws(SDPParseError) {
        var copy = text
        let result: Result<SessionDescription, SDPParseError> = copy.withUTF8 { buf in
            do throws(SDPParseError) { return .success(try SDPParser.parse(buf)) } catch { return .failure(error) }
        }
        self = try result.get()
    }

    /// Parses SDP bytes, which must be UTF-8 (RFC 8866 §5 with `a=charset` unset;
    /// non-UTF-8 input is reported with the line it is on).
    public init(parsing bytes: some Collection<UInt8>) throws(SDPParseError) {
        let result: Result<SessionDescription, SDPParseError>? = bytes.withContiguousStorageIfAvailable { buf in
            do throws(SDPParseError) { return .success(try SDPParser.parse(buf)) } catch { return .failure(error) }
        }
        if let result {
            self = try result.get()
            return
        }
        let array = Array(bytes)
        let r: Result<SessionDescription, SDPParseError> = array.withUnsafeBufferPointer { buf in
            do throws(SDPParseError) { return .success(try SDPParser.parse(buf)) } catch { return .failure(error) }
        }
        self = try r.get()
    }
}

enum SDPParser {
    typealias Bytes = UnsafeBufferPointer<UInt8>

    /// Parses a whole description from UTF-8 bytes, line by line.
    static func parse(_ buf: Bytes) throws(SDPParseError) -> SessionDescription {
        // Fast path: pure ASCII input (what browsers send) skips UTF-8 validation.
        var asciiOnly = true
        for b in buf where b >= 0x80 { asciiOnly = false; break }

        var version: Int?
        var origin: Origin?
        var sessionName: String?
        var information: String?
        var uri: String?
        var emails: [String] = []
        var phones: [String] = []
        var connection: ConnectionData?
        var bandwidths: [Bandwidth] = []
        var timings: [Timing] = []
        var timeZones: String?
        var encryptionKey: String?
        var otherLines: [SDPLine] = []
        var attributes: [SDPAttribute] = []
        var media: [MediaDescription] = []
        media.reserveCapacity(4)
        // Index of the m-section being filled: lines after the first m= belong
        // to the last element of `media`, mutated in place (no copies).
        var inMedia = false

        let n = buf.count
        var pos = 0
        var lineNumber = 0
        var sawContent = false

        while pos < n {
            var end = pos
            while end < n && buf[end] != ASCII.lf { end += 1 }
            let next = end + 1
            var lineEnd = end
            if lineEnd > pos && buf[lineEnd - 1] == ASCII.cr { lineEnd -= 1 }
            lineNumber += 1
            let lineStart = pos
            pos = next

            // Blank (or whitespace-only) lines: skipped, as browsers do.
            var blank = true
            for i in lineStart..<lineEnd where buf[i] != ASCII.space && buf[i] != ASCII.tab && buf[i] != ASCII.cr {
                blank = false
                break
            }
            if blank { continue }
            sawContent = true

            if !asciiOnly {
                let line = Bytes(rebasing: buf[lineStart..<lineEnd])
                if String(validating: line, as: UTF8.self) == nil {
                    throw SDPParseError(line: lineNumber, reason: .invalidUTF8)
                }
            }
            guard lineEnd - lineStart >= 2, buf[lineStart + 1] == ASCII.equals else {
                throw SDPParseError(line: lineNumber, reason: .malformedLine)
            }
            let type = buf[lineStart]
            guard (type >= 0x61 && type <= 0x7A) || (type >= 0x41 && type <= 0x5A) else {
                throw SDPParseError(line: lineNumber, reason: .malformedLine)
            }
            let value = Bytes(rebasing: buf[(lineStart + 2)..<lineEnd])

            if version == nil {
                guard type == UInt8(ascii: "v") else { throw SDPParseError(line: lineNumber, reason: .missingVersion) }
                guard value.count == 1, value[0] == ASCII.zero else {
                    throw SDPParseError(line: lineNumber, reason: .unsupportedVersion)
                }
                version = 0
                continue
            }

            func fail(_ r: SDPParseError.Reason) -> SDPParseError { SDPParseError(line: lineNumber, reason: r) }

            switch type {
            case UInt8(ascii: "a"):
                let attr = try parseAttribute(value, line: lineNumber)
                if inMedia { media[media.count - 1].attributes.append(attr) } else { attributes.append(attr) }

            case UInt8(ascii: "m"):
                media.append(try parseMediaLine(value, line: lineNumber))
                inMedia = true

            case UInt8(ascii: "c"):
                let c = try parseConnection(value, line: lineNumber)
                if inMedia {
                    if media[media.count - 1].connection != nil { throw fail(.duplicateLine(type)) }
                    media[media.count - 1].connection = c
                } else {
                    if connection != nil { throw fail(.duplicateLine(type)) }
                    connection = c
                }

            case UInt8(ascii: "b"):
                let b = try parseBandwidth(value, line: lineNumber)
                if inMedia { media[media.count - 1].bandwidths.append(b) } else { bandwidths.append(b) }

            case UInt8(ascii: "i"):
                let s = string(value)
                if inMedia {
                    if media[media.count - 1].information != nil { throw fail(.duplicateLine(type)) }
                    media[media.count - 1].information = s
                } else {
                    if information != nil { throw fail(.duplicateLine(type)) }
                    information = s
                }

            case UInt8(ascii: "k"):
                if inMedia { media[media.count - 1].encryptionKey = string(value) } else { encryptionKey = string(value) }

            case UInt8(ascii: "v"):
                throw fail(inMedia ? .unexpectedLine(type) : .duplicateLine(type))

            case UInt8(ascii: "o"), UInt8(ascii: "s"), UInt8(ascii: "u"), UInt8(ascii: "e"), UInt8(ascii: "p"),
                 UInt8(ascii: "t"), UInt8(ascii: "r"), UInt8(ascii: "z"):
                guard !inMedia else { throw fail(.unexpectedLine(type)) }
                switch type {
                case UInt8(ascii: "o"):
                    if origin != nil { throw fail(.duplicateLine(type)) }
                    origin = try parseOrigin(value, line: lineNumber)
                case UInt8(ascii: "s"):
                    if sessionName != nil { throw fail(.duplicateLine(type)) }
                    sessionName = string(value)
                case UInt8(ascii: "u"):
                    if uri != nil { throw fail(.duplicateLine(type)) }
                    uri = string(value)
                case UInt8(ascii: "e"): emails.append(string(value))
                case UInt8(ascii: "p"): phones.append(string(value))
                case UInt8(ascii: "t"): timings.append(try parseTiming(value, line: lineNumber))
                case UInt8(ascii: "r"):
                    guard !timings.isEmpty else { throw fail(.malformedTiming) }
                    timings[timings.count - 1].repeats.append(string(value))
                default: // z
                    if timeZones != nil { throw fail(.duplicateLine(type)) }
                    timeZones = string(value)
                }

            default:
                // Unknown line types are ignored by receivers (RFC 8866 §5); keep them.
                let l = SDPLine(type: type, value: string(value))
                if inMedia { media[media.count - 1].otherLines.append(l) } else { otherLines.append(l) }
            }
        }

        guard sawContent else { throw SDPParseError(line: max(lineNumber, 1), reason: .empty) }
        guard let version else { throw SDPParseError(line: 1, reason: .missingVersion) }
        guard let origin else { throw SDPParseError(line: lineNumber, reason: .missingLine(UInt8(ascii: "o"))) }
        guard let sessionName else { throw SDPParseError(line: lineNumber, reason: .missingLine(UInt8(ascii: "s"))) }

        return SessionDescription(
            version: version, origin: origin, sessionName: sessionName, information: information, uri: uri,
            emails: emails, phones: phones, connection: connection, bandwidths: bandwidths, timings: timings,
            timeZones: timeZones, encryptionKey: encryptionKey, otherLines: otherLines, attributes: attributes,
            media: media)
    }

    @inline(__always)
    static func string(_ b: Bytes) -> String { String(decoding: b, as: UTF8.self) }

    /// Splits on spaces (runs of spaces count as one, for leniency).
    static func words(_ b: Bytes) -> [Bytes] {
        var out: [Bytes] = []
        var i = 0
        let n = b.count
        while i < n {
            while i < n && b[i] == ASCII.space { i += 1 }
            if i == n { break }
            let s = i
            while i < n && b[i] != ASCII.space { i += 1 }
            out.append(Bytes(rebasing: b[s..<i]))
        }
        return out
    }

    static func allDigits(_ b: Bytes) -> Bool { !b.isEmpty && b.allSatisfy(ASCII.isDigit) }

    /// A decimal number, telling "not a number" from "too big".
    static func number<T: FixedWidthInteger & UnsignedInteger>(
        _ b: Bytes, _: T.Type, line: Int, otherwise: SDPParseError.Reason
    ) throws(SDPParseError) -> T {
        if let v = parseDecimal(b, as: T.self) { return v }
        throw SDPParseError(line: line, reason: allDigits(b) ? .numberOutOfRange : otherwise)
    }

    static func parseOrigin(_ v: Bytes, line: Int) throws(SDPParseError) -> Origin {
        let w = words(v)
        guard w.count == 6 else { throw SDPParseError(line: line, reason: .malformedOrigin) }
        return Origin(
            username: string(w[0]),
            sessionID: try number(w[1], UInt64.self, line: line, otherwise: .malformedOrigin),
            sessionVersion: try number(w[2], UInt64.self, line: line, otherwise: .malformedOrigin),
            networkType: string(w[3]), addressType: string(w[4]), address: string(w[5]))
    }

    static func parseConnection(_ v: Bytes, line: Int) throws(SDPParseError) -> ConnectionData {
        let w = words(v)
        guard w.count == 3 else { throw SDPParseError(line: line, reason: .malformedConnection) }
        return ConnectionData(networkType: string(w[0]), addressType: string(w[1]), address: string(w[2]))
    }

    static func parseBandwidth(_ v: Bytes, line: Int) throws(SDPParseError) -> Bandwidth {
        guard let colon = v.firstIndex(of: ASCII.colon), colon > 0 else {
            throw SDPParseError(line: line, reason: .malformedBandwidth)
        }
        let value = try number(Bytes(rebasing: v[(colon + 1)...]), UInt64.self, line: line, otherwise: .malformedBandwidth)
        return Bandwidth(type: string(Bytes(rebasing: v[..<colon])), value: value)
    }

    static func parseTiming(_ v: Bytes, line: Int) throws(SDPParseError) -> Timing {
        let w = words(v)
        guard w.count == 2 else { throw SDPParseError(line: line, reason: .malformedTiming) }
        return Timing(start: try number(w[0], UInt64.self, line: line, otherwise: .malformedTiming),
                      stop: try number(w[1], UInt64.self, line: line, otherwise: .malformedTiming))
    }

    /// `m=<media> <port>[/<number of ports>] <proto> 1*(SP <fmt>)` (RFC 8866 §5.14).
    static func parseMediaLine(_ v: Bytes, line: Int) throws(SDPParseError) -> MediaDescription {
        let w = words(v)
        guard w.count >= 4 else { throw SDPParseError(line: line, reason: .malformedMediaLine) }
        let portField = w[1]
        var port: UInt16
        var count: UInt16?
        if let slash = portField.firstIndex(of: ASCII.slash) {
            port = try number(Bytes(rebasing: portField[..<slash]), UInt16.self, line: line, otherwise: .malformedMediaLine)
            count = try number(Bytes(rebasing: portField[(slash + 1)...]), UInt16.self, line: line, otherwise: .malformedMediaLine)
        } else {
            port = try number(portField, UInt16.self, line: line, otherwise: .malformedMediaLine)
        }
        let isRTP = w[2].count >= 4 && string(w[2]).contains("RTP/")
        var formats: [String] = []
        formats.reserveCapacity(w.count - 3)
        for f in w[3...] {
            // RTP formats are payload type numbers (RFC 8866 §5.14): 0...127.
            if isRTP {
                let pt = try number(f, UInt8.self, line: line, otherwise: .malformedMediaLine)
                guard pt < 128 else { throw SDPParseError(line: line, reason: .numberOutOfRange) }
            }
            formats.append(string(f))
        }
        guard w[0].allSatisfy({ ASCII.isAlphaNumeric($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") }) else {
            throw SDPParseError(line: line, reason: .malformedMediaLine)
        }
        return MediaDescription(kind: MediaKind(rawValue: string(w[0])), port: port, portCount: count,
                                proto: string(w[2]), formats: formats)
    }

    static func parseAttribute(_ v: Bytes, line: Int) throws(SDPParseError) -> SDPAttribute {
        guard let colon = v.firstIndex(of: ASCII.colon) else {
            guard !v.isEmpty else { throw SDPParseError(line: line, reason: .malformedAttribute("")) }
            return SDPAttribute(string(v))
        }
        guard colon > 0 else { throw SDPParseError(line: line, reason: .malformedAttribute("")) }
        let nameBytes = Bytes(rebasing: v[..<colon])
        let valueBytes = Bytes(rebasing: v[(colon + 1)...])
        let name = string(nameBytes)
        let value = string(valueBytes)
        if !validate(name: nameBytes, value: valueBytes, string: value) {
            throw SDPParseError(line: line, reason: .malformedAttribute(name))
        }
        return SDPAttribute(name, value)
    }

    @inline(__always)
    static func equals(_ b: Bytes, _ s: StaticString) -> Bool {
        guard b.count == s.utf8CodeUnitCount else { return false }
        let p = s.utf8Start
        for i in 0..<b.count where b[i] != p[i] { return false }
        return true
    }

    /// Grammar checks for the attributes the SFU relies on. The frequent ones
    /// (rtpmap, fmtp, extmap, ssrc, rtcp-fb) are checked on the bytes without
    /// allocating; the rare ones through their typed parsers.
    static func validate(name: Bytes, value: Bytes, string: String) -> Bool {
        switch name.count {
        case 4:
            if equals(name, "fmtp") {
                // <format> SP <parameters>: a non-empty format token.
                return !value.isEmpty && value[0] != ASCII.space
            }
            if equals(name, "ssrc") { return validSSRC(value) }
        case 6:
            if equals(name, "rtpmap") { return validRTPMap(value) }
            if equals(name, "extmap") { return validExtmap(value) }
        case 5:
            if equals(name, "setup") { return SetupRole(rawValue: string) != nil }
        case 3:
            if equals(name, "rid") { return RIDDescription(value: string) != nil }
        case 9:
            if equals(name, "simulcast") { return Simulcast(value: string) != nil }
            if equals(name, "sctp-port") { return parseDecimal(value, as: UInt16.self) != nil }
        case 10:
            if equals(name, "ssrc-group") { return SSRCGroup(value: string) != nil }
        case 11:
            if equals(name, "fingerprint") { return Fingerprint(value: string) != nil }
        case 16:
            if equals(name, "max-message-size") { return parseDecimal(value, as: UInt64.self) != nil }
        default:
            break
        }
        return true
    }

    /// `<pt> <name>/<rate>[/<params>]` with pt 0...127.
    static func validRTPMap(_ v: Bytes) -> Bool {
        var i = 0
        let n = v.count
        var pt = 0
        let ptStart = i
        while i < n && ASCII.isDigit(v[i]) {
            pt = pt * 10 + Int(v[i] - ASCII.zero)
            if pt > 127 { return false }
            i += 1
        }
        guard i > ptStart, i < n, v[i] == ASCII.space else { return false }
        i += 1
        let nameStart = i
        while i < n && v[i] != ASCII.slash && v[i] != ASCII.space { i += 1 }
        guard i > nameStart, i < n, v[i] == ASCII.slash else { return false }
        i += 1
        var rate: UInt64 = 0
        let rateStart = i
        while i < n && ASCII.isDigit(v[i]) {
            rate = rate * 10 + UInt64(v[i] - ASCII.zero)
            if rate > UInt64(UInt32.max) { return false }
            i += 1
        }
        guard i > rateStart else { return false }
        if i == n { return true }
        guard v[i] == ASCII.slash else { return false }
        i += 1
        return parseDecimal(Bytes(rebasing: v[i...]), as: UInt16.self) != nil
    }

    /// `<id>[/<direction>] <uri> [<attributes>]` (RFC 8285 §7), the same rules
    /// as `ExtensionMap(value:)` without building one.
    static func validExtmap(_ v: Bytes) -> Bool {
        let n = v.count
        var i = 0
        var id = 0
        while i < n && ASCII.isDigit(v[i]) {
            id = id * 10 + Int(v[i] - ASCII.zero)
            if id > 4351 { return false }
            i += 1
        }
        guard i > 0, (1...255).contains(id) || (4096...4351).contains(id), i < n else { return false }
        if v[i] == ASCII.slash {
            i += 1
            let s = i
            while i < n && v[i] != ASCII.space { i += 1 }
            let dir = Bytes(rebasing: v[s..<i])
            guard equals(dir, "sendrecv") || equals(dir, "sendonly") || equals(dir, "recvonly") || equals(dir, "inactive") else {
                return false
            }
        }
        guard i < n, v[i] == ASCII.space else { return false }
        while i < n && v[i] == ASCII.space { i += 1 }
        return i < n // a non-empty URI follows
    }

    /// `<ssrc> <attribute>[:<value>]` with a 32-bit ssrc.
    static func validSSRC(_ v: Bytes) -> Bool {
        guard let sp = v.firstIndex(of: ASCII.space), sp + 1 < v.count,
              parseDecimal(Bytes(rebasing: v[..<sp]), as: UInt32.self) != nil else { return false }
        return v[sp + 1] != ASCII.space && v[sp + 1] != ASCII.colon
    }
}
