import Cairn
import CairnTestSupport
import Foundation

/// A log such as an auditor would look at, generated from a seed: three writers on three nodes
/// write keys concurrently and exchange entries now and then (so merges record decisions), and
/// node 0, the admin, revokes node 2 partway, which keeps writing until the revocation reaches
/// it (those entries are inert). Node 0's directory is the one served.
struct AuditTestLog {
    let path: String
    let log: CairnLog
    let seed: UInt64

    /// Makes the log in a new temporary directory (the caller removes `root`).
    static func make(root: String, seed: UInt64, steps: Int = 300) async throws -> AuditTestLog {
        var random = SplitMix64(seed: seed)
        let first = try CairnLog.create(at: root + "/n0", name: "audited")
        let genesis = try await first.genesis
        var nodes = [first]
        for index in 1...2 {
            let node = try CairnLog.join(at: root + "/n\(index)", genesis: genesis)
            try await first.addWriter(node.nodeKey)
            nodes.append(node)
        }
        for node in nodes.dropFirst() { try await copy(from: first, to: node) }

        let revokeAt = steps * 2 / 3
        for step in 0..<steps {
            if step == revokeAt {
                // Node 2 writes on before the revocation reaches it: entries that end up inert.
                try await first.revokeWriter(nodes[2].nodeKey)
                for late in 0..<3 { try await nodes[2].put("config", "late/\(late)", Array("after revocation".utf8)) }
            }
            let actor = Int.random(in: 0..<3, using: &random)
            if Int.random(in: 0..<4, using: &random) > 0 {
                // The revoked node writes until it learns of its revocation; then it may not.
                let bucket = step % 2 == 0 ? "config" : "tables"
                let key = "k\(Int.random(in: 0..<8, using: &random))/v"
                if try await mayWrite(nodes[actor]) { try await nodes[actor].put(bucket, key, Array("v\(step)".utf8)) }
            } else {
                let source = Int.random(in: 0..<3, using: &random)
                if source != actor { try await copy(from: nodes[source], to: nodes[actor]) }
            }
        }
        for node in nodes.dropFirst() { try await copy(from: node, to: first) }
        return AuditTestLog(path: root + "/n0", log: first, seed: seed)
    }

    /// Whether the node's own key may write now, as it knows the writer set.
    private static func mayWrite(_ node: CairnLog) async throws -> Bool {
        try await node.writers().first { $0.key == node.nodeKey }?.status.revokedFrom == nil
    }

    /// Copies every entry (and value) of `source` into `target` through a bundle, as two nodes
    /// exchanging files would (entries `target` holds are duplicates, which change nothing).
    static func copy(from source: CairnLog, to target: CairnLog) async throws {
        let bundle = NSTemporaryDirectory() + "cairn-copy-\(UUID().uuidString).bundle"
        defer { try? FileManager.default.removeItem(atPath: bundle) }
        _ = try await source.exportBundle(to: bundle)
        _ = try await target.importBundle(from: bundle)
    }
}
