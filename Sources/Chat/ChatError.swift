/// The error codes of the wire contract, in one place so every edge (WebSocket,
/// line protocol, HTTP) reports the same thing for the same failure.
public enum ErrorCode: String, Sendable, CaseIterable {
    case badJSON = "bad_json"
    case badRequest = "bad_request"
    case unknownType = "unknown_type"
    case notAuthenticated = "not_authenticated"
    case forbidden
    case notFound = "not_found"
    case conflict
    case tooLarge = "too_large"
    case rateLimited = "rate_limited"
    case `internal`
}

/// A request that cannot be served: a code from the contract and a reason a
/// person can read.
public struct ChatError: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: ErrorCode
    public var reason: String

    public init(_ code: ErrorCode, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    public var description: String { "\(code.rawValue): \(reason)" }

    public static func badRequest(_ reason: String) -> ChatError { ChatError(.badRequest, reason) }
    public static func notFound(_ reason: String) -> ChatError { ChatError(.notFound, reason) }
    public static func forbidden(_ reason: String) -> ChatError { ChatError(.forbidden, reason) }
    public static func conflict(_ reason: String) -> ChatError { ChatError(.conflict, reason) }
}

/// Errors a `ChatStore` raises that the domain turns into protocol answers.
public enum ChatStoreError: Error, Sendable, Equatable {
    case duplicate
    case notFound
}
