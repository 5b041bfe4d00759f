import CairnCore
import CairnStore

extension CairnLog {
    /// Rebuilds every derived table from the signed entries, in one transaction (like
    /// ``LogStore/repair()``), and the reconciliation index after it. Run `verify` first:
    /// what it reports about derived tables, this mends; entries themselves are never
    /// rewritten.
    ///
    /// - Throws: SQLite errors; nothing changes then.
    public func repair() throws(CairnError) {
        try CairnError.translating {
            try store.repair()
            try reconcileIndex.rebuild()
        }
    }

    /// The newest entry signed by this node's key when this data directory did not write it
    /// itself: the directory was restored from an older copy (or the key runs elsewhere).
    /// `cairn status` warns about it; see README, "Restoring a node from a backup".
    ///
    /// - Throws: SQLite errors.
    public func newestOwnEntryNotWrittenHere() throws(CairnError) -> Hash32? {
        try CairnError.translating {
            try store.newestEntryNotWrittenHere(by: nodeKey)
        }
    }
}
