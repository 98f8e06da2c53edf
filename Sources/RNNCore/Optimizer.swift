import CKernels
import Dispatch
/// Which update rule, with its hyperparameters (PyTorch's semantics and defaults).
public enum OptimizerKind: Equatable, Sendable, Codable {
    /// Buffers of one value per parameter the optimizer keeps (momentum; Adam's two moments).
    public var slotCount: Int {
        switch self {
        case .sgd(let momentum, _): return momentum == 0 ? 0 : 1
        case .adam: return 2
        }
    }

    /// `torch.optim.SGD`: `g += wd·θ; buf = μ·buf + g (buf = g at the first step); θ -= lr·buf`.
    case sgd(momentum: Float, weightDecay: Float)
    /// `torch.optim.Adam` with bias correction; L2 weight decay added to the gradient.
    case adam(beta1: Float, beta2: Float, eps: Float, weightDecay: Float)

    public var name: String {
        switch self { case .sgd: return "sgd"; case .adam: return "adam" }
    }
}

/// An optimizer over one flat parameter buffer. Its state (momentum or Adam moments) is a set of flat
/// buffers in the parameters' layout, so checkpoints store it tensor by tensor.
public final class Optimizer {
    public let kind: OptimizerKind
    public let count: Int
    /// Number of updates applied so far.
    public var step: Int = 0
    /// SGD momentum buffer, or Adam's first and second moments.
    public let slots: [FloatBuffer]
    public var slotNames: [String] {
        switch kind {
        case .sgd(let m, _): return m == 0 ? [] : ["momentum_buffer"]
        case .adam: return ["exp_avg", "exp_avg_sq"]
        }
    }

    public init(_ kind: OptimizerKind, parameterCount: Int) {
        self.kind = kind
        count = parameterCount
        switch kind {
        case .sgd(let momentum, _): slots = momentum == 0 ? [] : [FloatBuffer(count: parameterCount)]
        case .adam: slots = [FloatBuffer(count: parameterCount), FloatBuffer(count: parameterCount)]
        }
    }

    /// Applies one update with learning rate `lr` to `params` from `gradScale`·`grads` (both in the same layout),
    /// split over `threads` threads in contiguous ranges (elementwise, so the result is the same for any split).
    /// With a row-sparse `support`, plain SGD (no momentum, no weight decay) visits only its values: elsewhere the
    /// gradient is zero and the step would leave the parameter as it is. Every other rule moves a parameter whose
    /// gradient is zero (momentum, Adam's moments, decay), so it runs over every value.
    ///
    /// Returns whether every parameter it wrote is finite (checked in the same pass): the others did not change, so
    /// with finite parameters before, false is the only way they can stop being finite.
    @discardableResult
    public func update(params: FloatBuffer, grads: FloatBuffer, lr: Float, gradScale: Float = 1, threads: Int = 1,
                       support: GradientSupport? = nil) -> Bool {
        precondition(params.count == count && grads.count == count,
                     "optimizer built for \(count) parameters got \(params.count) parameters and \(grads.count) gradients")
        if let support, !support.isDense, case .sgd(0, 0) = kind {
            precondition(support.count == count, "a gradient support of \(support.count) values for \(count) parameters")
            step += 1
            let p = SendablePointer(params.pointer), g = SendablePointer(grads.pointer)
            return allPieces(support.pieces, threads: threads) { r in
                rk_sgd_update(p.at(r.lowerBound), g.at(r.lowerBound), nil, Int64(r.count), gradScale, lr, 0, 0, 1) != 0
            }
        }
        step += 1
        let kind = kind, first: Int32 = step == 1 ? 1 : 0
        var corrected: (stepSize: Float, bc2Sqrt: Float) = (0, 0)
        if case .adam(let b1, let b2, _, _) = kind {
            let bc1 = 1 - pow(Double(b1), Double(step)), bc2 = 1 - pow(Double(b2), Double(step))
            corrected = (Float(Double(lr) / bc1), Float(bc2.squareRoot()))
        }
        let (stepSize, bc2Sqrt) = corrected
        let p = SendablePointer(params.pointer), g = SendablePointer(grads.pointer)
        let s0 = slots.first.map { SendablePointer($0.pointer) }, s1 = slots.count > 1 ? SendablePointer(slots[1].pointer) : nil
        return allRanges(count: count, threads: threads) { r in
            let n = Int64(r.count), o = r.lowerBound
            switch kind {
            case .sgd(let momentum, let wd):
                return rk_sgd_update(p.at(o), g.at(o), s0?.at(o), n, gradScale, lr, momentum, wd, first) != 0
            case .adam(let b1, let b2, let eps, let wd):
                return rk_adam_update(p.at(o), g.at(o), s0!.at(o), s1!.at(o), n, gradScale, b1, b2, eps, wd, stepSize,
                                      bc2Sqrt) != 0
            }
        }
    }
}

@inline(__always) private func pow(_ x: Double, _ n: Double) -> Double {
    // Integer powers only (step counts); exact repeated squaring keeps the core free of libm here.
    var result = 1.0, base = x, e = Int(n)
    while e > 0 {
        if e & 1 == 1 { result *= base }
        base *= base
        e >>= 1
    }
    return result
}
