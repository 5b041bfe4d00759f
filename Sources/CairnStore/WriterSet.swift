import CairnCore

/// One writer-set entry (genesis, add-writer or revoke-writer), reduced to what the writer-set
/// rule reads: its LWW position and the grants and revocations it carries.
struct WriterSetEntry {
    enum Event: Equatable {
        case grant(PublicKey, Role)
        case revoke(PublicKey, from: HLC)
    }

    let id: Hash32
    let hlc: HLC
    let author: PublicKey
    let isGenesis: Bool
    let events: [Event]

    /// The entry's events, or `nil` for an entry that does not change the writer set.
    init?(_ entry: SignedEntry) {
        switch entry.payload {
        case .genesis(_, let writers): self.init(entry, genesis: true, events: writers.map { .grant($0.key, $0.role) })
        case .addWriter(let grant): self.init(entry, genesis: false, events: [.grant(grant.key, grant.role)])
        case .revokeWriter(let key, let from): self.init(entry, genesis: false, events: [.revoke(key, from: from)])
        default: return nil
        }
    }

    private init(_ entry: SignedEntry, genesis: Bool, events: [Event]) {
        (id, hlc, author, isGenesis, self.events) = (entry.id, entry.hlc, entry.author, genesis, events)
    }

    init(id: Hash32, hlc: HLC, author: PublicKey, isGenesis: Bool, events: [Event]) {
        (self.id, self.hlc, self.author, self.isGenesis, self.events) = (id, hlc, author, isGenesis, events)
    }
}

/// The writer set: a pure function of the set of writer-set entries, whatever order they
/// arrived in (ARCHITECTURE.md, "The writer-set rule").
///
/// The entries are taken in ascending `(hlc, author, id)` order. An add or revoke takes effect
/// iff its author is an admin at that point and not revoked at the entry's HLC; a grant raises
/// the key's role, a revocation lowers its `from`. Revocations are retroactive, so once every
/// entry is judged, the effective ones whose author ended up revoked at their HLC are voided
/// and the whole judgement runs again without them, until nothing more is voided. Voiding only
/// grows, so this ends after at most one run per entry.
struct WriterSet: Equatable {
    /// Every key that any writer-set entry names, with its standing.
    private(set) var statuses: [PublicKey: WriterStatus] = [:]
    /// The add and revoke entries that took effect (the genesis always does).
    private(set) var effective: Set<Hash32> = []

    init(_ entries: [WriterSetEntry]) {
        let ordered = entries.sorted { ($0.hlc, $0.author, $0.id) < ($1.hlc, $1.author, $1.id) }
        var voided = Set<Hash32>()
        while true {
            let run = Judgement(ordered, voiding: voided)
            let newlyVoided = ordered.filter { entry in
                guard !entry.isGenesis, run.effective.contains(entry.id), let from = run.revokedFrom[entry.author] else { return false }
                return from <= entry.hlc
            }.map(\.id)
            if newlyVoided.isEmpty {
                effective = run.effective
                statuses = run.statuses(naming: ordered)
                return
            }
            voided.formUnion(newlyVoided)
        }
    }

    /// The standing of `key`: never granted, granted, revoked from some HLC.
    func status(of key: PublicKey) -> WriterStatus { statuses[key] ?? WriterStatus(role: nil, revokedFrom: nil) }

    /// Whether an entry of `kind` by `author` at `hlc` is inert: for writer-set entries, whether
    /// it took no effect; for the others, whether its author may not write at `hlc`.
    func isInert(id: Hash32, kind: EntryKind, author: PublicKey, hlc: HLC) -> Bool {
        switch kind {
        case .genesis: false
        case .addWriter, .revokeWriter: !effective.contains(id)
        case .put, .delete, .merge: status(of: author).problem(for: author, at: hlc, needsAdmin: false) != nil
        }
    }

    /// The admins that are not revoked at or before `hlc`.
    func admins(at hlc: HLC) -> [PublicKey] {
        statuses.filter { $0.value.role == .admin && !($0.value.revokedFrom.map { $0 <= hlc } ?? false) }.map(\.key)
    }
}

/// One run of the judgement, with some entries voided.
private struct Judgement {
    var roles: [PublicKey: Role] = [:]
    var revokedFrom: [PublicKey: HLC] = [:]
    var effective: Set<Hash32> = []

    init(_ ordered: [WriterSetEntry], voiding voided: Set<Hash32>) {
        for entry in ordered where !voided.contains(entry.id) {
            if !entry.isGenesis {
                guard roles[entry.author] == .admin, !(revokedFrom[entry.author].map { $0 <= entry.hlc } ?? false) else { continue }
            }
            effective.insert(entry.id)
            for event in entry.events {
                switch event {
                case .grant(let key, let role): roles[key] = roles[key] == .admin ? .admin : role
                case .revoke(let key, let from): revokedFrom[key] = min(revokedFrom[key] ?? from, from)
                }
            }
        }
    }

    /// Every key named by any entry. A key granted only by entries that took no effect keeps
    /// the role they named but counts as revoked from HLC zero: known, never able to write.
    func statuses(naming ordered: [WriterSetEntry]) -> [PublicKey: WriterStatus] {
        var out: [PublicKey: WriterStatus] = [:]
        for entry in ordered {
            for event in entry.events {
                switch event {
                case .grant(let key, let role) where roles[key] == nil:
                    let named = out[key]?.role == .admin ? Role.admin : role
                    out[key] = WriterStatus(role: named, revokedFrom: .zero)
                case .grant(let key, _), .revoke(let key, _):
                    if roles[key] != nil || out[key] == nil {
                        out[key] = WriterStatus(role: roles[key], revokedFrom: revokedFrom[key])
                    }
                }
            }
        }
        return out.filter { $0.value.role != nil || $0.value.revokedFrom != nil }
    }
}
