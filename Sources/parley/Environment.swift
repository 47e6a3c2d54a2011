import ArgumentParser
import Foundation

/// A flag's value: the flag if given, else the environment variable, else the
/// default. Every `serve` flag can be set either way.
enum Setting {
    static func value(_ flag: String?, env name: String, default fallback: String) -> String {
        flag ?? ProcessInfo.processInfo.environment[name] ?? fallback
    }

    static func int(_ flag: Int?, env name: String, default fallback: Int) throws -> Int {
        if let flag { return flag }
        guard let raw = ProcessInfo.processInfo.environment[name] else { return fallback }
        guard let v = Int(raw.trimmingCharacters(in: .whitespaces)) else {
            throw ValidationError("\(name) must be an integer, got '\(raw)'")
        }
        return v
    }

    static func port(_ flag: Int?, env name: String, default fallback: Int) throws -> Int {
        let v = try int(flag, env: name, default: fallback)
        guard (0...65535).contains(v) else { throw ValidationError("\(name) must be a port number (0–65535), got \(v)") }
        return v
    }
}
