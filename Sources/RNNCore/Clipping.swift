/// Global L2 norm of a gradient buffer (accumulated in Double, in buffer order).
public func globalNorm(_ g: FloatBuffer) -> Double { g.sumOfSquares().squareRoot() }

/// D2L's `grad_clipping`: when the global L2 norm exceeds `maxNorm`, scales every gradient by
/// `maxNorm / norm`. Returns the norm before clipping.
@discardableResult
public func clipGlobalNorm(_ g: FloatBuffer, maxNorm: Double) -> Double {
    let norm = globalNorm(g)
    if maxNorm > 0, norm > maxNorm { g.scale(by: Float(maxNorm / norm)) }
    return norm
}

/// The factor D2L's clipping multiplies a gradient of global norm `norm` by: `maxNorm / norm` when the norm exceeds
/// `maxNorm` (> 0), else 1. The trainer folds it into the optimizer's gradient scale instead of rescaling the buffer.
public func clipFactor(norm: Double, maxNorm: Double) -> Double { maxNorm > 0 && norm > maxNorm ? maxNorm / norm : 1 }
