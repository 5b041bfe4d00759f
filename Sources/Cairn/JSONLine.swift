/// One JSON text built byte by byte; objects keep the order their keys are written in. Shared
/// by `cairn tail` and the HTTP API, which must write the same bytes for the same change.
package struct JSONLine {
    package var bytes: [UInt8] = []
    private var needsComma = false
    private static let hexDigits = Array("0123456789abcdef".utf8)

    package init() {}

    package mutating func open() { bytes.append(UInt8(ascii: "{")); needsComma = false }
    package mutating func close() { bytes.append(UInt8(ascii: "}")); needsComma = true }
    package mutating func newline() { bytes.append(0x0A); needsComma = false }

    package mutating func key(_ name: String) {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
        string(name)
        bytes.append(UInt8(ascii: ":"))
        needsComma = false
    }

    package mutating func null() { bytes.append(contentsOf: "null".utf8); needsComma = true }
    package mutating func bool(_ value: Bool) { bytes.append(contentsOf: (value ? "true" : "false").utf8); needsComma = true }
    package mutating func raw(_ json: String) { bytes.append(contentsOf: json.utf8); needsComma = true }
    package mutating func optional(_ text: String?) { if let text { string(text) } else { null() } }

    /// A decimal integer, without an intermediate string.
    package mutating func int(_ value: Int64) {
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes of scratch, filled from the end
        withUnsafeMutableBytes(of: &digits) { buffer in
            var start = buffer.count
            repeat {
                start -= 1
                buffer[start] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[start...]))
        }
        needsComma = true
    }

    /// Bytes as a quoted lower-case hex string (ids, keys, digests).
    package mutating func hex(_ data: [UInt8]) {
        let start = bytes.count
        bytes.append(contentsOf: repeatElement(UInt8(ascii: "\""), count: data.count * 2 + 2))
        bytes.withUnsafeMutableBufferPointer { out in
            var index = start + 1
            for byte in data {
                out[index] = JSONLine.hexDigits[Int(byte >> 4)]
                out[index + 1] = JSONLine.hexDigits[Int(byte & 0x0f)]
                index += 2
            }
        }
        needsComma = true
    }

    /// An array of `items`, each written by `element`.
    package mutating func array<Item>(_ items: some Sequence<Item>, _ element: (inout JSONLine, Item) -> Void) {
        bytes.append(UInt8(ascii: "["))
        for (index, item) in items.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            element(&self, item)
        }
        bytes.append(UInt8(ascii: "]"))
        needsComma = true
    }

    package mutating func hexArray(_ items: [[UInt8]]) { array(items) { $0.hex($1) } }

    /// A string, escaped per RFC 8259: copied as it is unless it holds a character to escape.
    package mutating func string(_ text: String) {
        var text = text
        let plain = text.withUTF8 { utf8 in
            guard !utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C || $0 == 0x7F }) else { return false }
            bytes.append(UInt8(ascii: "\""))
            bytes.append(contentsOf: utf8)
            bytes.append(UInt8(ascii: "\""))
            return true
        }
        if plain { needsComma = true } else { escaped(text) }
    }

    /// A string, escaped per RFC 8259 (control characters and DEL as `\u00XX`).
    private mutating func escaped(_ text: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [0x5C, 0x22])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: bytes.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: bytes.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x09: bytes.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0x08: bytes.append(contentsOf: [0x5C, UInt8(ascii: "b")])
            case 0x0C: bytes.append(contentsOf: [0x5C, UInt8(ascii: "f")])
            case 0..<0x20, 0x7F:
                bytes.append(contentsOf: Array("\\u00".utf8))
                bytes.append(JSONLine.hexDigits[Int(byte >> 4)])
                bytes.append(JSONLine.hexDigits[Int(byte & 0x0f)])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
        needsComma = true
    }
}
