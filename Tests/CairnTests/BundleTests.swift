import Cairn
import Foundation
import Testing

@Suite struct BundleTests {
    /// A log with a few writes, exported; returns the log, its bundle path and the paths to clean.
    func exported(writes: Int = 20) async throws -> (CairnLog, String, [String]) {
        let source = temporaryPath("src")
        let log = try CairnLog.create(at: source, name: "bundles")
        try await log.write((0..<writes).map { .put(bucket: "b", key: "k\($0)", value: [UInt8($0 % 256)]) })
        let bundle = source + ".bundle"
        #expect(try await log.exportBundle(to: bundle) == writes + 1)
        return (log, bundle, [source, bundle])
    }

    @Test func exportThenImportReproducesTheLog() async throws {
        let (log, bundle, cleanup) = try await exported()
        let target = temporaryPath("dst")
        defer { for p in cleanup + [target] { try? FileManager.default.removeItem(atPath: p) } }
        let node = try CairnLog.join(at: target, genesis: try await log.genesis)
        let report = try await node.importBundle(from: bundle)
        #expect(report.entries == 21 && report.applied == 20 && report.duplicates == 1)
        #expect(try await node.heads() == log.heads())
        #expect(try await node.get("b", "k7") == [7])
        #expect(try await node.verify().isClean)
        // Importing again changes nothing.
        #expect(try await node.importBundle(from: bundle).applied == 0)
    }

    /// Every corruption is refused with a clear error and leaves the target untouched.
    @Test(arguments: ["flip", "truncate", "append", "magic"])
    func aCorruptBundleIsRefusedAndNothingIsApplied(corruption: String) async throws {
        let (log, bundle, cleanup) = try await exported()
        let target = temporaryPath("dst")
        defer { for p in cleanup + [target] { try? FileManager.default.removeItem(atPath: p) } }
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: bundle)))
        switch corruption {
        case "flip": bytes[bytes.count / 2] ^= 0x20
        case "truncate": bytes.removeLast(40)
        case "append": bytes.append(0)
        default: bytes[0] = UInt8(ascii: "X")
        }
        try Data(bytes).write(to: URL(fileURLWithPath: bundle))
        let node = try CairnLog.join(at: target, genesis: try await log.genesis)
        await #expect(throws: BundleError.self) { try await node.importBundle(from: bundle) }
        #expect(try await node.counts().entries == 1)
    }

    @Test func aBundleOfAnotherLogIsRefused() async throws {
        let (_, bundle, cleanup) = try await exported()
        let other = temporaryPath("other")
        defer { for p in cleanup + [other] { try? FileManager.default.removeItem(atPath: p) } }
        let log = try CairnLog.create(at: other, name: "other")
        await #expect(throws: BundleError.self) { try await log.importBundle(from: bundle) }
    }

    @Test func oneRefusedEntryRollsTheWholeImportBack() async throws {
        let (admin, _, cleanup) = try await exported(writes: 2)
        let bobPath = temporaryPath("bob")
        let bundle = bobPath + ".bundle"
        defer { for p in cleanup + [bobPath, bundle] { try? FileManager.default.removeItem(atPath: p) } }
        let bob = try await secondNode(of: admin, at: bobPath)
        let early = try await bob.put("b", "early", [1])        // valid
        _ = try await bob.put("b", "late", [2])                 // its value is tampered with below
        try await bob.exportBundle(to: bundle)
        // The last record's value byte sits just before the trailer (tag, count, checksum: 41
        // bytes). Changing it and re-sealing the checksum leaves the framing intact: only the
        // entry check (value against the signed digest) can refuse it.
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: bundle)))
        bytes[bytes.count - 42] ^= 0xFF
        bytes.replaceSubrange((bytes.count - 32)..., with: Blake2b.hash256(Array(bytes.dropLast(32))).bytes)
        try Data(bytes).write(to: URL(fileURLWithPath: bundle))
        let before = try await admin.counts().entries
        await #expect(throws: BundleError.self) { try await admin.importBundle(from: bundle) }
        #expect(try await admin.counts().entries == before)
        #expect(try await admin.entry(early.id) == nil, "the valid entry was rolled back with the refused one")
        #expect(try await admin.verify().isClean)
    }
}
