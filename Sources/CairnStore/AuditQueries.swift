import CairnCore

extension LogStore {
    /// Every writer-set entry (the genesis, grants and revocations) in the writer-set rule's
    /// order, `(hlc, author, id)` ascending: the writer set's history. An entry that took no
    /// effect under the rule is inert.
    ///
    /// - Throws: a SQLite error, or ``StoreError/corrupt(_:)`` for an unreadable row.
    public func writerSetEntries() throws -> [StoredEntry] {
        try database.readTransaction {
            let statement = try database.prepare(Schema.writerSetEntries)
            var out: [StoredEntry] = []
            while try statement.step() { out.append(try storedEntry(statement)) }
            return out
        }
    }
}
