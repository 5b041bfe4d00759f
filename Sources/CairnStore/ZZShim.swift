import CairnCore
public enum DeltaPlan: Sendable, Equatable { case entries([Hash32]); case everything; case tooLarge }
extension LogStore {
    public func delta(wants: [Hash32], haves: [Hash32], limit: Int) throws -> DeltaPlan { .everything }
    public func haveSample(limit: Int = 32) throws -> [Hash32] { [] }
    public func appliedIDs(among ids: [Hash32]) throws -> Set<Hash32> { [] }
    public func rawEntries(_ ids: [Hash32]) throws -> [RawEntry] { [] }
    public func rawEntries(afterSeq: Int64, limit: Int) throws -> (entries: [RawEntry], lastSeq: Int64) { ([], 0) }
}
