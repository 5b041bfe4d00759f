import Dispatch

/// The serial executor a ``CairnLog`` runs on: one private dispatch queue, as GRDB confines a
/// connection to its own serial queue. SQLite calls block; running them here keeps them off
/// Swift's shared cooperative pool, so a long import, a verify or a slow disk never starves
/// other tasks of the process (a sync node's sessions, an embedding app).
final class StoreExecutor: SerialExecutor {
    private let queue: DispatchQueue

    init(label: String) {
        queue = DispatchQueue(label: label, qos: .userInitiated)
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async { job.runSynchronously(on: self.asUnownedSerialExecutor()) }
    }

    func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    func checkIsolated() {
        dispatchPrecondition(condition: .onQueue(queue))
    }
}

/// Runs CPU-bound `work` (decoding, hashing, signature checks) on a global dispatch queue and
/// awaits its result, so neither the log's queue nor the cooperative pool is held meanwhile.
func offTheStore<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        DispatchQueue.global(qos: .userInitiated).async { continuation.resume(returning: work()) }
    }
}
