/// The hyperparameters of one AdamW step, with `torch.optim.AdamW`'s defaults.
///
/// A value type: a scheduler changes ``lr`` (or anything else) and passes the new value to
/// the next ``GPTEmbedding/step(_:)``.
///
/// ```swift
/// var adamw = AdamW(lr: 3e-4, weightDecay: 0.1, decayed: [.tokenEmbedding, .positionEmbedding])
/// for step in 0..<steps {
///     layer.zeroGrad()
///     _ = try layer.forward(ids: ids, batch: b, seq: t, training: true)
///     try layer.backward(gradOutput: dy, batch: b, seq: t)
///     adamw.lr = schedule(step)
///     try layer.step(adamw)
/// }
/// ```
public struct AdamW: Sendable, Equatable {
    /// Learning rate, >= 0 and finite. Default 1e-3.
    public var lr: Double
    /// Decay rates of the first and second moments, each in [0, 1). Default (0.9, 0.999).
    public var betas: (Double, Double)
    /// Added to the denominator, > 0 and finite. Default 1e-8.
    public var eps: Double
    /// Decoupled weight decay (`p *= 1 - lr * weightDecay`), >= 0 and finite, applied to the
    /// parameters in ``decayed``. Default 0.01.
    public var weightDecay: Double
    /// The parameters ``weightDecay`` applies to. Default: all (as `torch.optim.AdamW` over
    /// `model.parameters()`); GPT recipes decay the tables only.
    public var decayed: Set<GPTEmbedding.Parameter>
    /// The parameters this step updates (a parameter group). Default: all. A parameter
    /// without a gradient (the layer norm before any normalised forward) is skipped, as
    /// PyTorch skips a parameter whose `grad` is `None`.
    public var parameters: Set<GPTEmbedding.Parameter>
    /// Multiplies every gradient inside the step (clipping by a global norm:
    /// `min(1, maxNorm / norm)`); the gradients themselves are not changed. >= 0 and
    /// finite. Default 1.
    public var gradScale: Double
    /// Update only the table rows backward touched since the last `zeroGrad` (the token
    /// table and the learned position table; the layer norm is always dense): the other
    /// rows keep their values and moments, as with `torch.optim.SparseAdam` and LazyAdam.
    /// Default false (dense AdamW over every row).
    public var lazy: Bool

    /// Options with `torch.optim.AdamW`'s defaults unless given.
    public init(lr: Double = 1e-3, betas: (Double, Double) = (0.9, 0.999), eps: Double = 1e-8,
                weightDecay: Double = 0.01, decayed: Set<GPTEmbedding.Parameter> = Set(GPTEmbedding.Parameter.allCases),
                parameters: Set<GPTEmbedding.Parameter> = Set(GPTEmbedding.Parameter.allCases),
                gradScale: Double = 1, lazy: Bool = false) {
        self.lr = lr
        self.betas = betas
        self.eps = eps
        self.weightDecay = weightDecay
        self.decayed = decayed
        self.parameters = parameters
        self.gradScale = gradScale
        self.lazy = lazy
    }

    public static func == (a: AdamW, b: AdamW) -> Bool {
        a.lr == b.lr && a.betas.0 == b.betas.0 && a.betas.1 == b.betas.1 && a.eps == b.eps
            && a.weightDecay == b.weightDecay && a.decayed == b.decayed && a.parameters == b.parameters
            && a.gradScale == b.gradScale && a.lazy == b.lazy
    }

    /// Checks every value; the message names the bad one.
    public func validate() throws(GPTEmbeddingError) {
        func bad(_ s: String) -> GPTEmbeddingError { GPTEmbeddingError(.invalidArgument, s) }
        guard lr.isFinite, lr >= 0 else { throw bad("lr \(lr) must be finite and >= 0") }
        guard betas.0.isFinite, betas.0 >= 0, betas.0 < 1 else { throw bad("beta1 \(betas.0) must be in [0, 1)") }
        guard betas.1.isFinite, betas.1 >= 0, betas.1 < 1 else { throw bad("beta2 \(betas.1) must be in [0, 1)") }
        guard eps.isFinite, eps > 0 else { throw bad("eps \(eps) must be finite and > 0") }
        guard weightDecay.isFinite, weightDecay >= 0 else { throw bad("weight_decay \(weightDecay) must be finite and >= 0") }
        guard gradScale.isFinite, gradScale >= 0 else { throw bad("grad_scale \(gradScale) must be finite and >= 0") }
    }
}
