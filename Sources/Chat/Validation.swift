/// Naming rules of the contract: usernames are 1–32 and group names 1–64
/// characters of `a-z 0-9 _ . -`, case-insensitive and stored lower-case.
public enum Names {
    public static let maxUsernameLength = 32
    public static let maxGroupNameLength = 64
    public static let maxDisplayNameLength = 64
    public static let minPasswordLength = 8
    public static let maxPasswordLength = 1024

    public static func normalizedUsername(_ raw: String) -> String? {
        normalized(raw, maxLength: maxUsernameLength)
    }

    public static func normalizedGroupName(_ raw: String) -> String? {
        normalized(raw, maxLength: maxGroupNameLength)
    }

    private static func normalized(_ raw: String, maxLength: Int) -> String? {
        let lower = raw.lowercased()
        guard !lower.isEmpty, lower.utf8.count <= maxLength else { return nil }
        for c in lower.utf8 {
            switch c {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "-"):
                continue
            default:
                return nil
            }
        }
        return lower
    }
}

/// Message limits.
public enum Limits {
    public static let maxContentCharacters = 8000
    public static let maxBroadcastRecipients = 100
    public static let maxAttachments = 10
    public static let maxHistoryLimit = 500
    public static let defaultHistoryLimit = 50
    public static let maxSearchLimit = 100
    public static let defaultSearchLimit = 20
    public static let maxSettingsBytes = 8192
}
