import Dispatch

/// `transform` applied to every index of `0..<count`, on up to `threads` threads (contiguous
/// chunks, results in order). The CPU-bound halves of ingest and append (decode and verify,
/// sign) run here, before the write lock is taken.
func parallelMap<T>(count: Int, threads: Int, _ transform: @Sendable (Int) -> T) -> [T] {
    guard count > 0 else { return [] }
    let threads = max(1, min(threads, count))
    let results = UnsafeMutableBufferPointer<T>.allocate(capacity: count)
    defer { results.deallocate() }
    let chunk = (count + threads - 1) / threads
    // Each thread initializes a disjoint slice of the buffer, so sharing its address is sound.
    let slots = Slots(base: UnsafeMutableRawPointer(results.baseAddress!))
    DispatchQueue.concurrentPerform(iterations: threads) { t in
        let base = slots.base.assumingMemoryBound(to: T.self)
        for i in (t * chunk)..<min(count, (t + 1) * chunk) { (base + i).initialize(to: transform(i)) }
    }
    return (0..<count).map { (results.baseAddress! + $0).move() }
}

private struct Slots: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
}
