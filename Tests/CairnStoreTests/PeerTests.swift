import CairnCore
import CairnSQLite
import CairnStore
import Foundation
import Testing

@Suite struct PeerTests {
    @Test func peerListAddUpsertRemove() throws {
        let log = TestLog()
        defer { log.cleanup() }
        let node = try log.node()
        #expect(try node.peers().isEmpty)
        try node.addPeer(PeerAddress(address: "Node-B.example:07401"))
        try node.addPeer(PeerAddress(address: "[::1]:7402", identity: key(2).publicKey))
        try node.addPeer(PeerAddress(address: "10.0.0.3:7401"))
        #expect(try node.peers() == [
            PeerAddress(address: "10.0.0.3:7401"),
            PeerAddress(address: "[::1]:7402", identity: key(2).publicKey),
            PeerAddress(address: "node-b.example:7401"),
        ])
        // Same address (however typed): the identity is replaced, no second row.
        try node.addPeer(PeerAddress(address: "node-b.EXAMPLE:7401", identity: key(3).publicKey))
        try node.addPeer(PeerAddress(address: "[::1]:7402"))
        #expect(try node.peers().count == 3)
        #expect(try node.peers().first { $0.address == "node-b.example:7401" }?.identity == key(3).publicKey)
        #expect(try node.peers().first { $0.address == "[::1]:7402" }?.identity == nil)

        #expect(try node.removePeer(address: "NODE-B.example:7401"))
        #expect(try !node.removePeer(address: "node-b.example:7401"))
        #expect(try node.peers().map(\.address) == ["10.0.0.3:7401", "[::1]:7402"])
        #expect(throws: PeerAddressError.missingPort("nowhere")) { try node.addPeer(PeerAddress(address: "nowhere")) }
        #expect(try node.peers().count == 2)
    }

    @Test(arguments: [
        ("localhost:7401", "localhost:7401"), ("EXAMPLE.com:80", "example.com:80"), ("10.1.2.3:00443", "10.1.2.3:443"),
        ("[::1]:7401", "[::1]:7401"), ("[FE80::1:2]:1", "[fe80::1:2]:1"), ("[::ffff:10.0.0.1]:65535", "[::ffff:10.0.0.1]:65535"),
        ("my_host-1.local:7401", "my_host-1.local:7401"),
    ])
    func validAddressesAreNormalized(_ input: String, _ normalized: String) throws {
        #expect(try PeerAddress.normalized(input) == normalized)
    }

    @Test(arguments: [
        ("localhost", PeerAddressError.missingPort("localhost")),
        ("host:", .badPort("host:")), ("host:0", .badPort("host:0")), ("host:65536", .badPort("host:65536")),
        ("host:-1", .badPort("host:-1")), ("host:+80", .badPort("host:+80")), ("host:123456", .badPort("host:123456")),
        ("host:7401 ", .badPort("host:7401 ")), (":7401", .badHost(":7401")), ("::1:7401", .badHost("::1:7401")),
        ("[]:7401", .badHost("[]:7401")), ("[not-v6]:7401", .badHost("[not-v6]:7401")), ("ho st:7401", .badHost("ho st:7401")),
        ("hôst:7401", .badHost("hôst:7401")), ("a/b:7401", .badHost("a/b:7401")),
        (String(repeating: "a", count: 260) + ":1", .tooLong(String(repeating: "a", count: 260) + ":1")),
    ])
    func invalidAddressesAreRefused(_ input: String, _ error: PeerAddressError) {
        #expect(throws: error) { try PeerAddress.normalized(input) }
    }

    @Test func componentsSplitHostAndPort() throws {
        let v6 = try PeerAddress.components(of: "[::1]:7401")
        #expect(v6.host == "::1" && v6.port == 7401)
        let name = try PeerAddress.components(of: "node:9")
        #expect(name.host == "node" && name.port == 9)
    }

    @Test func peerStatusUpsertByIdentity() throws {
        let log = TestLog()
        defer { log.cleanup() }
        let node = try log.node()
        let fresh = PeerStatus(identity: key(5).publicKey, address: "10.0.0.5:53100", state: "connected")
        try node.savePeerStatus(fresh)
        #expect(try node.peerStatus(identity: key(5).publicKey) == fresh)
        #expect(fresh.entriesSent == 0 && fresh.lastSyncMilliseconds == nil && fresh.headsHLC == nil)

        var full = fresh
        full.address = "[::1]:7401"
        full.state = "disconnected"
        full.lastConnectedMilliseconds = 1_763_700_000_000
        full.lastSyncMilliseconds = UInt64.max  // stored as a signed integer: must come back intact
        full.headsHLC = HLC(wallMilliseconds: 1_763_700_000_500, counter: 3)
        full.entriesSent = 10
        full.entriesReceived = 20
        full.entriesRejected = 1
        full.lastError = "handshake failed: bad PSK"
        try node.savePeerStatus(full)
        #expect(try node.peerStatus(identity: key(5).publicKey) == full)

        let other = PeerStatus(identity: key(4).publicKey, address: "node-d:7401", state: "connecting")
        try node.savePeerStatus(other)
        #expect(try node.peerStatuses() == [other, full].sorted { $0.identity < $1.identity })
        #expect(try node.peerStatus(identity: key(9).publicKey) == nil)
        // Clearing optionals clears them in the row too.
        try node.savePeerStatus(fresh)
        #expect(try node.peerStatus(identity: key(5).publicKey) == fresh)
    }

    /// Lag is this node's: how long it has lacked the oldest entry it knows the peer holds; 0
    /// when it lacks nothing, whatever the heads' times.
    @Test func lagIsTheAgeOfTheOldestEntryThisNodeLacks() throws {
        var status = PeerStatus(identity: key(5).publicKey, address: "a:1", state: "connected")
        #expect(status.lagMilliseconds(now: 10_000) == nil)
        status.headsHLC = HLC(wallMilliseconds: 1_000, counter: 0)
        status.lagEntries = 0
        #expect(status.lagMilliseconds(now: 10_000) == 0)
        status.lagEntries = 53_000
        status.lagOldestMilliseconds = 7_500
        #expect(status.lagMilliseconds(now: 10_000) == 2_500)
        #expect(status.lagMilliseconds(now: 7_000) == 0)
        // Stored and read back, with whether the count is only a lower bound.
        status.lagIsLowerBound = true
        let log = TestLog()
        defer { log.cleanup() }
        let node = try log.node()
        try node.savePeerStatus(status)
        #expect(try node.peerStatus(identity: status.identity) == status)
    }

    @Test func aVersionOneFileGainsThePeerTablesOnOpen() throws {
        let log = TestLog()
        defer { log.cleanup() }
        let path = log.directory.appendingPathComponent("old.db").path
        let heads: [Head]
        do {
            let node = try LogStore.create(path: path, genesis: log.genesis, options: log.options)
            heads = try node.heads()
        }
        // Make it what schema version 1 wrote: no peer tables.
        do {
            let db = try Database(path: path, mode: .readWrite)
            try db.execute("DROP TABLE peers; DROP TABLE peer_status; DROP TABLE writers; DROP TABLE changes; DROP TABLE merge_defeats; UPDATE meta SET value = 1 WHERE name = 'schema_version'")
        }
        // A read-only connection reads it as it is.
        #expect(try LogStore.open(path: path, options: log.options, readOnly: true).heads() == heads)
        #expect(try schemaVersion(path) == 1)
        // A read-write open migrates it, keeping everything.
        let reopened = try LogStore.open(path: path, options: log.options)
        #expect(try schemaVersion(path) == 5)
        #expect(try reopened.heads() == heads)
        #expect(try reopened.writers().map(\.key) == [log.admin.publicKey], "the writer set is derived on migration")
        #expect(try reopened.peers().isEmpty)
        try reopened.addPeer(PeerAddress(address: "node:7401"))
        try reopened.savePeerStatus(PeerStatus(identity: key(2).publicKey, address: "node:7401", state: "connected"))
        #expect(try LogStore.open(path: path, options: log.options).peers().map(\.address) == ["node:7401"])
    }

    @Test func aNewerFileIsRefused() throws {
        let log = TestLog()
        defer { log.cleanup() }
        let path = log.directory.appendingPathComponent("new.db").path
        _ = try LogStore.create(path: path, genesis: log.genesis, options: log.options)
        try Database(path: path, mode: .readWrite).execute("UPDATE meta SET value = 6 WHERE name = 'schema_version'")
        #expect(throws: StoreError.unsupportedSchema(found: 6, expected: 5)) { try LogStore.open(path: path) }
    }

    private func schemaVersion(_ path: String) throws -> Int64 {
        let db = try Database(path: path, mode: .readOnly)
        let statement = try db.prepare("SELECT value FROM meta WHERE name = 'schema_version'")
        return try statement.step() ? statement.int64(0) : 0
    }
}
