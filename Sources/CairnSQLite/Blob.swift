import CSQLite

extension Database {
    /// Reads `count` bytes at `offset` of one blob through SQLite's incremental blob I/O
    /// (`sqlite3_blob_open`/`sqlite3_blob_read`), so a piece of a large value is read without
    /// loading the whole value. Call inside a transaction to read a consistent snapshot.
    package func readBlob(table: String, column: String, rowid: Int64, offset: Int, count: Int) throws -> [UInt8] {
        guard count > 0 else { return [] }
        var blob: OpaquePointer?
        let opened = sqlite3_blob_open(handle, "main", table, column, rowid, 0, &blob)
        guard opened == SQLITE_OK, let blob else {
            sqlite3_blob_close(blob)
            throw error(opened, sql: "blob open \(table).\(column) row \(rowid)")
        }
        defer { sqlite3_blob_close(blob) }
        var bytes = [UInt8](repeating: 0, count: count)
        let read = bytes.withUnsafeMutableBytes { sqlite3_blob_read(blob, $0.baseAddress, Int32(count), Int32(offset)) }
        guard read == SQLITE_OK else { throw error(read, sql: "blob read \(table).\(column) row \(rowid)") }
        return bytes
    }
}
