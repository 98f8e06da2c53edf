import Foundation
import RNNCore
import Testing

// Shape legend: N rows, I input width, V classes.

/// `OutputLayer` (decoder + softmax cross-entropy, with the bias gradient summed inside the loss kernel) against a
/// float64 reference written here, and by finite differences. Shapes cover a single row, rows that are not a
/// multiple of the GEMM tiles, V below, at, and not a multiple of the kernels' 16 lanes, and masked rows.
@Suite("Output layer (decoder + softmax cross-entropy)")
struct OutputLayerTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let N: Int, I: Int, V: Int, masked: [Int], scale: Float
        var testDescription: String { "N=\(N) I=\(I) V=\(V) masked=\(masked) scale=\(scale)" }
    }

    static let cases: [Case] = [
        Case(N: 1, I: 3, V: 5, masked: [], scale: 1),
        Case(N: 1, I: 4, V: 16, masked: [], scale: 0.25),
        Case(N: 13, I: 5, V: 37, masked: [], scale: 1),
        Case(N: 13, I: 5, V: 37, masked: [0, 4, 12], scale: 0.5),
        Case(N: 9, I: 7, V: 1_003, masked: [8], scale: 1),
        Case(N: 4, I: 3, V: 33, masked: [0, 1, 2, 3], scale: 1),
    ]

    final class Problem {
        let c: Case
        let layer: OutputLayer
        let params: FloatBuffer, x: FloatBuffer
        let targets: [Int32], mask: [Float]?

        init(_ c: Case, seed: UInt64) {
            self.c = c
            let layout = ParameterLayout(shapes: Linear.parameterShapes(name: "decoder", inputs: c.I, outputs: c.V))
            layer = OutputLayer(name: "decoder", inputs: c.I, classes: c.V, layout: layout)
            var rng = RandomGenerator(seed: seed)
            params = FloatBuffer((0..<layout.count).map { _ in rng.uniform(-1, 1) })
            x = FloatBuffer((0..<(c.N * c.I)).map { _ in rng.uniform(-1, 1) })
            // Masked rows get an out-of-range target: the layer must not read it.
            targets = (0..<c.N).map { r in c.masked.contains(r) ? Int32(c.V + 7) : Int32(rng.int(below: c.V)) }
            mask = c.masked.isEmpty ? nil : (0..<c.N).map { c.masked.contains($0) ? 0 : 1 }
        }

        func withMask<R>(_ body: (UnsafePointer<Float>?) -> R) -> R {
            guard let mask else { return body(nil) }
            return mask.withUnsafeBufferPointer { body($0.baseAddress!) }
        }

        func loss() -> LossSum {
            let logits = FloatBuffer(count: c.N * c.V)
            return withMask { layer.loss(x.pointer, rows: c.N, targets: targets, mask: $0, parameters: params.pointer,
                                         logits: logits.pointer) }
        }
    }

    @Test(arguments: cases)
    func matchesFloat64Reference(_ c: Case) {
        let p = Problem(c, seed: 21)
        let (N, I, V) = (c.N, c.I, c.V)
        let wOff = p.layer.linear.weightOffset, bOff = p.layer.linear.biasOffset
        // Reference in Double.
        var loss = 0.0, count = 0
        var dW = [Double](repeating: 0, count: V * I), db = [Double](repeating: 0, count: V)
        var dx = [Double](repeating: 0, count: N * I)
        for r in 0..<N where p.mask?[r] ?? 1 != 0 {
            count += 1
            var z = [Double](repeating: 0, count: V)
            for v in 0..<V {
                z[v] = Double(p.params[bOff + v])
                for i in 0..<I { z[v] += Double(p.x[r * I + i]) * Double(p.params[wOff + v * I + i]) }
            }
            let m = z.max()!, lse = m + log(z.reduce(0) { $0 + exp($1 - m) })
            let y = Int(p.targets[r])
            loss += lse - z[y]
            for v in 0..<V {
                let g = Double(c.scale) * (exp(z[v] - lse) - (v == y ? 1 : 0))
                db[v] += g
                for i in 0..<I {
                    dW[v * I + i] += g * Double(p.x[r * I + i])
                    dx[r * I + i] += g * Double(p.params[wOff + v * I + i])
                }
            }
        }
        // The layer, accumulating onto nonzero buffers.
        var rng = RandomGenerator(seed: 5)
        let grads = FloatBuffer((0..<p.params.count).map { _ in rng.uniform(-1, 1) })
        let dxBuf = FloatBuffer((0..<(N * I)).map { _ in rng.uniform(-1, 1) })
        let grads0 = grads.array, dx0 = dxBuf.array
        let logits = FloatBuffer(count: N * V)
        let got = p.withMask {
            p.layer.forwardBackward(p.x.pointer, rows: N, targets: p.targets, mask: $0, scale: c.scale,
                                    parameters: p.params.pointer, gradients: grads.pointer, logits: logits.pointer,
                                    dx: dxBuf.pointer)
        }
        #expect(got.count == count)
        #expect(abs(got.sum - loss) <= 1e-5 * max(1, abs(loss)), "loss \(got.sum) vs \(loss)")
        #expect(p.loss() == got, "the forward-only loss is the same sum")
        func close(_ a: Float, _ b: Double) -> Bool { abs(Double(a) - b) <= 1e-5 * max(1, abs(b)) }
        for k in 0..<(V * I) { #expect(close(grads[wOff + k] - grads0[wOff + k], dW[k]), "dW[\(k)]") }
        for v in 0..<V { #expect(close(grads[bOff + v] - grads0[bOff + v], db[v]), "db[\(v)]") }
        for k in 0..<(N * I) { #expect(close(dxBuf[k] - dx0[k], dx[k]), "dx[\(k)]") }
        // Masked rows' gradient rows are exactly zero.
        for r in c.masked { for v in 0..<V { #expect(logits[r * V + v] == 0) } }
    }

    @Test(arguments: [cases[2], cases[3], cases[5]])
    func finiteDifferences(_ c: Case) {
        let p = Problem(c, seed: 33)
        let grads = FloatBuffer(count: p.params.count), dx = FloatBuffer(count: c.N * c.I)
        let logits = FloatBuffer(count: c.N * c.V)
        _ = p.withMask {
            p.layer.forwardBackward(p.x.pointer, rows: c.N, targets: p.targets, mask: $0, parameters: p.params.pointer,
                                    gradients: grads.pointer, logits: logits.pointer, dx: dx.pointer)
        }
        let objective = { p.loss().sum }
        let eParams = LayerGradientTests.error(
            LayerGradientTests.numeric(p.params.pointer, count: p.params.count, eps: 1e-2, objective), grads.array)
        let eInput = LayerGradientTests.error(
            LayerGradientTests.numeric(p.x.pointer, count: c.N * c.I, eps: 1e-2, objective), dx.array)
        #expect(eParams < LayerGradientTests.tolerance, "parameters: \(eParams)")
        #expect(eInput < LayerGradientTests.tolerance || c.masked.count == c.N, "input: \(eInput)")
        print("output layer gradcheck \(c.testDescription): parameters \(eParams), input \(eInput)")
    }
}
