import CKernelDispatch
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The optimizer step and the gradient norm, in the layer: it owns the gradients and knows
/// which rows the batch touched, so a lazy step costs what the batch costs.
extension GPTEmbedding {
    /// One AdamW step over the parameters in `options.parameters` that have a gradient, each
    /// in one fused, multi-threaded pass (``AdamW`` lists the arithmetic; it is
    /// `torch.optim.AdamW`'s). Bit-identical for any thread count and on every CPU path.
    ///
    /// Each parameter's state (moments, step count, the master copy of a 16-bit table) is
    /// allocated on its first step. Lazy steps update only the table rows backward touched
    /// since the last ``zeroGrad()`` (every row of a table whose gradient address was handed
    /// out, since writes through it cannot be tracked).
    ///
    /// - Throws: `invalidArgument` for a bad option, `badState` when no backward has run
    ///   since the last `zeroGrad` or when `options.parameters` names a frozen token table
    ///   (a block format, ``ParameterTensor/blockType``, which the default set skips),
    ///   `outOfMemory`; nothing changes then.
    public func step(_ options: AdamW) throws(GPTEmbeddingError) {
        try options.validate()
        let targets = try stepTargets(options.parameters)
        for target in targets where target.tensor.adamw?.step == Int64.max {
            throw GPTEmbeddingError(.badState, "\(target.tensor.name) has taken \(Int64.max) steps (set with set_step?): its step count cannot grow")
        }
        // Every state first, so that running out of memory changes nothing (a state just
        // created holds step 0 and zero moments: the same as none).
        var states: [AdamWState] = []
        for target in targets { states.append(try target.tensor.adamwState(pool: pool)) }
        for (target, state) in zip(targets, states) {
            let rows: RowTracker? = options.lazy ? target.rows : nil
            update(target.tensor, state, rows: rows, tracked: target.rows, options: options,
                   decay: options.decayed.contains(target.parameter))
        }
    }

    /// The squared L2 norm of every gradient of the layer (tables over the rows backward
    /// touched, since the others are zero: it costs what the batch costs), in double. Add
    /// it to the other layers' squared norms to clip by a global norm: pass
    /// `min(1, maxNorm / (sqrt(total) + 1e-6))` as ``AdamW/gradScale``. Infinite or NaN when
    /// a gradient is; 0 before any backward. Deterministic: rows are summed in a fixed
    /// order whatever the thread count.
    public func gradNormSquared() -> Double {
        var total = 0.0
        for p in Parameter.allCases {
            guard let t = try? tensor(p), let g = t.grad else { continue }
            let tracker = self.tracker(p)
            let list = tracker.flatMap { t.gradientShared ? nil : $0.rowList }
            let items = list == nil ? t.rows : tracker?.count ?? 0
            var partials = [Double](repeating: 0, count: items)
            let sumSquares = kernels.sumSquaresRows, cols = Int64(t.cols)
            let rows = list.map(SendableConstPointer.init), grad = SendableConstPointer(UnsafePointer(g.base))
            partials.withUnsafeMutableBufferPointer { out in
                guard let base = out.baseAddress else { return }
                let o = SendablePointer(base)
                pool.parallelFor(count: items, grain: WorkerPool.memoryGrain(bytesPerItem: 4 * t.cols)) { _, range in
                    sumSquares(grad.pointer, cols, rows?.pointer, Int64(range.lowerBound), Int64(range.upperBound),
                               o.pointer + range.lowerBound)
                }
            }
            for x in partials { total += x }
        }
        return total
    }

    /// The optimizer state of a parameter, allocated (step 0, zero moments, the master copy
    /// from the table) if no step has created it yet: for inspecting it or restoring a
    /// saved one.
    public func optimizerState(_ p: Parameter) throws(GPTEmbeddingError) -> AdamWState {
        try tensor(p).adamwState(pool: pool)
    }

    /// Drops every parameter's optimizer state (the next step starts from step 1).
    public func resetOptimizer() {
        for t in parameters { t.adamw = nil }
    }

    // MARK: Internals

    /// A parameter a step updates.
    struct StepTarget {
        let parameter: Parameter
        let tensor: ParameterTensor
        /// The rows backward touched, for the tables; `nil` for the layer norm.
        let rows: RowTracker?
    }

    /// The parameters of `selected` that have a gradient; throws when there is no gradient
    /// to apply.
    private func stepTargets(_ selected: Set<Parameter>) throws(GPTEmbeddingError) -> [StepTarget] {
        // A frozen table (a block format) is left out of the default set of every
        // parameter, and refused when a step names it.
        let w = tokenEmbedding.weight
        if w.blockType != nil, selected.contains(.tokenEmbedding), selected != Set(Parameter.allCases) {
            throw w.frozenError("takes no optimizer step")
        }
        var targets: [StepTarget] = []
        for p in Parameter.allCases where selected.contains(p) {
            guard let t = try? tensor(p), t.grad != nil else { continue }
            targets.append(StepTarget(parameter: p, tensor: t, rows: tracker(p)))
        }
        guard gradientPending || targets.contains(where: { $0.tensor.gradientShared }) else {
            throw GPTEmbeddingError(.badState, "no gradient to apply: run a training forward and backward before step (zero_grad discards the gradient of an earlier backward)")
        }
        return targets
    }

    /// The row tracker of a table, `nil` for the layer norm vectors.
    private func tracker(_ p: Parameter) -> RowTracker? {
        switch p {
        case .tokenEmbedding: touchedTokens
        case .positionEmbedding: touchedPositions
        case .layerNormWeight, .layerNormBias: nil
        }
    }

    /// One parameter's update: every row, or the rows in `rows` (a lazy step), in parallel.
    private func update(_ t: ParameterTensor, _ state: AdamWState, rows: RowTracker?, tracked: RowTracker?,
                        options o: AdamW, decay: Bool) {
        guard let grad = t.grad else { return }
        state.step += 1
        // The scalars as PyTorch computes them: in double from Python floats, then rounded
        // to float32 where the float32 kernel takes them.
        let step = Double(state.step)
        let (beta1, beta2) = o.betas
        let biasCorrection1 = 1 - pow(beta1, step)
        let biasCorrection2 = 1 - pow(beta2, step)
        let w1 = Float(1 - beta1)
        var a = gpte_adamw_args()
        a.cols = Int64(t.cols)
        a.param = t.storage.base
        a.param_dtype = t.dtype.rawValue
        a.master = state.master?.base
        a.grad = UnsafePointer(grad.base)
        a.exp_avg = state.expAvg.base
        a.exp_avg_sq = state.expAvgSq.base
        a.grad_scale = Float(o.gradScale)
        a.decay = decay ? Float(1 - o.lr * o.weightDecay) : 1
        a.lerp_small = w1 < 0.5 ? 1 : 0
        a.lerp_weight = w1 < 0.5 ? w1 : 1 - w1
        a.beta2 = Float(beta2)
        a.one_minus_beta2 = Float(1 - beta2)
        a.bias_correction2_sqrt = Float(biasCorrection2.squareRoot())
        a.eps = Float(o.eps)
        a.neg_step_size = Float(-(o.lr / biasCorrection1))
        var items = t.rows
        if let rows, !t.gradientShared {
            a.rows = rows.rowList
            items = rows.count
        } else if let tracked, !t.gradientShared {
            // Dense: rows backward never wrote since zero_grad hold +0 gradients (zeroed
            // then, or never written); the kernel skips reading them, with the same result.
            a.grad_rows = tracked.rowFlags
        }
        // A dense step streams a large 16-bit table's values out (see the kernel): 4M
        // values or more, as large as the forward's streamed outputs (`streamingThreshold`
        // floats, in bytes). A lazy step's rows, and small tables, stay in cache for the
        // next forward.
        let address = Int(bitPattern: t.storage.base)
        if a.master != nil, a.rows == nil, t.cols % 8 == 0, address % 16 == 0, t.rows * t.cols >= streamingThreshold * 2 {
            a.store_mode = address % 32 == 0 && t.cols % 16 == 0 ? Int32(GPTE_STORE_STREAM32) : Int32(GPTE_STORE_STREAM16)
        }
        // Per element: p, m, v read and written, g read (28 bytes in float32).
        let kernel = kernels.adamwRows
        withUnsafePointer(to: a) { args in
            let p = SendableConstPointer(args)
            pool.parallelFor(count: items, grain: WorkerPool.memoryGrain(bytesPerItem: 28 * t.cols)) { _, range in
                kernel(p.pointer, Int64(range.lowerBound), Int64(range.upperBound))
            }
        }
    }
}
