import CairnCore
import Dispatch
import Foundation

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

/// Signatures of `ids`, chunk by chunk, shared between a helper on a global queue and the
/// caller (the store's queue), which applies the entries signed so far: signing and applying
/// overlap on two cores instead of taking turns. Each chunk is claimed once, in order, by
/// whichever side gets to it first; the caller waits only for a chunk the helper has claimed
/// (and so is signing on a running thread) and signs an unclaimed one itself. So it never waits
/// on a work item that has not started: with every pool thread busy (or blocked), the caller
/// simply signs everything. ``signature(_:)`` must be asked in index order; ``finish()`` stops
/// the helper from claiming more.
final class PipelinedSignatures: @unchecked Sendable {
    static let chunk = 64
    private let ids: [[UInt8]]
    private let signer: SigningKey
    private let chunks: Int
    private let slots: UnsafeMutableBufferPointer<[UInt8]>
    private let helperSigned: [DispatchSemaphore]
    private let lock = NSLock()
    private var nextUnclaimed = 0  // guarded by `lock`
    private var stopped = false    // guarded by `lock`
    private var current = -1       // the caller's chunk; the caller's alone

    init(ids: [[UInt8]], signer: SigningKey) {
        self.ids = ids
        self.signer = signer
        chunks = (ids.count + Self.chunk - 1) / Self.chunk
        slots = .allocate(capacity: ids.count)
        slots.initialize(repeating: [])
        helperSigned = (0..<chunks).map { _ in DispatchSemaphore(value: 0) }
        // The helper writes a chunk's slots before signalling it; the caller reads them only
        // after that signal, or after signing them itself.
        DispatchQueue.global(qos: .userInitiated).async { [self] in
            while let chunk = claimNext() {
                sign(chunk)
                helperSigned[chunk].signal()
            }
        }
    }

    /// The helper's next chunk: the first unclaimed one, unless stopped or none is left.
    private func claimNext() -> Int? {
        lock.withLock {
            guard !stopped, nextUnclaimed < chunks else { return nil }
            nextUnclaimed += 1
            return nextUnclaimed - 1
        }
    }

    /// Claims `chunk` for the caller if the helper has not: chunks are claimed in order, and
    /// the caller asks for them in order, so it is either the next unclaimed one or taken.
    private func claimForCaller(_ chunk: Int) -> Bool {
        lock.withLock {
            guard nextUnclaimed == chunk else { return false }
            nextUnclaimed += 1
            return true
        }
    }

    private func sign(_ chunk: Int) {
        for i in (chunk * Self.chunk)..<min(ids.count, (chunk + 1) * Self.chunk) { slots[i] = signer.sign(ids[i]) }
    }

    /// The signature of `ids[index]`: signed here if its chunk is unclaimed, else once the
    /// helper has signed it.
    func signature(_ index: Int) -> [UInt8] {
        let chunk = index / Self.chunk
        if chunk != current {
            current = chunk
            if claimForCaller(chunk) { sign(chunk) } else { helperSigned[chunk].wait() }
        }
        return slots[index]
    }

    /// Stops the helper from claiming more chunks (the caller may have stopped early). The
    /// slots are freed with the object, once the helper has let go of it too.
    func finish() {
        lock.withLock { stopped = true }
    }

    deinit {
        slots.deinitialize()
        slots.deallocate()
    }
}
