import CairnCore
import CairnStore
import ArgumentParser
import Cairn

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Shared formatting: short ids, times, value rendering and JSON. Every command renders through
// these helpers so the same thing always looks the same.

// MARK: - Ids and keys

/// Digits shown for an abbreviated id, key or digest (like git's short hashes).
let shortLength = 12

extension Hash32 {
    var short: String { shortHex(shortLength) }
}

extension PublicKey {
    var short: String { String(hex.prefix(shortLength)) }
}

// MARK: - Time

enum TimeFormat {
    /// `2026-11-21T10:00:00.123Z` for milliseconds since the Unix epoch (UTC).
    static func iso(milliseconds: UInt64) -> String { ISOTime.string(milliseconds: milliseconds) }

    /// An HLC for people: its wall time in ISO-8601 UTC and its logical counter,
    /// e.g. `2026-11-21T10:00:00.123Z #0`.
    static func hlc(_ hlc: HLC) -> String {
        "\(iso(milliseconds: hlc.wallMilliseconds)) #\(hlc.counter)"
    }

    /// A duration for people, two units at most: `850ms`, `12.3s`, `3m 05s`, `2h 03m`, `4d 02h`.
    static func duration(milliseconds ms: UInt64) -> String {
        func pad(_ value: UInt64) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let seconds = ms / 1000, minutes = seconds / 60, hours = minutes / 60, days = hours / 24
        if ms < 1000 { return "\(ms)ms" }
        if seconds < 60 { return "\(seconds).\(ms % 1000 / 100)s" }
        if minutes < 60 { return "\(minutes)m \(pad(seconds % 60))s" }
        if hours < 24 { return "\(hours)h \(pad(minutes % 60))m" }
        return "\(days)d \(pad(hours % 24))h"
    }

    /// Parses ISO-8601: `2026-11-21`, `2026-11-21T10:00`, `2026-11-21T10:00:00`, with optional
    /// fractional seconds and a zone (`Z`, `+02:00`, `-0500`); no zone means UTC. A space may
    /// replace the `T`. Returns milliseconds since the Unix epoch.
    static func parseISO(_ text: String) -> UInt64? {
        var scanner = Scanner(Array(text.utf8))
        guard let year = scanner.digits(4), scanner.take("-"), let month = scanner.digits(2), scanner.take("-"),
            let day = scanner.digits(2)
        else { return nil }
        var hour = 0, minute = 0, second = 0, millis = 0, offsetMinutes = 0
        if scanner.take("T") || scanner.take("t") || scanner.take(" ") {
            guard let h = scanner.digits(2), scanner.take(":"), let m = scanner.digits(2) else { return nil }
            (hour, minute) = (h, m)
            if scanner.take(":") {
                guard let s = scanner.digits(2) else { return nil }
                second = s
                if scanner.take(".") || scanner.take(",") {
                    var fraction = 0, places = 0
                    while let digit = scanner.digits(1) {
                        if places < 3 { fraction = fraction * 10 + digit; places += 1 }
                    }
                    guard places > 0 else { return nil }
                    while places < 3 { fraction *= 10; places += 1 }
                    millis = fraction
                }
            }
            if scanner.take("Z") || scanner.take("z") {
            } else if let sign = scanner.peek, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") {
                scanner.advance()
                guard let oh = scanner.digits(2) else { return nil }
                _ = scanner.take(":")
                guard let om = scanner.digits(2) else { return nil }
                offsetMinutes = (oh * 60 + om) * (sign == UInt8(ascii: "+") ? 1 : -1)
            }
        }
        guard scanner.atEnd, (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour)
        parts.tm_min = Int32(minute)
        parts.tm_sec = Int32(second)
        let seconds = Int64(timegm(&parts)) - Int64(offsetMinutes) * 60
        guard seconds >= 0 else { return nil }
        return UInt64(seconds) * 1000 + UInt64(millis)
    }

    private struct Scanner {
        let bytes: [UInt8]
        var index = 0
        init(_ bytes: [UInt8]) { self.bytes = bytes }
        var atEnd: Bool { index == bytes.count }
        var peek: UInt8? { atEnd ? nil : bytes[index] }
        mutating func advance() { index += 1 }
        mutating func take(_ character: Character) -> Bool {
            guard let peek, peek == character.asciiValue else { return false }
            index += 1
            return true
        }
        mutating func digits(_ count: Int) -> Int? {
            guard index + count <= bytes.count else { return nil }
            var value = 0
            for byte in bytes[index..<index + count] {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return nil }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
            }
            index += count
            return value
        }
    }
}

/// A point in log time given on the command line: an ISO-8601 time (`2026-11-21T10:00:00Z`),
/// a raw HLC integer (`116...`), or `wall.counter` (`1763719200000.3`, as `cairn show` prints).
struct TimeSpec: Sendable {
    /// The HLC at the start of the instant (counter 0 for an ISO time).
    let lower: HLC
    /// The last HLC within the instant: for an ISO time, every counter value in its millisecond;
    /// for an HLC, itself. Used for inclusive upper bounds (`--until`).
    let upper: HLC

    static let help = "an ISO-8601 time (2026-11-21T10:00:00Z), a raw HLC integer, or wall-ms.counter"

    static func parse(_ text: String) throws -> TimeSpec {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        let allDigits = { (s: Substring) in !s.isEmpty && s.allSatisfy { $0.isASCII && $0.isNumber } }
        if parts.count == 1, allDigits(parts[0]) {
            guard let raw = UInt64(text), HLC(rawValue: raw).isValid else { throw ValidationError("HLC \(text) is out of range") }
            return TimeSpec(lower: HLC(rawValue: raw), upper: HLC(rawValue: raw))
        }
        if parts.count == 2, allDigits(parts[0]), allDigits(parts[1]) {
            guard let wall = UInt64(parts[0]), wall < 1 << 47, let counter = UInt16(parts[1]) else {
                throw ValidationError("HLC \(text) is out of range (wall milliseconds below 2^47, counter below 65536)")
            }
            let hlc = HLC(wallMilliseconds: wall, counter: counter)
            return TimeSpec(lower: hlc, upper: hlc)
        }
        guard let ms = TimeFormat.parseISO(text), ms < 1 << 47 else {
            throw ValidationError("cannot read '\(text)' as a time: give \(help)")
        }
        return TimeSpec(lower: HLC(wallMilliseconds: ms, counter: 0), upper: HLC(wallMilliseconds: ms, counter: .max))
    }
}

// MARK: - Bucket/key paths

/// `BUCKET/KEY`, split at the first `/` (keys may contain more slashes).
struct KeyPathArgument: Sendable, CustomStringConvertible {
    let bucket: String
    let key: String
    var description: String { Quote.path(bucket, key) }

    static func parse(_ text: String) throws -> KeyPathArgument {
        guard let (bucket, key) = splitAtFirstSlash(text) else {
            throw ValidationError("expected BUCKET/KEY, got '\(text)' (no '/')")
        }
        guard !bucket.isEmpty else { throw ValidationError("'\(text)' has an empty bucket name") }
        guard !key.isEmpty else { throw ValidationError("'\(text)' has an empty key") }
        return KeyPathArgument(bucket: bucket, key: key)
    }
}

/// `text` split at its first U+002F `/`, by scalars: keys are byte strings, and a `/` followed
/// by a combining mark (`"b/\u{301}k"`) is one `Character` that `firstIndex(of: "/")` misses.
func splitAtFirstSlash(_ text: String) -> (String, String)? {
    let scalars = text.unicodeScalars
    guard let slash = scalars.firstIndex(of: "/") else { return nil }
    return (String(scalars[..<slash]), String(scalars[scalars.index(after: slash)...]))
}

/// A peer address, `HOST:PORT` or `[IPv6]:PORT`, normalized.
func parsePeerAddress(_ text: String) throws -> String {
    do {
        return try PeerAddress.normalized(text)
    } catch {
        throw ValidationError(error.description)
    }
}

/// A full public key given as 64 hex digits.
func parsePublicKey(_ text: String) throws -> PublicKey {
    guard let key = PublicKey(hex: text) else { throw ValidationError("expected a public key of 64 hex digits, got '\(text)'") }
    return key
}

// MARK: - Values

enum ValueFormat {
    /// Whether bytes read as text on a terminal: valid UTF-8 without control characters other
    /// than newline, tab and carriage return.
    static func printableText(_ bytes: [UInt8]) -> String? {
        guard let text = String(validating: bytes, as: UTF8.self) else { return nil }
        for scalar in text.unicodeScalars where scalar.properties.generalCategory == .control {
            if scalar != "\n" && scalar != "\t" && scalar != "\r" { return nil }
        }
        return text
    }

    /// The JSON fields carrying value bytes. The rule: bytes that are valid UTF-8 go in
    /// `value_utf8` (JSON-escaped); anything else goes in `value_base64` (RFC 4648, padded).
    static func jsonFields(_ bytes: [UInt8]) -> [(String, JSON)] {
        if let text = String(validating: bytes, as: UTF8.self) { return [("value_utf8", .string(text))] }
        return [("value_base64", .string(base64(bytes)))]
    }

    /// The JSON fields for a value lookup: the bytes (see ``jsonFields(_:)``), or
    /// `"purged": true` / `"missing": true`.
    static func jsonFields(_ lookup: ValueLookup) -> [(String, JSON)] {
        switch lookup {
        case .present(let bytes): jsonFields(bytes)
        case .purged: [("purged", .bool(true))]
        case .missing: [("missing", .bool(true))]
        }
    }

    static func state(_ lookup: ValueLookup) -> String {
        switch lookup {
        case .present: "present"
        case .purged: "purged"
        case .missing: "missing"
        }
    }

    static func base64(_ bytes: [UInt8]) -> String { Base64.encode(bytes) }
}

// MARK: - JSON

/// A JSON value whose objects keep their keys in the order they were built, so every line of
/// output has the same, documented key order. Strings are escaped per RFC 8259.
enum JSON: Sendable {
    case null
    case bool(Bool)
    case int(Int64)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])

    static func uint(_ value: UInt64) -> JSON { .int(Int64(clamping: value)) }
    static func optional(_ text: String?) -> JSON { text.map { .string($0) } ?? .null }

    /// Compact, one-line rendering.
    var rendered: String {
        var out = ""
        render(into: &out)
        return out
    }

    private func render(into out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let value): out += value ? "true" : "false"
        case .int(let value): out += String(value)
        case .string(let text): JSON.escape(text, into: &out)
        case .array(let items):
            out += "["
            for (index, item) in items.enumerated() {
                if index > 0 { out += "," }
                item.render(into: &out)
            }
            out += "]"
        case .object(let fields):
            out += "{"
            for (index, (key, value)) in fields.enumerated() {
                if index > 0 { out += "," }
                JSON.escape(key, into: &out)
                out += ":"
                value.render(into: &out)
            }
            out += "}"
        }
    }

    private static func escape(_ text: String, into out: inout String) {
        out += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}

extension OutputStream {
    /// Writes one JSON value as a line (JSON Lines).
    func json(_ value: JSON) throws { try line(value.rendered) }
}

// MARK: - Tables

/// Left-aligned columns separated by two spaces, without trailing spaces.
func formatTable(_ rows: [[String]]) -> [String] {
    guard let columns = rows.map(\.count).max() else { return [] }
    var widths = [Int](repeating: 0, count: columns)
    for row in rows {
        for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) }
    }
    return rows.map { row in
        var line = row.enumerated().map { index, cell in
            index == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[index] - cell.count)
        }.joined(separator: "  ")
        while line.last == " " { line.removeLast() }
        return line
    }
}

/// Quoting of names (buckets, keys) in line-based output, as git quotes paths
/// (`quote_c_style`): a name holding a double quote, a backslash or a control byte is printed
/// between double quotes with C escapes (`\n`, `\t`, `\"`, `\\`, `\033`…); any other name is
/// printed as it is. So one line is always one name, and a name cannot forge output.
enum Quote {
    static func needsQuoting(_ text: String) -> Bool {
        text.utf8.contains { $0 < 0x20 || $0 == 0x7F || $0 == 0x22 || $0 == 0x5C }
    }

    static func cStyle(_ text: String) -> String {
        guard needsQuoting(text) else { return text }
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0x07: out += "\\a"
            case 0x08: out += "\\b"
            case 0x09: out += "\\t"
            case 0x0A: out += "\\n"
            case 0x0B: out += "\\v"
            case 0x0C: out += "\\f"
            case 0x0D: out += "\\r"
            case 0x22: out += "\\\""
            case 0x5C: out += "\\\\"
            case 0..<0x20, 0x7F:
                let octal = String(scalar.value, radix: 8)
                out += "\\" + String(repeating: "0", count: 3 - octal.count) + octal
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// `bucket/key`, quoted as one name when either part needs it.
    static func path(_ bucket: String, _ key: String) -> String { cStyle("\(bucket)/\(key)") }
}
