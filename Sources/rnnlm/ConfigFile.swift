import ArgumentParser
import Foundation
import RNNCore
import RNNText

/// `--config FILE` for `train`, `coordinator` and `launch`: every key of the file (TOML `key = value` lines, or a JSON
/// object) becomes the flag of the same name, unless that flag is already on the command line (flags win).
/// Unknown keys are errors that name the key and suggest the nearest flag.
enum ConfigFile {
    struct Problem: Error, CustomStringConvertible { let description: String }

    /// A setting's value: a switch, or the text passed to a flag.
    enum Value: Equatable { case bool(Bool), text(String) }

    /// The arguments with the config file's settings appended (or unchanged when there is no `--config`).
    static func expand(_ args: [String]) throws -> [String] {
        guard let command = args.first, let help = helpText(for: command) else { return args }
        guard let path = value(of: "--config", in: args) else { return args }
        let known = options(inHelp: help)
        let entries = try load(path)
        var out = args, seen: [String: String] = [:]
        for (rawKey, value) in entries {
            let key = rawKey.replacingOccurrences(of: "_", with: "-")
            if let first = seen[key] {
                throw Problem(description: "\(path): '\(rawKey)' is set twice (also as '\(first)'); keep one")
            }
            seen[key] = rawKey
            if ["config", "help", "version"].contains(key) {
                throw Problem(description: "\(path): '\(rawKey)' cannot be set in a settings file (give --\(key) on the command line)")
            }
            guard let takesValue = known[key] else {
                let hint = nearest(key, among: Array(known.keys)).map { "; did you mean '\($0)'?" } ?? ""
                throw Problem(description: "\(path): unknown key '\(rawKey)'\(hint) (keys are the names of `rnnlm \(command)` flags)")
            }
            if args.contains(where: { $0 == "--" + key || $0.hasPrefix("--" + key + "=") }) { continue }
            switch (value, takesValue) {
            case (.bool(let b), false):
                if b { out.append("--" + key) }
            case (.text, false):
                throw Problem(description: "\(path): '\(key)' is a switch; set it to true or false")
            case (.bool, true):
                throw Problem(description: "\(path): '\(key)' takes a value, not true/false")
            case (.text(let v), true):
                // One argument, so a value that starts with "-" (layers = -1) reaches the flag's own check.
                out.append("--\(key)=\(v)")
            }
        }
        return out
    }

    static func helpText(for command: String) -> String? {
        switch command {
        case "train": return Train.helpMessage(columns: 400)
        case "coordinator": return Coordinator.helpMessage(columns: 400)
        case "launch": return Launch.helpMessage(columns: 400)
        default: return nil
        }
    }

    static func value(of flag: String, in args: [String]) -> String? {
        for (i, a) in args.enumerated() {
            if a == flag, i + 1 < args.count { return args[i + 1] }
            if a.hasPrefix(flag + "=") { return String(a.dropFirst(flag.count + 1)) }
        }
        return nil
    }

    /// Option names listed in a help text, and whether each takes a value (`--lr <lr>`) or is a switch.
    static func options(inHelp help: String) -> [String: Bool] {
        var out: [String: Bool] = [:]
        for line in help.split(separator: "\n") {
            let t = line.trimmingCharacters(in: .whitespaces)
            guard t.hasPrefix("-") else { continue }
            let words = t.split(separator: " ", omittingEmptySubsequences: true)
            for (i, w) in words.enumerated() where w.hasPrefix("--") {
                let name = String(w.dropFirst(2)).trimmingCharacters(in: CharacterSet(charactersIn: ","))
                out[name] = i + 1 < words.count && words[i + 1].hasPrefix("<")
                break
            }
        }
        return out
    }


    /// Key-value pairs in file order.
    static func load(_ path: String) throws -> [(String, Value)] {
        let bytes: Data
        do { bytes = try readWholeFile(path) } catch {
            throw Problem(description: "--config \(path): cannot read the file: \(error.localizedDescription)")
        }
        guard let text = String(data: bytes, encoding: .utf8) else {
            throw Problem(description: "--config \(path): not UTF-8 text")
        }
        if path.hasSuffix(".json") {
            guard let obj = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
                throw Problem(description: "\(path): not a JSON object of settings")
            }
            return try obj.keys.sorted().map { k in
                switch obj[k]! {
                case let s as String: return (k, .text(s))
                case let n as NSNumber:
                    // JSON true/false arrive as a boolean NSNumber ("c"); a number must not be read as a switch.
                    if String(cString: n.objCType) == "c" { return (k, .bool(n.boolValue)) }
                    return (k, .text(n.stringValue))
                default: throw Problem(description: "\(path): '\(k)' must be a string, number or boolean")
                }
            }
        }
        return try parseTOML(text, path: path)
    }

    /// The flat subset of TOML a settings file needs: `key = value` with strings, numbers and booleans, and
    /// `#` comments. Tables and arrays are refused with the line number.
    static func parseTOML(_ text: String, path: String) throws -> [(String, Value)] {
        var out: [(String, Value)] = []
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = stripComment(String(raw)).trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            let at = "\(path) line \(n + 1)"
            if line.hasPrefix("[") { throw Problem(description: "\(at): tables are not supported; put every key at the top level") }
            guard let eq = line.firstIndex(of: "=") else { throw Problem(description: "\(at): expected key = value") }
            var key = line[..<eq].trimmingCharacters(in: .whitespaces)
            if key.count >= 2, key.hasPrefix("\""), key.hasSuffix("\"") { key = String(key.dropFirst().dropLast()) }
            let v = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            guard !key.isEmpty, !v.isEmpty else { throw Problem(description: "\(at): expected key = value") }
            let value: Value
            let digits = v.replacingOccurrences(of: "_", with: "")
            if v.hasPrefix("\"\"\"") || v.hasPrefix("'''") {
                throw Problem(description: "\(at): multi-line strings are not supported; write the value on one line in \"…\"")
            }
            if v.hasPrefix("\""), v.hasSuffix("\""), v.count >= 2 {
                value = .text(unescape(String(v.dropFirst().dropLast())))
            } else if v.hasPrefix("'"), v.hasSuffix("'"), v.count >= 2 {
                value = .text(String(v.dropFirst().dropLast()))
            } else if v == "true" || v == "false" {
                value = .bool(v == "true")
            } else if Int(digits) != nil || Double(digits) != nil {
                value = .text(digits)
            } else {
                throw Problem(description: "\(at): '\(v)' is not a string, number or boolean (quote strings)")
            }
            out.append((key, value))
        }
        return out
    }

    static func stripComment(_ s: String) -> String {
        var inString: Character?, escaped = false
        for (i, c) in s.enumerated() {
            if let q = inString {
                // In a basic ("…") string a backslash escapes the next character, a quote included.
                if escaped { escaped = false } else if c == "\\" && q == "\"" { escaped = true } else if c == q { inString = nil }
            } else if c == "\"" || c == "'" { inString = c } else if c == "#" {
                return String(s.prefix(i))
            }
        }
        return s
    }

    static func unescape(_ s: String) -> String {
        var out = "", escaping = false
        for c in s {
            if escaping {
                switch c { case "n": out.append("\n"); case "t": out.append("\t"); default: out.append(c) }
                escaping = false
            } else if c == "\\" { escaping = true } else { out.append(c) }
        }
        return out
    }

    /// The candidate closest to `word` by edit distance, if reasonably close.
    static func nearest(_ word: String, among candidates: [String]) -> String? {
        func distance(_ a: [Character], _ b: [Character]) -> Int {
            var row = Array(0...b.count)
            for i in 1...max(a.count, 1) where !a.isEmpty {
                var prev = row[0]; row[0] = i
                for j in 1...max(b.count, 1) where !b.isEmpty {
                    let cur = row[j]
                    let substitution: Int = prev + (a[i - 1] == b[j - 1] ? 0 : 1)
                    let insertOrDelete: Int = Swift.min(row[j] + 1, row[j - 1] + 1)
                    row[j] = Swift.min(insertOrDelete, substitution)
                    prev = cur
                }
            }
            return row[b.count]
        }
        let w = Array(word)
        var best: (name: String, distance: Int)?
        for c in candidates.sorted() {
            let d = distance(w, Array(c))
            if best == nil || d < best!.distance { best = (c, d) }
        }
        guard let b = best, b.distance <= Swift.max(2, word.count / 2) else { return nil }
        return b.name
    }
}
