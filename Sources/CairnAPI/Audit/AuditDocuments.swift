import Cairn

// The JSON documents of the audit endpoints (docs/openapi.yaml, "audit view paths"). Keys are
// snake_case (the encoder converts); ids and keys are lowercase hex; times are ISO-8601 UTC with
// milliseconds, beside the raw HLC.

/// One row of the DAG: what the graph draws and lists (`GET /v1/log`).
struct LogRowDocument: Encodable, Sendable {
    let id: String
    /// The parents in the order the entry signed them.
    let parents: [String]
    /// The parent the graph continues the entry's lane with: its author's own previous entry
    /// when one of the parents is, else the newest parent (as `cairn log --graph`).
    let firstParent: String?
    let author: String
    let hlc: UInt64
    let hlcCounter: UInt16
    let time: String
    let kind: String
    let bucket: String?
    let key: String?
    /// One line saying what the entry does.
    let op: String
    let inert: Bool
    /// A merge's decisions (absent for other kinds).
    let decisions: [DecisionDocument]?

    init(_ stored: StoredEntry, firstParent: Hash32?) {
        let entry = stored.entry
        id = entry.id.hex
        parents = entry.parents.map(\.hex)
        self.firstParent = firstParent?.hex
        author = entry.author.hex
        hlc = entry.hlc.rawValue
        hlcCounter = entry.hlc.counter
        time = entry.hlc.isoTime
        kind = entry.kind.description
        bucket = entry.payload.target?.bucket
        key = entry.payload.target?.key
        op = Self.describe(entry.payload)
        inert = stored.inert
        if case .merge(let decisions) = entry.payload { self.decisions = decisions.map(DecisionDocument.init) } else { decisions = nil }
    }

    private static func describe(_ payload: Payload) -> String {
        switch payload {
        case .genesis(let name, let writers): "genesis of \(name) with \(writers.count) writer(s)"
        case .put(let bucket, let key, let ref): "put \(bucket)/\(key) (\(ref.length) bytes)"
        case .delete(let bucket, let key): "delete \(bucket)/\(key)"
        case .merge(let decisions): "merge deciding \(decisions.count) key(s)"
        case .addWriter(let grant): "grant \(grant.key.hex.prefix(12)) \(grant.role)"
        case .revokeWriter(let key, let from): "revoke \(key.hex.prefix(12)) from \(from.isoTime)"
        }
    }
}

/// What a merge recorded about one key written on more than one of its branches.
struct DecisionDocument: Encodable, Sendable {
    let bucket: String
    let key: String
    let winner: String
    let losers: [String]

    init(_ decision: MergeDecision) {
        bucket = decision.bucket
        key = decision.key
        winner = decision.winner.hex
        losers = decision.losers.map(\.hex)
    }
}

/// A window of the log, newest first, and the cursor of the next (older) window.
struct LogWindowDocument: Encodable, Sendable {
    let entries: [LogRowDocument]
    /// Pass as `before` for the next window; absent after the oldest entry (the genesis).
    let next: String?
}

/// One entry in full (`GET /v1/entries/{id}`).
struct EntryDetailDocument: Encodable, Sendable {
    struct Value: Encodable, Sendable {
        let digest: String
        let length: UInt32
        /// `present`, `purged` or `missing`.
        let state: String
    }
    struct Genesis: Encodable, Sendable {
        let name: String
        let writers: [Grant]
    }
    struct Grant: Encodable, Sendable {
        let key: String
        let role: String
    }
    struct Revoke: Encodable, Sendable {
        let key: String
        let from: UInt64
        let fromTime: String
    }
    /// What this node can check of the entry on its own.
    struct Verification: Encodable, Sendable {
        let idMatchesBody: Bool
        let signatureValid: Bool
        let parentsPresent: Bool
        let missingParents: [String]
        let inert: Bool
    }

    let id: String
    let parents: [String]
    let author: String
    let hlc: UInt64
    let hlcCounter: UInt16
    let time: String
    let kind: String
    let bucket: String?
    let key: String?
    let op: String
    let inert: Bool
    let decisions: [DecisionDocument]?
    let value: Value?
    let genesis: Genesis?
    let grant: Grant?
    let revoke: Revoke?
    let signature: String
    let bodyBytes: Int
    /// The local ingest sequence (the change-stream cursor).
    let seq: Int64
    let ingested: String
    let verification: Verification

    /// - Parameters:
    ///   - idMatchesBody: whether looking the entry up by the hash of its body finds this row.
    init(_ stored: StoredEntry, idMatchesBody: Bool, value lookup: ValueLookup?, missingParents: [Hash32]) {
        let entry = stored.entry
        let row = LogRowDocument(stored, firstParent: nil)
        (id, parents, author, hlc, hlcCounter, time) = (row.id, row.parents, row.author, row.hlc, row.hlcCounter, row.time)
        (kind, bucket, key, op, inert, decisions) = (row.kind, row.bucket, row.key, row.op, row.inert, row.decisions)
        switch entry.payload {
        case .put(_, _, let ref):
            value = Value(digest: ref.digest.hex, length: ref.length, state: lookup.map(Self.state) ?? "missing")
        default:
            value = nil
        }
        if case .genesis(let name, let writers) = entry.payload {
            genesis = Genesis(name: name, writers: writers.map { Grant(key: $0.key.hex, role: $0.role.description) })
        } else {
            genesis = nil
        }
        if case .addWriter(let g) = entry.payload { grant = Grant(key: g.key.hex, role: g.role.description) } else { grant = nil }
        if case .revokeWriter(let key, let from) = entry.payload {
            revoke = Revoke(key: key.hex, from: from.rawValue, fromTime: from.isoTime)
        } else {
            revoke = nil
        }
        signature = Hex.encode(entry.signature)
        bodyBytes = entry.bodyBytes.count
        seq = stored.seq
        ingested = ISOTime.string(milliseconds: stored.ingestedMilliseconds)
        verification = Verification(
            idMatchesBody: idMatchesBody, signatureValid: entry.hasValidSignature,
            parentsPresent: missingParents.isEmpty, missingParents: missingParents.map(\.hex), inert: stored.inert)
    }

    private static func state(_ lookup: ValueLookup) -> String {
        switch lookup {
        case .present: "present"
        case .purged: "purged"
        case .missing: "missing"
        }
    }
}

/// A candidate of an ambiguous id prefix, listed in the problem document.
struct CandidateDocument: Encodable, Sendable {
    let id: String
    let kind: String
    let time: String

    init(_ stored: StoredEntry) {
        id = stored.entry.id.hex
        kind = stored.entry.kind.description
        time = stored.entry.hlc.isoTime
    }
}

/// Every version of a key with the winner and the losers (`GET /v1/keys/{bucket}/{key}/history`).
struct KeyHistoryDocument: Encodable, Sendable {
    struct Version: Encodable, Sendable {
        let id: String
        let kind: String
        let author: String
        let hlc: UInt64
        let time: String
        let inert: Bool
        /// `winner`; `loser` when a merge recorded it losing to a concurrent write (`lost_in`
        /// names the first such merge); `inert` when its author was revoked at its HLC;
        /// `superseded` when a later write replaced it on the same branch.
        let status: String
        let lostIn: String?
    }
    struct Merge: Encodable, Sendable {
        let merge: String
        let time: String
        let winner: String
        let losers: [String]
    }

    let bucket: String
    let key: String
    let winner: String?
    /// Oldest first, in LWW order.
    let versions: [Version]
    let merges: [Merge]

    init(bucket: String, key: String, history: KeyHistory) {
        self.bucket = bucket
        self.key = key
        winner = history.winner?.hex
        var lostIn: [Hash32: Hash32] = [:]
        for (merge, decision) in history.merges {
            for loser in decision.losers where lostIn[loser] == nil { lostIn[loser] = merge.entry.id }
        }
        versions = history.versions.map { stored in
            let id = stored.entry.id
            let status = id == history.winner ? "winner" : lostIn[id] != nil ? "loser" : stored.inert ? "inert" : "superseded"
            return Version(
                id: id.hex, kind: stored.entry.kind.description, author: stored.entry.author.hex, hlc: stored.entry.hlc.rawValue,
                time: stored.entry.hlc.isoTime, inert: stored.inert, status: status, lostIn: lostIn[id]?.hex)
        }
        merges = history.merges.map { merge, decision in
            Merge(merge: merge.entry.id.hex, time: merge.entry.hlc.isoTime, winner: decision.winner.hex, losers: decision.losers.map(\.hex))
        }
    }
}

/// Every change to the writer set (`GET /v1/writers/history`; the set now is `GET /v1/writers`).
struct WriterHistoryDocument: Encodable, Sendable {
    struct Change: Encodable, Sendable {
        /// `grant` or `revoke`.
        let action: String
        let key: String
        let role: String?
        let from: UInt64?
        let fromTime: String?
    }
    struct Event: Encodable, Sendable {
        let id: String
        let kind: String
        let author: String
        let hlc: UInt64
        let time: String
        let changes: [Change]
        /// Whether the writer-set rule let it take effect (an entry that did not is inert).
        let tookEffect: Bool
    }

    let events: [Event]

    init(events: [StoredEntry]) {
        self.events = events.map { stored in
            let entry = stored.entry
            return Event(
                id: entry.id.hex, kind: entry.kind.description, author: entry.author.hex, hlc: entry.hlc.rawValue,
                time: entry.hlc.isoTime, changes: Self.changes(entry.payload), tookEffect: !stored.inert)
        }
    }

    private static func changes(_ payload: Payload) -> [Change] {
        switch payload {
        case .genesis(_, let writers): writers.map(grant)
        case .addWriter(let writer): [grant(writer)]
        case .revokeWriter(let key, let from):
            [Change(action: "revoke", key: key.hex, role: nil, from: from.rawValue, fromTime: from.isoTime)]
        default: []
        }
    }

    private static func grant(_ writer: WriterGrant) -> Change {
        Change(action: "grant", key: writer.key.hex, role: writer.role.description, from: nil, fromTime: nil)
    }
}

/// The peer list and what sync last recorded of each peer (`GET /v1/sync/peers`).
struct PeersDocument: Encodable, Sendable {
    struct Peer: Encodable, Sendable {
        let address: String
        let identity: String?
        let state: String?
        let lastConnected: String?
        let lastSync: String?
        let entriesSent: Int64?
        let entriesReceived: Int64?
        let entriesRejected: Int64?
        let lagEntries: Int64?
        let lagIsLowerBound: Bool?
        let lagMilliseconds: UInt64?
        let lastError: String?
    }

    let peers: [Peer]

    /// Listed peers first (with their status when one was recorded), then peers that only
    /// dialled in (a status without a list entry).
    init(peers: [PeerAddress], statuses: [PeerStatus], now: UInt64) {
        var byIdentity = Dictionary(statuses.map { ($0.identity, $0) }, uniquingKeysWith: { a, _ in a })
        var byAddress = Dictionary(statuses.map { ($0.address, $0) }, uniquingKeysWith: { a, _ in a })
        var out: [Peer] = []
        for peer in peers {
            let status = peer.identity.flatMap { byIdentity[$0] } ?? byAddress[peer.address]
            if let status { byIdentity[status.identity] = nil; byAddress[status.address] = nil }
            out.append(Self.peer(address: peer.address, identity: peer.identity ?? status?.identity, status: status, now: now))
        }
        for status in byIdentity.values.sorted(by: { $0.address < $1.address }) {
            out.append(Self.peer(address: status.address, identity: status.identity, status: status, now: now))
        }
        self.peers = out
    }

    private static func peer(address: String, identity: PublicKey?, status: PeerStatus?, now: UInt64) -> Peer {
        Peer(
            address: address, identity: identity?.hex, state: status?.state,
            lastConnected: status?.lastConnectedMilliseconds.map(ISOTime.string(milliseconds:)),
            lastSync: status?.lastSyncMilliseconds.map(ISOTime.string(milliseconds:)),
            entriesSent: status?.entriesSent, entriesReceived: status?.entriesReceived, entriesRejected: status?.entriesRejected,
            lagEntries: status?.lagEntries, lagIsLowerBound: status?.lagIsLowerBound, lagMilliseconds: status?.lagMilliseconds(now: now),
            lastError: status?.lastError)
    }
}

extension HLC {
    /// The wall time of the HLC, as the audit documents write times.
    fileprivate var isoTime: String { ISOTime.string(milliseconds: wallMilliseconds) }
}
