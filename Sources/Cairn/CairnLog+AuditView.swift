import CairnCore
import CairnStore

/// Reads for an auditor's view of the log (the web audit view), beside `log`, `entry` and
/// `history` which it shares with the CLI.
extension CairnLog {
    /// The writer set over time: every genesis, grant and revocation in the order the
    /// writer-set rule judges them (`(hlc, author, id)` ascending). An entry that took no
    /// effect (say, a grant by an admin revoked before it) is ``StoredEntry/inert``.
    ///
    /// - Throws: ``CairnError`` (`.corrupt` for an unreadable row).
    public func writerSetHistory() throws(CairnError) -> [StoredEntry] {
        try CairnError.translating { try store.writerSetEntries() }
    }

    /// The HLC and author of each of `ids` the log holds (ids it lacks are left out): enough to
    /// order a merge's parents for drawing.
    ///
    /// - Throws: ``CairnError`` (`.corrupt` for an unreadable row).
    public func summaries(of ids: [Hash32]) throws(CairnError) -> [Hash32: EntrySummary] {
        try CairnError.translating { try store.summaries(of: ids) }
    }

    /// Up to `limit` entries whose hex id starts with `prefix`, in id order: the candidates of
    /// an ambiguous short id.
    ///
    /// - Throws: ``CairnError`` (`.corrupt` for an unreadable row).
    public func entries(prefix: String, limit: Int) throws(CairnError) -> [StoredEntry] {
        try CairnError.translating { try store.entries(prefix: prefix, limit: limit) }
    }
}
