import CairnCore
import CairnStore
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
        await expectFailure(of: BundleError.self) { try await node.importBundle(from: bundle) }
        #expect(try await node.counts().entries == 1)
    }

    @Test func aBundleOfAnotherLogIsRefused() async throws {
        let (_, bundle, cleanup) = try await exported()
        let other = temporaryPath("other")
        defer { for p in cleanup + [other] { try? FileManager.default.removeItem(atPath: p) } }
        let log = try CairnLog.create(at: other, name: "other")
        await expectFailure(of: BundleError.self) { try await log.importBundle(from: bundle) }
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
        await expectFailure(of: BundleError.self) { try await admin.importBundle(from: bundle) }
        #expect(try await admin.counts().entries == before)
        #expect(try await admin.entry(early.id) == nil, "the valid entry was rolled back with the refused one")
        #expect(try await admin.verify().isClean)
    }
}

/// Bundles rebuilt record by record, to make bundles whose framing and checksum are intact but
/// whose entries the log must refuse.
enum BundleSurgery {
    static let headerBytes = 8 + 1 + 32

    /// The header and each record's bytes (tag included) of a bundle file.
    static func records(of path: String) throws -> (header: [UInt8], records: [[UInt8]]) {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        var records: [[UInt8]] = []
        var at = headerBytes
        func u32(_ offset: Int) -> Int { bytes[offset..<offset + 4].reduce(0) { $0 << 8 | Int($1) } }
        while bytes[at] == 1 {
            var end = at + 1 + 4 + u32(at + 1) + 64
            if bytes[end] == 1 { end += 1 + 4 + u32(end + 1) } else { end += 1 }
            records.append(Array(bytes[at..<end]))
            at = end
        }
        return (Array(bytes[..<headerBytes]), records)
    }

    /// A well-formed bundle of these records: count and checksum sealed.
    static func write(header: [UInt8], records: [[UInt8]], to path: String) throws {
        var bytes = header + records.flatMap { $0 } + [0]
        bytes += (0..<8).reversed().map { UInt8(truncatingIfNeeded: UInt64(records.count) >> (8 * $0)) }
        bytes += Blake2b.hash256(bytes).bytes
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }
}

@Suite struct BundleImportInChunksTests {
    /// Only the last entry is wrong — its parent is left out of the bundle, or its signature is
    /// damaged — so an import that applied as it went would keep everything before it.
    @Test(arguments: ["unknown parent", "bad signature"])
    func oneRefusedEntryAtTheEndAppliesNothing(damage: String) async throws {
        let source = temporaryPath("src"), target = temporaryPath("dst")
        let bundle = source + ".bundle"
        defer { for p in [source, target, bundle] { try? FileManager.default.removeItem(atPath: p) } }
        let log = try CairnLog.create(at: source, name: "refusal")
        for i in 0..<30 { try await log.put("b", "k\(i)", [UInt8(i)]) }  // a chain: each put's parent is the one before
        try await log.exportBundle(to: bundle)
        var (header, records) = try BundleSurgery.records(of: bundle)
        #expect(records.count == 31)
        if damage == "unknown parent" {
            records.remove(at: records.count - 2)
        } else {
            let last = records.count - 1
            let bodyLength = records[last][1..<5].reduce(0) { $0 << 8 | Int($1) }
            records[last][1 + 4 + bodyLength + 10] ^= 0x01
        }
        try BundleSurgery.write(header: header, records: records, to: bundle)

        let node = try CairnLog.join(at: target, genesis: try await log.genesis)
        await #expect {
            try await node.importBundle(from: bundle, batchSize: 4)
        } throws: { error in
            guard case BundleError.rejected(let list, let total)? = (error as? CairnError)?.underlying as? BundleError, total == 1, let first = list.first else { return false }
            return first.index == records.count - 1
                && (damage == "unknown parent" ? "\(first.reason)".contains("neither earlier in the bundle") : first.reason == .rejected(.badSignature))
        }
        #expect(try await node.counts().entries == 1, "entries before the refused one were applied")
        #expect(try await node.verify().isClean)
    }

    /// An import stopped between two chunks (as by a crash) keeps a parents-first prefix;
    /// importing the bundle again completes it.
    @Test func anInterruptedImportIsCompletedByImportingAgain() async throws {
        struct Stop: Error {}
        let source = temporaryPath("src"), target = temporaryPath("dst")
        let bundle = source + ".bundle"
        defer { for p in [source, target, bundle] { try? FileManager.default.removeItem(atPath: p) } }
        let log = try CairnLog.create(at: source, name: "resume")
        try await log.write((0..<50).map { .put(bucket: "b", key: "k\($0)", value: [UInt8($0)]) })
        try await log.exportBundle(to: bundle)
        let node = try CairnLog.join(at: target, genesis: try await log.genesis)
        var chunks = 0
        await expectFailure(of: Stop.self) {
            try await node.importBundle(from: bundle, batchSize: 10) { progress in
                chunks += 1
                #expect(progress.total == 51 && progress.done == 10 * chunks)
                if chunks == 2 { throw Stop() }
            }
        }
        #expect(try await node.counts().entries == 20)
        #expect(try await node.verify().isClean)
        let report = try await node.importBundle(from: bundle, batchSize: 10)
        #expect(report.entries == 51 && report.applied == 31 && report.duplicates == 20)
        #expect(try await node.heads() == log.heads())
        #expect(try await node.get("b", "k49") == [49])
        #expect(try await node.verify().isClean)
    }
}
