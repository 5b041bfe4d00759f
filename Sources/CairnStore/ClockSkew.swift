import CairnCore
import CairnSQLite

/// What the time rules (ARCHITECTURE.md, invariants 4 and 5) hold back on a node right now: for
/// `cairn status`, and for the sync merger, which writes no merge over a head set that is still
/// moving because of them.
public struct SkewHold: Sendable, Equatable {
    /// Entries stamped beyond the skew bound (`maxFutureSkewMilliseconds`), stored unapplied.
    public var quarantined = 0
    /// Of those, the ones that come within the bound by `horizon` (see ``LogStore/skewHold(horizonMilliseconds:)``).
    public var quarantinedDueSoon = 0
    /// Orphans waiting — directly or through other orphans — for a quarantined entry: their
    /// parents are here, held back, so they are neither fetched nor true orphans.
    public var waitingForQuarantine = 0
    /// Heads stamped beyond this node's wall clock plus its tolerance: applied, but no local
    /// write or merge takes them as parents until the wall clock comes within the tolerance.
    public var headsAhead = 0

    public init() {}

    /// Whether the head set may still move because of the time rules: a head ahead of the
    /// clock, an orphan waiting for a quarantined entry, or a quarantined entry due soon.
    public var holdsMerges: Bool { headsAhead > 0 || waitingForQuarantine > 0 || quarantinedDueSoon > 0 }
}

extension LogStore {
    /// The parents a local write or merge takes now, and the heads it leaves aside.
    ///
    /// The entries at or below the clock's ceiling (``HybridClock/ceiling()``: wall clock plus
    /// tolerance, or the clock itself if it is ahead) form a sub-DAG closed under parents, since
    /// HLCs grow along edges. Its heads — its entries without a child in it — are the parents:
    /// every head of the DAG within the ceiling, plus the entries within it whose children are all
    /// beyond it. When no head is beyond the ceiling (the usual case) that is just the heads, at
    /// the cost of one query; otherwise the walk visits only the entries beyond the ceiling. If
    /// nothing is within it (a log whose genesis a node with a fast clock signed), the genesis is
    /// the parent. Sorted by `(hlc, id)` like ``heads()``.
    func parentFrontier() throws -> (parents: [Head], heldBack: [Head]) {
        let heads = try self.heads()
        let ceiling = clock.ceiling()
        let heldBack = heads.filter { $0.hlc > ceiling }
        guard !heldBack.isEmpty else { return (heads, []) }
        var parents = heads.filter { $0.hlc <= ceiling }
        var seen = Set(heldBack.map(\.id))
        var stack = heldBack.map(\.id)
        var candidates: [Head] = []
        while let id = stack.popLast() {
            let edges = try database.prepare(Schema.parentsOf).bind(.blob(id.bytes))
            var ids: [Hash32] = []
            while try edges.step() { ids.append(try edges.hash(0, "parents")) }
            for parent in ids where seen.insert(parent).inserted {
                guard let hlc = try storedHLC(of: parent) else { throw StoreError.corrupt("parents: \(parent.shortHex()) is not an entry") }
                if hlc > ceiling {
                    stack.append(parent)
                } else {
                    candidates.append(Head(id: parent, hlc: hlc))
                }
            }
        }
        for candidate in candidates {
            let child = try database.prepare(Schema.hasChildAtMost).bind(.blob(candidate.id.bytes), .integer(ceiling.rawValue))
            if try !child.step() { parents.append(candidate) }
        }
        if parents.isEmpty, let genesis = try storedHLC(of: logID) { parents = [Head(id: logID, hlc: genesis)] }
        parents.sort { ($0.hlc, $0.id) < ($1.hlc, $1.id) }
        return (parents, heldBack)
    }

    /// What the time rules hold back now (see ``SkewHold``). `horizonMilliseconds`: a
    /// quarantined entry counts as due soon when the wall clock brings it within the skew bound
    /// in at most this long; one stamped further ahead (a clock days or years off) does not hold
    /// merges back. Cost: the heads, a count of the quarantine, and a walk of the orphans that
    /// wait for quarantined entries.
    public func skewHold(horizonMilliseconds: UInt64 = 3_600_000) throws -> SkewHold {
        try database.readTransaction {
            var hold = SkewHold()
            let ceiling = clock.ceiling()
            hold.headsAhead = try heads().filter { $0.hlc > ceiling }.count
            hold.quarantined = try count(Schema.quarantineCount)
            guard hold.quarantined > 0 else { return hold }
            let soon = HLC(wallMilliseconds: nowMilliseconds + options.maxFutureSkewMilliseconds + horizonMilliseconds, counter: .max)
            let due = try database.prepare(Schema.quarantineCountAtMost).bind(.integer(soon.rawValue))
            hold.quarantinedDueSoon = try due.step() ? due.int(0) : 0
            hold.waitingForQuarantine = try count(Schema.orphansWaitingForQuarantine)
            return hold
        }
    }

    /// Which of `ids` wait here unapplied: quarantined, or kept as orphans. Sync asks no peer
    /// for them again (an orphan's missing parents are asked for instead).
    public func pendingIDs(among ids: [Hash32]) throws -> (quarantined: Set<Hash32>, orphaned: Set<Hash32>) {
        try database.readTransaction {
            var quarantined = Set<Hash32>(), orphaned = Set<Hash32>()
            for id in Set(ids) {
                if try exists(Schema.quarantineExists, id) {
                    quarantined.insert(id)
                } else if try exists(Schema.orphanExists, id) {
                    orphaned.insert(id)
                }
            }
            return (quarantined, orphaned)
        }
    }
}
