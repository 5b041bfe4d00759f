import CairnCore
import CairnStore
import Cairn
import Foundation
import Testing

/// Through the library API, keys are byte strings: a NUL inside a key and canonically
/// equivalent spellings name different keys (docs/entry-format.md §2.1).
@Suite struct KeyBytesTests {
    @Test func getAndListKeepNULAndEquivalentKeysApart() async throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try CairnLog.create(at: path, name: "bytes")
        let keys = ["a\0x", "a\0y", "a", "\u{e9}", "e\u{301}"]
        for key in keys { _ = try await log.put("b", key, Array(key.utf8)) }
        for key in keys {
            #expect(try await log.get("b", key) == Array(key.utf8), "\(Array(key.utf8))")
        }
        #expect(try await log.get("b", "a\0z") == nil)
        let listed = try await log.list("b").map { Array($0.key.utf8) }
        #expect(listed == keys.map { Array($0.utf8) }.sorted { $0.lexicographicallyPrecedes($1) })
        _ = try await log.delete("b", "e\u{301}")
        #expect(try await log.get("b", "\u{e9}") == Array("\u{e9}".utf8))
        #expect(try await log.get("b", "e\u{301}") == nil)
        let report = try await log.verify()
        #expect(report.isClean, "\(report.problems)")
    }
}
