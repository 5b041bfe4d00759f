import CairnCore
import CairnSQLite

/// Typed, throwing reads of the current row: a NULL or malformed value is a corrupt row, reported
/// as ``StoreError/corrupt(_:)`` naming the table and column — never a crash, whatever the file
/// holds.
extension Statement {
    /// A non-NULL blob.
    func bytes(_ index: Int32, _ table: String) throws -> [UInt8] {
        guard let bytes = blob(index) else { throw corrupt(index, table, "is NULL") }
        return bytes
    }

    /// A non-NULL text.
    func string(_ index: Int32, _ table: String) throws -> String {
        guard let text = text(index) else { throw corrupt(index, table, "is NULL") }
        return text
    }

    /// A 32-byte id.
    func hash(_ index: Int32, _ table: String) throws -> Hash32 {
        guard let hash = blob(index).flatMap(Hash32.init(bytes:)) else { throw corrupt(index, table, "is not a 32-byte id") }
        return hash
    }

    /// A 32-byte public key.
    func publicKey(_ index: Int32, _ table: String) throws -> PublicKey {
        guard let key = blob(index).flatMap(PublicKey.init(bytes:)) else { throw corrupt(index, table, "is not a 32-byte key") }
        return key
    }

    /// An HLC (stored as the signed integer of its bits).
    func hlc(_ index: Int32) -> HLC { HLC(rawValue: UInt64(bitPattern: int64(index))) }

    private func corrupt(_ index: Int32, _ table: String, _ problem: String) -> StoreError {
        .corrupt("\(table): column \(columnName(index)) \(problem)")
    }
}
