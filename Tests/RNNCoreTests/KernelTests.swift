import RNNCore
import Testing

/// The vectorised reductions the trainer and the wire rely on, at lengths that leave every tail.
@Suite("Reductions")
struct ReductionTests {
    @Test(arguments: [1, 7, 15, 16, 17, 33, 1000])
    func allFiniteFindsEveryNonFiniteValue(_ n: Int) {
        var rng = RandomGenerator(seed: UInt64(n))
        let clean = (0..<n).map { _ in rng.uniform(-1e30, 1e30) }
        #expect(allFinite(clean))
        for bad in [Float.nan, .infinity, -.infinity, -Float.nan] {
            for at in Set([0, n / 2, n - 1]) {
                var x = clean
                x[at] = bad
                #expect(!allFinite(x), "\(bad) at \(at) of \(n) not found")
                #expect(!FloatBuffer(x).allFinite())
            }
        }
        #expect(allFinite([Float.greatestFiniteMagnitude, -.greatestFiniteMagnitude, .leastNonzeroMagnitude, 0, -0.0]))
    }

    /// The fused copy-and-check that received payloads go through: an exact copy, and a bad value found wherever
    /// it sits (vector body or scalar tail).
    @Test(arguments: [0, 1, 15, 16, 17, 1000])
    func copyAllFiniteCopiesAndFindsEveryNonFiniteValue(_ n: Int) {
        var rng = RandomGenerator(seed: UInt64(n) + 5)
        let x = (0..<n).map { _ in rng.uniform(-1e30, 1e30) }
        var out = [Float](repeating: 7, count: n)
        let ok = x.withUnsafeBytes { src in out.withUnsafeMutableBufferPointer { copyAllFinite(from: src.baseAddress ?? UnsafeRawPointer(bitPattern: 64)!, to: $0.baseAddress ?? UnsafeMutablePointer(bitPattern: 64)!, count: n) } }
        #expect(ok && out == x)
        for at in Set([0, n / 2, n - 1]) where n > 0 {
            for bad in [Float.nan, .infinity, -.infinity] {
                var y = x; y[at] = bad
                var o = [Float](repeating: 0, count: n)
                let fine = y.withUnsafeBytes { src in o.withUnsafeMutableBufferPointer { copyAllFinite(from: src.baseAddress!, to: $0.baseAddress!, count: n) } }
                #expect(!fine, "\(bad) at \(at) of \(n) not found")
            }
        }
    }

    /// The global norm must not depend on how many threads compute it (results may not depend on the split).
    @Test(arguments: [1, FloatBuffer.sumOfSquaresBlock - 1, FloatBuffer.sumOfSquaresBlock + 1, 5 * FloatBuffer.sumOfSquaresBlock + 7])
    func sumOfSquaresIsTheSameOnAnyThreadCount(_ n: Int) {
        var rng = RandomGenerator(seed: 11)
        let x = FloatBuffer((0..<n).map { _ in rng.uniform(-2, 2) })
        let one = x.sumOfSquares()
        for threads in [2, 3, 8] { #expect(x.sumOfSquares(threads: threads) == one, "\(threads) threads, n=\(n)") }
        let exact = x.array.reduce(0.0) { $0 + Double($1) * Double($1) }
        #expect(abs(one - exact) <= 1e-12 * max(exact, 1))
    }

    @Test(arguments: [0, 1, 15, 16, 17, 100_003])
    func sumOfSquaresMatchesDouble(_ n: Int) {
        var rng = RandomGenerator(seed: 9)
        let x = (0..<n).map { _ in rng.uniform(-3, 3) }
        let exact = x.reduce(0.0) { $0 + Double($1) * Double($1) }
        let got = FloatBuffer(x).sumOfSquares()
        #expect(abs(got - exact) <= 1e-12 * max(exact, 1), "n=\(n): \(got) vs \(exact)")
        #expect(FloatBuffer(x).sumOfSquares() == got, "not deterministic")
    }
}

/// A buffer whose values live elsewhere for a while: a local worker's parameters in the shared weights mapping,
/// its gradient in its shared-memory slot.
@Suite("FloatBuffer storage")
struct FloatBufferStorageTests {
    @Test func borrowedStorageIsWhatEveryReaderSeesThenOwnMemoryIsBack() {
        let b = FloatBuffer([1, 2, 3])
        var lent: [Float] = [7, 8, 9]
        let seen = lent.withUnsafeMutableBufferPointer { p in
            b.borrowing(p.baseAddress!) { () -> [Float] in
                #expect(!b.isOwnStorage)
                b[0] += 1  // writes go to the lent memory
                return b.array
            }
        }
        #expect(seen == [8, 8, 9])
        #expect(lent == [8, 8, 9])
        #expect(b.isOwnStorage && b.array == [1, 2, 3], "own memory untouched and back")
    }

    /// The coordinator's parameters move into the shared weights region for the run and come back at its end.
    @Test func relocatedValuesAreUsedThereAndCopiedBackOnReclaim() {
        let b = FloatBuffer([1, 2, 3])
        let region = UnsafeMutablePointer<Float>.allocate(capacity: 3)
        defer { region.deallocate() }
        #expect(b.copyCheckingFinite(to: region))
        b.relocate(to: region)
        b[2] = 30  // the update, in place
        #expect(region[2] == 30 && !b.isOwnStorage)
        b.reclaim()
        region[0] = -1
        #expect(b.isOwnStorage && b.array == [1, 2, 30])
    }

    /// The coordinator copies the weights into the shared region checking them as it goes (the workers no longer
    /// check): a non-finite value anywhere, in either thread's range, is found, and the copy is exact.
    @Test(arguments: [1, 2])
    func copyCheckingFiniteFindsAnyNonFiniteValue(threads: Int) {
        let n = 3 * (1 << 18) + 5
        let b = FloatBuffer((0..<n).map { Float($0 % 1000) - 500 })
        let out = UnsafeMutablePointer<Float>.allocate(capacity: n)
        defer { out.deallocate() }
        #expect(b.copyCheckingFinite(to: out, threads: threads) && b.allFinite(threads: threads))
        #expect(Array(UnsafeBufferPointer(start: out, count: n)) == b.array)
        for at in [0, n / 2 - 1, n / 2 + 64, n - 1] {
            for bad in [Float.nan, .infinity, -.infinity] {
                let saved = b[at]
                b[at] = bad
                #expect(!b.copyCheckingFinite(to: out, threads: threads), "\(bad) at \(at)")
                #expect(!b.allFinite(threads: threads), "\(bad) at \(at)")
                b[at] = saved
            }
        }
    }
}
