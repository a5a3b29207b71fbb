import CMemoryHints
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The layer-norm backward's blocks over exactly two workers, without a lock: worker 0
/// owns the even blocks, worker 1 the odd ones. Each computes its block (phase 1: dx rows
/// and dgamma / dbeta sums per sub-block, into the scratch set of the block's parity, which
/// is therefore its own), waits until the block before it has been scattered, scatters its
/// block (phase 2: every column) and says so. While one worker scatters, the other computes
/// its next block, so the phases overlap; blocks are scattered strictly in order, so every
/// gradient element is summed in token order and the dgamma / dbeta sums in sub-block order,
/// the bits of one thread.
///
/// Why no lock: the workers meet once per block, on one counter. ``BackwardSchedule`` (any
/// number of workers) hands out every sub-block and scatter under a mutex; where the host
/// puts the two vCPUs on different dies each hand-over of its lines costs a cross-die
/// round trip (350 ns against 50), and the 8×1024 layer-norm backward ran 1.2× slower there
/// than on one die (docs/performance.md). A block's dx rows never leave the core that
/// wrote them either.
///
/// The team may run the two parts one after another on one thread (it is busy with
/// another call, or could not start a thread): a worker that waits for a block of a part
/// nobody has started takes that part over and does every remaining block itself, in order.
final class BlockPairSchedule: @unchecked Sendable {
    private let blocks: Int
    /// Blocks scattered so far (blocks `0 ..< scattered`). Written once per block, by the
    /// two workers in turn; alone on its cache line.
    private let scattered = Atomic<Int>(0)
    private let padding0: (Int, Int, Int, Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0, 0, 0, 0)
    /// Per part: 0 not started, 1 running, 2 taken over by the other part.
    private let claim0 = Atomic<Int>(0)
    private let claim1 = Atomic<Int>(0)
    private let padding1: (Int, Int, Int, Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0, 0, 0, 0)

    init(blocks: Int) { self.blocks = blocks }

    private func claim(_ part: Int, _ value: Int) -> Bool {
        part == 0
            ? claim0.compareExchange(expected: 0, desired: value, ordering: .acquiringAndReleasing).exchanged
            : claim1.compareExchange(expected: 0, desired: value, ordering: .acquiringAndReleasing).exchanged
    }

    private func unclaimed(_ part: Int) -> Bool {
        (part == 0 ? claim0.load(ordering: .relaxed) : claim1.load(ordering: .relaxed)) == 0
    }

    /// Part `part` (0 or 1) of the call: `compute(b)` runs phase 1 of block b, `scatter(b)`
    /// phase 2; both on this thread.
    func run(part: Int, compute: (Int) -> Void, scatter: (Int) -> Void) {
        guard claim(part, 1) else { return }
        let other = 1 - part
        var b = part
        while b < blocks {
            compute(b)
            var spins = 0
            while scattered.load(ordering: .acquiring) != b {
                if unclaimed(other) && claim(other, 2) {
                    // Nobody runs the other part: every block from the first unscattered one
                    // (b - 1, the other's) on, in order; block b is computed already.
                    for j in scattered.load(ordering: .acquiring)..<blocks {
                        if j != b { compute(j) }
                        scatter(j)
                    }
                    scattered.store(blocks, ordering: .releasing)
                    return
                }
                // The other worker is computing or scattering the block before; on a loaded
                // machine it may not be running: give it the core now and then.
                gpte_spin_pause()
                spins += 1
                if spins & 63 == 0 { sched_yield() }
            }
            scatter(b)
            scattered.store(b + 1, ordering: .releasing)
            b += 2
        }
    }
}
