import CairnCore
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

/// Signatures of `ids` computed on a global queue, chunk by chunk, while the caller (the
/// store's queue) applies the entries whose signatures are ready: signing and applying overlap
/// on two cores instead of taking turns. ``signature(_:)`` must be asked in index order;
/// ``finish()`` must be called before the value is dropped (it waits for the signer).
final class PipelinedSignatures: @unchecked Sendable {
    static let chunk = 64
    private let count: Int
    private let slots: UnsafeMutableBufferPointer<[UInt8]>
    private let ready: [DispatchSemaphore]
    private let signed = DispatchGroup()
    private var waitedFor = -1

    init(ids: [[UInt8]], signer: SigningKey) {
        count = ids.count
        slots = .allocate(capacity: ids.count)
        slots.initialize(repeating: [])
        let chunks = (ids.count + Self.chunk - 1) / Self.chunk
        ready = (0..<chunks).map { _ in DispatchSemaphore(value: 0) }
        // The signer writes slot i before signalling i's chunk; the caller reads it only after
        // waiting for that signal, so no slot is touched by both threads at once.
        let base = Slots(base: UnsafeMutableRawPointer(slots.baseAddress!))
        DispatchQueue.global(qos: .userInitiated).async(group: signed) { [ready] in
            let out = base.base.assumingMemoryBound(to: [UInt8].self)
            for chunk in 0..<chunks {
                for i in (chunk * Self.chunk)..<min(ids.count, (chunk + 1) * Self.chunk) { out[i] = signer.sign(ids[i]) }
                ready[chunk].signal()
            }
        }
    }

    /// The signature of `ids[index]`, waiting for its chunk if it is not signed yet.
    func signature(_ index: Int) -> [UInt8] {
        let chunk = index / Self.chunk
        while waitedFor < chunk {
            waitedFor += 1
            ready[waitedFor].wait()
        }
        return slots[index]
    }

    /// Waits until the signer is done (also when the caller stopped early) and frees the slots.
    func finish() {
        signed.wait()
        slots.deinitialize()
        slots.deallocate()
    }
}
