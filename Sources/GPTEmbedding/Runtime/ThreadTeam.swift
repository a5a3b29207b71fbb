import CMemoryHints
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The worker threads behind every ``WorkerPool``: one team per process, created once and
/// grown on demand to the largest thread count a configuration asks for (as OpenMP does).
///
/// A job is a set of parts `0 ..< n`. The calling thread publishes it, runs parts itself and
/// waits for the rest; workers claim parts under a mutex, so a part can only be claimed
/// while its job is live. After a job, workers spin for a short while before parking, so
/// the back-to-back parallel regions of one call (the phases of the layer-norm backward)
/// or of a training step (forward, then backward) do not pay a wake-up each (25-50 µs
/// here). Small calls never reach the team: see ``WorkerPool``.
///
/// One job runs at a time. A call that finds the team busy (another layer, or another
/// thread on the same layer) runs all its parts on its own thread, which gives the same
/// results: the kernels do not depend on how parts are spread over threads.
final class ThreadTeam: @unchecked Sendable {
    /// The team of the process.
    static let shared = ThreadTeam()

    /// A part body, alive while its job is published.
    private typealias Body = (Int) -> Void

    /// Guards `body`, `parts`, `nextPart`, `sleepers`, `workers`.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let wake = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var body: Body?
    private var parts = 0
    private var nextPart = 0
    private var sleepers = 0
    private var workers = 0

    /// Set while a job is published; one job at a time.
    private let busy = Atomic<Bool>(false)
    /// Bumped when a job is published; workers watch it.
    private let generation = Atomic<UInt64>(0)
    /// Parts of the current job not finished yet.
    private let remaining = Atomic<Int>(0)

    /// Upper bound on worker threads, whatever a configuration asks for.
    static let maxWorkers = 255

    /// How long a worker keeps spinning for the next job before it parks, in nanoseconds.
    static let spinNanoseconds: UInt64 = 100_000

    private init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(wake, nil)
        // fork() copies only the calling thread: the child must not wait for workers it
        // does not have, nor find the mutex held by one of them (as libgomp does).
        pthread_atfork({ pthread_mutex_lock(ThreadTeam.shared.mutex) },
                       { pthread_mutex_unlock(ThreadTeam.shared.mutex) },
                       { ThreadTeam.shared.resetInForkedChild() })
    }

    /// The state of a fresh team, in the child of a fork: no workers, no job, nobody
    /// asleep. Called with the mutex held (locked before the fork), so it is re-created.
    private func resetInForkedChild() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(wake, nil)
        body = nil
        parts = 0
        nextPart = 0
        sleepers = 0
        workers = 0
        remaining.store(0, ordering: .relaxed)
        busy.store(false, ordering: .relaxed)
    }

    /// Calls `body(0) ... body(parts - 1)`, spread over the calling thread and up to
    /// `parts - 1` workers, and returns when all have finished.
    func run(parts n: Int, _ body: (Int) -> Void) {
        guard n > 1, busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            for i in 0..<max(n, 0) { body(i) }
            return
        }
        withoutActuallyEscaping(body) { body in
            startWorkers(upTo: min(n - 1, Self.maxWorkers))
            pthread_mutex_lock(mutex)
            self.body = body
            parts = n
            nextPart = 1
            remaining.store(n, ordering: .relaxed)
            generation.add(1, ordering: .releasing)
            if sleepers > 0 { pthread_cond_broadcast(wake) }
            pthread_mutex_unlock(mutex)

            body(0)
            remaining.subtract(1, ordering: .releasing)
            while runClaimedPart() { remaining.subtract(1, ordering: .releasing) }
            // The parts claimed by workers: they are running now, wait for them.
            var spins = 0
            while remaining.load(ordering: .acquiring) != 0 {
                gpte_spin_pause()
                spins += 1
                if spins & 1023 == 0 { sched_yield() }
            }
            pthread_mutex_lock(mutex)
            self.body = nil
            pthread_mutex_unlock(mutex)
        }
        busy.store(false, ordering: .releasing)
    }

    /// Claims a part and returns it with its body, or `nil`.
    private func claimWithBody() -> (Int, Body)? {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        guard let body, nextPart < parts else { return nil }
        nextPart += 1
        return (nextPart - 1, body)
    }

    /// Starts workers until there are `count` (or thread creation fails: the caller then
    /// runs the unclaimed parts itself).
    private func startWorkers(upTo count: Int) {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while workers < count {
            var attributes = pthread_attr_t()
            pthread_attr_init(&attributes)
            pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
            var thread = pthread_t()
            let started = pthread_create(&thread, &attributes, { _ in
                ThreadTeam.shared.workerLoop()
                return nil
            }, nil)
            pthread_attr_destroy(&attributes)
            guard started == 0 else { return }
            workers += 1
        }
    }

    /// A worker: wait for a job, run the parts it can claim, repeat.
    private func workerLoop() {
        var seen = generation.load(ordering: .acquiring)
        while true {
            seen = waitForJob(after: seen)
            while runClaimedPart() { remaining.subtract(1, ordering: .releasing) }
        }
    }

    /// Claims and runs one part; `false` when none is left. Its reference to the body is
    /// released when it returns, before the part is counted as finished: the caller's
    /// closure must not outlive its job (`withoutActuallyEscaping` checks that).
    @inline(never)
    private func runClaimedPart() -> Bool {
        guard let (i, body) = claimWithBody() else { return false }
        body(i)
        return true
    }

    /// Spins for ``spinNanoseconds``, then parks, until the generation moves past `seen`.
    private func waitForJob(after seen: UInt64) -> UInt64 {
        let deadline = Self.now() &+ Self.spinNanoseconds
        var spins = 0
        while true {
            let g = generation.load(ordering: .acquiring)
            if g != seen { return g }
            gpte_spin_pause()
            spins += 1
            if spins & 255 == 0 && Self.now() > deadline { break }
        }
        pthread_mutex_lock(mutex)
        sleepers += 1
        while generation.load(ordering: .acquiring) == seen { pthread_cond_wait(wake, mutex) }
        sleepers -= 1
        pthread_mutex_unlock(mutex)
        return generation.load(ordering: .acquiring)
    }

    private static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}
