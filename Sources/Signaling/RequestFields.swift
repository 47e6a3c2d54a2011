import Chat

/// Typed access to a request's fields: a missing required field or a field of
/// the wrong JSON type is a `bad_request` naming it.
struct RequestFields {
    let object: JSONObject

    func string(_ key: String) throws -> String {
        guard let value = object[key], !value.isNull else { throw ChatError.badRequest("missing field '\(key)'") }
        guard let s = value.stringValue else { throw ChatError.badRequest("field '\(key)' must be a string") }
        return s
    }

    func optionalString(_ key: String) throws -> String? {
        guard let value = object[key], !value.isNull else { return nil }
        guard let s = value.stringValue else { throw ChatError.badRequest("field '\(key)' must be a string") }
        return s
    }

    func optionalInt(_ key: String) throws -> Int? {
        guard let value = object[key], !value.isNull else { return nil }
        guard let d = value.doubleValue, let i = Int(exactly: d) else {
            throw ChatError.badRequest("field '\(key)' must be an integer")
        }
        return i
    }

    func optionalTime(_ key: String) throws -> Millis? {
        guard let s = try optionalString(key) else { return nil }
        guard let t = Timestamp.parse(s) else { throw ChatError.badRequest("field '\(key)' must be an RFC 3339 time") }
        return t
    }

    func stringArray(_ key: String) throws -> [String] {
        guard let value = object[key], !value.isNull else { throw ChatError.badRequest("missing field '\(key)'") }
        guard let items = value.arrayValue else { throw ChatError.badRequest("field '\(key)' must be an array of strings") }
        return try items.map {
            guard let s = $0.stringValue else { throw ChatError.badRequest("field '\(key)' must be an array of strings") }
            return s
        }
    }

    func optionalBool(_ key: String) throws -> Bool? {
        guard let value = object[key], !value.isNull else { return nil }
        guard case .bool(let b) = value else { throw ChatError.badRequest("field '\(key)' must be true or false") }
        return b
    }

    func optionalStringArray(_ key: String) throws -> [String]? {
        guard let value = object[key], !value.isNull else { return nil }
        return try stringArray(key)
    }

    func object(_ key: String) throws -> JSONObject {
        guard let o = try optionalObject(key) else { throw ChatError.badRequest("missing field '\(key)'") }
        return o
    }

    func optionalObject(_ key: String) throws -> JSONObject? {
        guard let value = object[key], !value.isNull else { return nil }
        guard let o = value.objectValue else { throw ChatError.badRequest("field '\(key)' must be an object") }
        return o
    }

    /// `recipient` or `groupname`, exactly one of them.
    func chatRef() throws -> ChatService.ChatRef {
        let recipient = try optionalString("recipient")
        let group = try optionalString("groupname")
        switch (recipient, group) {
        case let (r?, nil): return .direct(r)
        case let (nil, g?): return .group(g)
        case (nil, nil): throw ChatError.badRequest("missing field 'recipient' or 'groupname'")
        default: throw ChatError.badRequest("give 'recipient' or 'groupname', not both")
        }
    }

    /// `location` and `attachments`, validated.
    func extras() throws -> MessageExtras {
        var extras = MessageExtras()
        if let loc = try optionalObject("location") {
            guard let lat = loc["lat"]?.doubleValue, let lon = loc["lon"]?.doubleValue else {
                throw ChatError.badRequest("field 'location' needs numbers 'lat' and 'lon'")
            }
            guard (-90...90).contains(lat), (-180...180).contains(lon) else {
                throw ChatError.badRequest("field 'location' is out of range")
            }
            extras.location = Location(lat: lat, lon: lon)
        }
        if let value = object["attachments"], !value.isNull {
            guard let items = value.arrayValue else { throw ChatError.badRequest("field 'attachments' must be an array") }
            guard items.count <= Limits.maxAttachments else {
                throw ChatError.badRequest("at most \(Limits.maxAttachments) attachments")
            }
            for item in items {
                guard let id = item.objectValue?["attachment_id"]?.stringValue else {
                    throw ChatError.badRequest("each attachment needs a string 'attachment_id'")
                }
                // Attachment upload is not served yet, so no id can exist.
                throw ChatError.notFound("unknown attachment '\(id)'")
            }
        }
        return extras
    }
}
