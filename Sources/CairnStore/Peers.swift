import CairnCore
import CairnSQLite

/// A node this node dials: `host:port`, and optionally the node key it must present.
public struct PeerAddress: Sendable, Hashable {
    /// `host:port`, or `[v6]:port` for an IPv6 address. ``LogStore/addPeer(_:)`` stores it
    /// normalized (see ``normalized(_:)``).
    public var address: String
    /// The peer's pinned Ed25519 node key; `nil` accepts any node that holds the network secret.
    public var identity: PublicKey?

    public init(address: String, identity: PublicKey? = nil) {
        self.address = address
        self.identity = identity
    }

    /// Splits `host:port` (`[v6]:port` for IPv6) into the host, without brackets, and the port.
    public static func components(of address: String) throws(PeerAddressError) -> (host: String, port: Int) {
        guard address.utf8.count <= 255 else { throw .tooLong(address) }
        guard let colon = address.lastIndex(of: ":") else { throw .missingPort(address) }
        let host = try validHost(String(address[..<colon]), in: address)
        let portText = address[address.index(after: colon)...]
        guard !portText.isEmpty, portText.count <= 5, portText.allSatisfy({ $0.isASCII && $0.isNumber }), let port = Int(portText),
            (1...65535).contains(port)
        else { throw .badPort(address) }
        return (host, port)
    }

    /// The canonical form of an address: host in lowercase, port without leading zeros, so one
    /// peer is one row however it was typed.
    public static func normalized(_ address: String) throws(PeerAddressError) -> String {
        let (host, port) = try components(of: address)
        return (host.contains(":") ? "[\(host)]" : host) + ":\(port)"
    }

    /// The host part, lowercased: a DNS name or IPv4 address, or a bracketed IPv6 address
    /// (returned without its brackets). An unbracketed colon is refused: `::1:7401` is ambiguous.
    private static func validHost(_ text: String, in address: String) throws(PeerAddressError) -> String {
        let host = text.lowercased()
        if host.hasPrefix("[") && host.hasSuffix("]") && host.count > 2 {
            let inner = host.dropFirst().dropLast()
            guard inner.contains(":"), inner.allSatisfy({ $0.isASCII && ($0.isHexDigit || $0 == ":" || $0 == ".") }) else {
                throw .badHost(address)
            }
            return String(inner)
        }
        guard !host.isEmpty, host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-._".contains($0)) }) else {
            throw .badHost(address)
        }
        return host
    }
}

/// Why a peer address is not `host:port`.
public enum PeerAddressError: Error, Equatable, CustomStringConvertible {
    /// No `:port` at the end.
    case missingPort(String)
    /// The port is not a number from 1 to 65535.
    case badPort(String)
    /// The host is empty, has characters a host name cannot, or is IPv6 without brackets.
    case badHost(String)
    /// Longer than 255 bytes.
    case tooLong(String)

    public var description: String {
        switch self {
        case .missingPort(let address): "peer address '\(address)' has no port (expected HOST:PORT)"
        case .badPort(let address): "peer address '\(address)' has a bad port (expected 1 to 65535)"
        case .badHost(let address): "peer address '\(address)' has a bad host (expected a name, IPv4, or [IPv6] address)"
        case .tooLong(let address): "peer address '\(address.prefix(40))…' is longer than 255 bytes"
        }
    }
}

/// What the sync service last knew of a peer, keyed by the peer's node key.
public struct PeerStatus: Sendable, Equatable {
    /// The peer's node key (the primary key).
    public var identity: PublicKey
    /// Where it was reached, or where it connected from.
    public var address: String
    /// `connected`, `disconnected`, … (the sync service's vocabulary).
    public var state: String
    /// When a session last opened (wall-clock milliseconds).
    public var lastConnectedMilliseconds: UInt64?
    /// When a sync with it last completed (wall-clock milliseconds).
    public var lastSyncMilliseconds: UInt64?
    /// The newest HLC among the heads it last advertised.
    public var headsHLC: HLC?
    public var entriesSent: Int64
    public var entriesReceived: Int64
    public var entriesRejected: Int64
    /// The last error of a session with it, if any.
    public var lastError: String?
    /// How far this node is behind the peer, as last measured (every heads exchange, fetch
    /// batch, push and reconciliation round): entries the peer holds that this node lacks, as
    /// learned from its heads (a lower bound while a delta fetch runs) or a reconciliation
    /// round's `need` (exact); `nil` before the first measurement.
    public var lagEntries: Int64?
    /// Whether ``lagEntries`` is only a lower bound (the peer's unknown heads, while a delta
    /// fetch runs) rather than an exact count (a reconciliation round's `need`).
    public var lagIsLowerBound = false
    /// The HLC wall time (ms) of the oldest entry this node is known to lack from the peer;
    /// `nil` when it lacks none (or the age is not known).
    public var lagOldestMilliseconds: UInt64?

    /// A status with zero counters and nothing known yet.
    public init(identity: PublicKey, address: String, state: String) {
        self.identity = identity
        self.address = address
        self.state = state
        self.entriesSent = 0
        self.entriesReceived = 0
        self.entriesRejected = 0
    }

    /// How long this node has been behind the peer at `now` (wall-clock ms): the age of the
    /// oldest entry it lacks, 0 when it lacks none, `nil` before the first measurement.
    public func lagMilliseconds(now: UInt64) -> UInt64? {
        guard let lagEntries else { return nil }
        guard lagEntries > 0, let oldest = lagOldestMilliseconds else { return 0 }
        return now > oldest ? now - oldest : 0
    }
}

extension LogStore {
    // MARK: - Peer list

    /// Adds `peer` to the peer list, or replaces the pinned identity of the same address.
    /// The address is validated and stored normalized.
    public func addPeer(_ peer: PeerAddress) throws {
        let address = try PeerAddress.normalized(peer.address)
        try database.writeTransaction {
            try database.prepare(Schema.upsertPeer).bind(.text(address), peer.identity.map { .blob($0.bytes) } ?? .null).run()
        }
    }

    /// Removes the peer with this address; returns whether it was in the list.
    public func removePeer(address: String) throws -> Bool {
        let address = try PeerAddress.normalized(address)
        return try database.writeTransaction {
            try database.prepare(Schema.deletePeer).bind(.text(address)).run()
            return database.changes > 0
        }
    }

    /// The peer list, by address.
    public func peers() throws -> [PeerAddress] {
        try database.readTransaction {
            let statement = try database.prepare(Schema.peers)
            var out: [PeerAddress] = []
            while try statement.step() {
                out.append(PeerAddress(address: try statement.string(0, "peers"), identity: statement.blob(1).flatMap(PublicKey.init(bytes:))))
            }
            return out
        }
    }

    // MARK: - Peer status

    /// Records what is known of a peer, replacing the previous record for its identity.
    public func savePeerStatus(_ status: PeerStatus) throws {
        let values: [SQLiteValue] = [
            .blob(status.identity.bytes), .text(status.address), .text(status.state),
            optionalInteger(status.lastConnectedMilliseconds), optionalInteger(status.lastSyncMilliseconds),
            optionalInteger(status.headsHLC?.rawValue), .int(status.entriesSent), .int(status.entriesReceived),
            .int(status.entriesRejected), status.lastError.map { .text($0) } ?? .null,
            status.lagEntries.map { .int($0) } ?? .null, optionalInteger(status.lagOldestMilliseconds),
            .int(status.lagIsLowerBound ? 1 : 0),
        ]
        try database.writeTransaction { try database.prepare(Schema.upsertPeerStatus).bind(values).run() }
    }

    /// Every peer status, by identity.
    public func peerStatuses() throws -> [PeerStatus] {
        try database.readTransaction {
            let statement = try database.prepare(Schema.peerStatuses)
            var out: [PeerStatus] = []
            while try statement.step() { out.append(try peerStatus(statement)) }
            return out
        }
    }

    /// The status of the peer with this node key, if one was saved.
    public func peerStatus(identity: PublicKey) throws -> PeerStatus? {
        try database.readTransaction {
            let statement = try database.prepare(Schema.peerStatusByIdentity).bind(.blob(identity.bytes))
            return try statement.step() ? try peerStatus(statement) : nil
        }
    }

    /// A row in ``Schema/peerStatusColumns`` order.
    private func peerStatus(_ s: Statement) throws -> PeerStatus {
        func optional(_ index: Int32) -> UInt64? { s.isNull(index) ? nil : UInt64(bitPattern: s.int64(index)) }
        var status = PeerStatus(identity: try s.publicKey(0, "peer_status"), address: try s.string(1, "peer_status"), state: try s.string(2, "peer_status"))
        status.lastConnectedMilliseconds = optional(3)
        status.lastSyncMilliseconds = optional(4)
        status.headsHLC = optional(5).map(HLC.init(rawValue:))
        status.entriesSent = s.int64(6)
        status.entriesReceived = s.int64(7)
        status.entriesRejected = s.int64(8)
        status.lastError = s.text(9)
        status.lagEntries = s.isNull(10) ? nil : s.int64(10)
        status.lagOldestMilliseconds = optional(11)
        status.lagIsLowerBound = s.int64(12) != 0
        return status
    }

    private func optionalInteger(_ value: UInt64?) -> SQLiteValue {
        value.map { .int(Int64(bitPattern: $0)) } ?? .null
    }

    // MARK: - Entries each peer was known to hold

    /// Records the entries `identity` was last known to hold (ids with their HLCs, at most 8),
    /// in its `peer_status` row (written first by ``savePeerStatus(_:)``).
    public func savePeerHeld(_ tips: [(id: Hash32, hlc: HLC)], by identity: PublicKey) throws {
        var bytes: [UInt8] = []
        for tip in tips.prefix(Self.maxHeldTips) {
            bytes += tip.id.bytes
            withUnsafeBytes(of: tip.hlc.rawValue.bigEndian) { bytes += $0 }
        }
        try database.writeTransaction {
            try database.prepare(Schema.savePeerHeld).bind(.blob(identity.bytes), .blob(bytes)).run()
        }
    }

    /// The entries `identity` was last known to hold; empty if none was recorded. A malformed
    /// record (this node's own file, not a peer's input) reads as none.
    public func peerHeld(by identity: PublicKey) throws -> [(id: Hash32, hlc: HLC)] {
        try database.readTransaction {
            let statement = try database.prepare(Schema.peerHeld).bind(.blob(identity.bytes))
            guard try statement.step(), let bytes = statement.blob(0), bytes.count % 40 == 0, bytes.count <= 40 * Self.maxHeldTips else { return [] }
            return stride(from: 0, to: bytes.count, by: 40).compactMap { offset in
                guard let id = Hash32(bytes: Array(bytes[offset..<offset + 32])) else { return nil }
                let hlc = bytes[offset + 32..<offset + 40].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                return (id, HLC(rawValue: hlc))
            }
        }
    }

    private static var maxHeldTips: Int { 8 }
}
