import CairnTestSupport
import CairnCore
import Foundation
import Testing

// Helpers shared by the CairnCore tests.

/// The package root, found from this file's path (`Tests/CairnCoreTests/CoreTestSupport.swift`).
let corePackageRoot: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent()  // CairnCoreTests
    .deletingLastPathComponent()  // Tests
    .deletingLastPathComponent()  // package root

/// `Fixtures/entries/vectors.json`.
let entryVectorsURL: URL = corePackageRoot.appendingPathComponent("Fixtures/entries/vectors.json")

/// Bytes from hex; traps on malformed hex (fixture and test-literal use only).
func bytes(hex: String) -> [UInt8] {
    guard let bytes = Hex.decode(hex) else { preconditionFailure("bad hex: \(hex.prefix(40))") }
    return bytes
}

func hash32(_ hex: String) -> Hash32 {
    guard let hash = Hash32(hex: hex) else { preconditionFailure("bad hash hex: \(hex)") }
    return hash
}


/// Deterministic test keys: seed = 32 copies of `byte`.
func testKey(_ byte: UInt8) -> SigningKey {
    SigningKey(seed: [UInt8](repeating: byte, count: 32))!
}

// MARK: - Errors as data

/// The case name of an error: the `kind` used in the vectors file and in docs/entry-format.md.
/// A `switch`, so a new `EntryFormatError` case fails to compile until it is named here (and
/// then `everyErrorIsReachableFromBytes` demands a way to reach it).
func errorKind(_ error: EntryFormatError) -> String {
    switch error {
    case .truncated: "truncated"
    case .trailingBytes: "trailingBytes"
    case .bodyTooLarge: "bodyTooLarge"
    case .unsupportedVersion: "unsupportedVersion"
    case .unknownKind: "unknownKind"
    case .invalidHLC: "invalidHLC"
    case .tooManyParents: "tooManyParents"
    case .parentsNotSortedUnique: "parentsNotSortedUnique"
    case .genesisHasParents: "genesisHasParents"
    case .missingParents: "missingParents"
    case .invalidText: "invalidText"
    case .valueTooLarge: "valueTooLarge"
    case .unknownRole: "unknownRole"
    case .writersNotSortedUnique: "writersNotSortedUnique"
    case .genesisAuthorNotAdmin: "genesisAuthorNotAdmin"
    case .decisionsNotSortedUnique: "decisionsNotSortedUnique"
    case .losersInvalid: "losersInvalid"
    case .badSignatureLength: "badSignatureLength"
    }
}

/// Every error kind, in declaration order.
let allErrorKinds = [
    "truncated", "trailingBytes", "bodyTooLarge", "unsupportedVersion", "unknownKind", "invalidHLC",
    "tooManyParents", "parentsNotSortedUnique", "genesisHasParents", "missingParents", "invalidText",
    "valueTooLarge", "unknownRole", "writersNotSortedUnique", "genesisAuthorNotAdmin",
    "decisionsNotSortedUnique", "losersInvalid", "badSignatureLength",
]

/// An error as the vectors file records it: its kind plus its associated values.
func errorJSON(_ error: EntryFormatError) -> JSONValue {
    var fields: [(String, JSONValue)] = [("kind", .string(errorKind(error)))]
    switch error {
    case .truncated(let field): fields.append(("field", .string(field)))
    case .trailingBytes(let count): fields.append(("count", .int(Int64(count))))
    case .bodyTooLarge(let n): fields.append(("bytes", .int(Int64(n))))
    case .unsupportedVersion(let v): fields.append(("version", .int(Int64(v))))
    case .unknownKind(let k): fields.append(("code", .int(Int64(k))))
    case .invalidHLC(let v): fields.append(("value", .string(String(v))))
    case .tooManyParents(let n): fields.append(("count", .int(Int64(n))))
    case .invalidText(let field, let reason):
        fields.append(("field", .string(field)))
        fields.append(("reason", .string(reason)))
    case .valueTooLarge(let n): fields.append(("length", .int(Int64(n))))
    case .unknownRole(let r): fields.append(("code", .int(Int64(r))))
    case .badSignatureLength(let n): fields.append(("count", .int(Int64(n))))
    case .parentsNotSortedUnique, .genesisHasParents, .missingParents, .writersNotSortedUnique,
        .genesisAuthorNotAdmin, .decisionsNotSortedUnique, .losersInvalid:
        break
    }
    return .object(fields)
}

/// Decodes `bytes`, returning the error (or `nil` if they decoded).
func decodeError(_ bytes: [UInt8]) -> EntryFormatError? {
    do {
        _ = try EntryBody.decode(bytes)
        return nil
    } catch {
        return error
    }
}

// MARK: - A JSON writer with ordered keys

/// A JSON value whose objects keep their key order, so the vectors file reads top-down
/// (description first, bytes last) and regenerating it is byte-for-byte deterministic.
indirect enum JSONValue {
    case string(String)
    case int(Int64)
    case bool(Bool)
    case array([JSONValue])
    case object([(String, JSONValue)])

    /// Pretty-printed with two-space indentation; arrays of scalars stay on one line when short.
    func rendered() -> String {
        var out = ""
        write(into: &out, indent: 0)
        return out + "\n"
    }

    private var isScalar: Bool {
        switch self {
        case .string, .int, .bool: true
        case .array, .object: false
        }
    }

    private func write(into out: inout String, indent: Int) {
        let pad = String(repeating: "  ", count: indent)
        let inner = String(repeating: "  ", count: indent + 1)
        switch self {
        case .string(let s): JSONValue.writeString(s, into: &out)
        case .int(let n): out += String(n)
        case .bool(let b): out += b ? "true" : "false"
        case .array(let items):
            if items.isEmpty { out += "[]"; return }
            out += "[\n"
            for (i, item) in items.enumerated() {
                out += inner
                item.write(into: &out, indent: indent + 1)
                out += i == items.count - 1 ? "\n" : ",\n"
            }
            out += pad + "]"
        case .object(let fields):
            if fields.isEmpty { out += "{}"; return }
            out += "{\n"
            for (i, (key, value)) in fields.enumerated() {
                out += inner
                JSONValue.writeString(key, into: &out)
                out += ": "
                value.write(into: &out, indent: indent + 1)
                out += i == fields.count - 1 ? "\n" : ",\n"
            }
            out += pad + "}"
        }
    }

    private static func writeString(_ s: String, into out: inout String) {
        out += "\""
        // Work on scalars so that combining marks are written exactly as they are.
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    out += String(format: "\\u%04x", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}
