import Cairn
import Foundation

func runEngine(in directory: String) async throws {
    let log = try CairnLog.create(at: "\(directory)/manifests", name: "manifests")   // or CairnLog.open(at:); makes parent directories
    try await log.put("tables", "orders", Data("s3://bucket/orders-42".utf8))   // Data or [UInt8]
    let bytes = try await log.get("tables", "orders", as: Data.self)  // nil if absent or deleted; without `as:`, [UInt8]
    var page = try await log.list("tables", prefix: "ord")        // live keys in byte order, at most `limit` (1000) per page
    while let next = page.next { page = try await log.list("tables", prefix: "ord", after: next) }
    try await log.write([.put(bucket: "t", key: "a", value: [1]), .delete(bucket: "tables", key: "orders")])   // one transaction
    let blame = try await log.history("tables", "orders")         // versions, winner, merges that decided
    let entry = try await log.entry(prefix: String(blame.versions[0].entry.id.hex.prefix(6)))   // by id or unique hex prefix
    let heads = try await log.heads()
    let report = try await log.verify()                           // report.problems, report.isClean

    var savedCursor = Cursor.start                                // Codable: store it with what the consumer applied
    for try await change in log.changes(after: savedCursor) {     // follow: true waits for new changes, also other processes'
        print(change.operation, change.cause, change.bucket ?? "-", change.key ?? "-", change.after?.entryID.hex ?? "none")
        savedCursor = change.cursor
    }

    try await log.exportBundle(to: "\(directory)/backup.bundle")
    let node2 = try CairnLog.join(at: "\(directory)/node2", bundle: "\(directory)/backup.bundle", networkSecret: try log.networkSecret())
    try await log.addWriter(node2.nodeKey)                        // admins grant, and revoke, writers
    let token = try await log.invite(address: "10.0.0.1:7401", role: .writer).encoded()   // or join by invite:
    let node3 = try CairnLog.join(at: "\(directory)/node3", invite: try Invite(parsing: token))
    try await node3.addPeer(PeerAddress(address: "10.0.0.2:7401"))   // the peer list; savePeerStatus/peerStatuses for the sync service
    let result = try await node2.insert([RawEntry(entry.entry)])  // a verified batch from a peer: applied, duplicates, orphaned, rejected…
    print(bytes?.count ?? 0, heads.count, report.isClean, result.duplicates, savedCursor)
}
