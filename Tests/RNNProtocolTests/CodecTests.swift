import RNNCore
import RNNProtocol
import Testing

let samples: [Message] = [
    .hello(WorkerHello(name: "w1", host: "h2", pid: 42)),
    .welcome(runID: 7, assignment: Array("{\"a\":1}".utf8), task: [0, 3, 2, 1, 7]),
    .weights(runID: 7, step: 12, epoch: 3, batch: 5, resetState: true, parameters: [1, -2, 0.5], state: []),
    .weights(runID: 7, step: 13, epoch: 3, batch: 6, resetState: false, parameters: [1, -2, 0.5], state: [0.25, 0.5]),
    .gradient(runID: 7, step: 12, lossSum: 31.25, tokens: 560, gradient: [0.1, 0.2, -0.3], state: [0.5, -0.5, 0], computeNanos: 123_456),
    .stop(runID: 7, reason: "training finished"),
    .heartbeat(runID: 7),
    .columns(runID: 7, step: 40, columns: [3, 0, 5]),
    .weightsReceived(runID: 7, step: 41),
]

@Suite("Wire protocol")
struct CodecTests {
    @Test(arguments: samples)
    func roundTrips(_ m: Message) throws {
        #expect(try Codec.decode(Codec.encode(m), runID: 7, parameterCount: 3) == m)
    }

    func expectRejection(_ frames: [[UInt8]], _ expected: ProtocolError, runID: UInt64? = 7, parameterCount: Int? = 3) {
        #expect(throws: expected) { try Codec.decode(frames, runID: runID, parameterCount: parameterCount) }
    }

    func patched(_ m: Message, at offset: Int, _ bytes: [UInt8]) -> [[UInt8]] {
        var f = Codec.encode(m)
        for (i, b) in bytes.enumerated() { f[0][offset + i] = b }
        return f
    }

    @Test func everyMalformedFieldIsRejectedWithItsReason() {
        let w = samples[2], g = samples[4]
        expectRejection([], .frameCount(0))
        expectRejection(Codec.encode(w) + [[0, 0, 0, 0]], .frameCount(3))
        expectRejection([Array(Codec.encode(w)[0].prefix(20))], .shortHeader(20))
        expectRejection(patched(w, at: 0, [0x58]), .badMagic(0x4D4C_4E58))
        expectRejection(patched(w, at: 4, [1, 0]), .badVersion(1))
        expectRejection(patched(w, at: 4, [2, 0]), .badVersion(2))
        expectRejection(patched(w, at: 4, [3, 0]), .badVersion(3))
        expectRejection(patched(w, at: 4, [4, 0]), .badVersion(4))
        expectRejection(patched(w, at: 4, [6, 0]), .badVersion(6))
        expectRejection(patched(w, at: 6, [99]), .unknownType(99))
        expectRejection(patched(w, at: 7, [1]), .reservedNonZero(1))
        expectRejection(patched(w, at: 24, [9]), .metaLength(declared: 9, actual: 5))
        expectRejection(patched(w, at: 28, [16]), .payloadLength(declared: 16, actual: 12))
        var unaligned = Codec.encode(w); unaligned[1].removeLast(); unaligned[0][28] = 11
        expectRejection(unaligned, .payloadNotAligned(11))
        expectRejection(Codec.encode(w), .wrongRun(expected: 8, got: 7), runID: 8)
        expectRejection([Codec.encode(w)[0]].map { var h = $0; h[28] = 0; return h }, .missingPayload(.weights))
        var hb = Codec.encode(samples[6]); hb.append([0, 0, 0, 0]); hb[0][28] = 4
        expectRejection(hb, .unexpectedPayload(.heartbeat))
        expectRejection(Codec.encode(w), .parameterCount(expected: 4, got: 3), parameterCount: 4)
        expectRejection(Codec.encode(.gradient(runID: 7, step: 1, lossSum: 1, tokens: 5, gradient: [1, .nan, 2], state: [], computeNanos: 0)), .nonFinite("gradient"))
        expectRejection(Codec.encode(.gradient(runID: 7, step: 1, lossSum: .infinity, tokens: 5, gradient: [1, 1, 2], state: [], computeNanos: 0)), .nonFinite("loss sum"))
        expectRejection(Codec.encode(.weights(runID: 7, step: 1, epoch: 0, batch: 0, resetState: false, parameters: [1, .infinity, 2], state: [])), .nonFinite("weights"))
        expectRejection(Codec.encode(.gradient(runID: 7, step: 1, lossSum: 1, tokens: 0, gradient: [1, 1, 2], state: [], computeNanos: 0)), .badMeta("token count 0 with a non-zero loss sum"))
        #expect(throws: Never.self) { try Codec.decode(Codec.encode(.gradient(runID: 7, step: 1, lossSum: 0, tokens: 0, gradient: [0, 0, 0], state: [], computeNanos: 0)), runID: 7, parameterCount: 3) }
        var shortMeta = Codec.encode(g); shortMeta[0] = Array(shortMeta[0].prefix(45)); shortMeta[0][24] = 5
        expectRejection(shortMeta, .badMeta("gradient metadata must be the loss sum, a state count, the compute time, a row-word count, an encoding and a value count"))
        var bigState = Codec.encode(g); bigState[0][48] = 200
        expectRejection(bigState, .stateCount(declared: 200, payload: 6))
        expectRejection(Codec.encode(.gradient(runID: 7, step: 1, lossSum: 1, tokens: 5, gradient: [1, 1, 2], state: [.nan], computeNanos: 0)), .nonFinite("carried state"))
        expectRejection(Codec.encode(.columns(runID: 7, step: 1, columns: [1, 1])), .badColumns)
        expectRejection(Codec.encode(.columns(runID: 7, step: 1, columns: [-2])), .badColumns)
        var badHello = Codec.encode(samples[0]); badHello[0] = Array(badHello[0].prefix(40)) + Array("{}".utf8); badHello[0][24] = 2
        expectRejection(badHello, .badMeta("hello is not a WorkerHello JSON object"))
    }

    /// Row-sparse tables' gradients travel as the support of their touched rows: the values before, inside (the
    /// touched rows) and after each table; then the row words (table count, per-table row counts, the rows), then
    /// the carried values. Every inconsistency is refused with its reason.
    @Test func rowSparseGradientsRoundTripAndMalformedRowsAreRejected() throws {
        // 2 values, a [4, 3] table, 1 value, a [3, 2] table, 1 value: P = 22. Rows 1 and 3 of the first touched,
        // row 0 of the second: 2 + 6 + 1 + 2 + 1 = 12 values.
        let tables = [SparseRowTensor(offset: 2, rows: 4, width: 3), SparseRowTensor(offset: 15, rows: 3, width: 2)], P = 22
        let values: [Float] = [1, 2, 10, 11, 12, 30, 31, 32, 5, 7, 8, 9]
        let rows: [[Int32]] = [[1, 3], [0]]
        let m = Message.gradient(runID: 7, step: 3, lossSum: 2, tokens: 4, gradient: values, state: [0.5], computeNanos: 9, rows: rows)
        #expect(try Codec.decode(Codec.encode(m), runID: 7, parameterCount: P, sparseRows: tables) == m)
        // Encoded from a whole gradient buffer and its support: the same frames.
        var full = [Float](repeating: 0, count: P)
        full[0] = 1; full[1] = 2; full[5...7] = [10, 11, 12]; full[11...13] = [30, 31, 32]; full[14] = 5; full[15...16] = [7, 8]; full[21] = 9
        let support = GradientSupport(count: P, tables: tables, rows: rows)
        #expect(support.valueCount == values.count && support.wireRows == [2, 2, 1, 1, 3, 0])
        let frames = full.withUnsafeBufferPointer {
            Codec.encodeGradient(runID: 7, step: 3, lossSum: 2, tokens: 4, gradient: $0, support: support, state: [0.5], computeNanos: 9)
        }
        #expect(frames == Codec.encode(m))
        // A local worker that accumulated its gradient in its shared-memory slot sends the whole buffer with the
        // same row words: only the support is read, and the message is the same.
        let words = support.wireRows
        let wholePayload = full.withUnsafeBytes { v in words.withUnsafeBytes { w in [Float(0.5)].withUnsafeBytes { Array(v) + Array(w) + Array($0) } } }
        let whole = [Codec.gradientHead(runID: 7, step: 3, lossSum: 2, tokens: 4, gradientCount: P, rowWords: words.count, stateCount: 1,
                                        computeNanos: 9), wholePayload]
        #expect(try Codec.decode(whole, runID: 7, parameterCount: P, sparseRows: tables) == m)
        #expect(try wholePayload.withUnsafeBytes {
            try Codec.decodeGradient(head: whole[0], payload: $0, runID: 7, parameterCount: P, sparseRows: tables)
        } == m)
        var wholeNaN = whole; wholeNaN[1][4 * 12] = 0xFF; wholeNaN[1][4 * 12 + 1] = 0xFF; wholeNaN[1][4 * 12 + 2] = 0xC0; wholeNaN[1][4 * 12 + 3] = 0x7F
        #expect(throws: ProtocolError.nonFinite("gradient")) { try Codec.decode(wholeNaN, runID: 7, parameterCount: P, sparseRows: tables) }
        // Summed back into a buffer, the values land where they came from.
        let sum = FloatBuffer(count: P)
        values.withUnsafeBufferPointer { sum.add(compact: $0, on: support) }
        #expect(sum.array == full)

        func rejects(_ g: [Float], _ rows: [[Int32]], _ e: ProtocolError, tables t: [SparseRowTensor] = tables) {
            let f = Codec.encode(.gradient(runID: 7, step: 3, lossSum: 2, tokens: 4, gradient: g, state: [], computeNanos: 0, rows: rows))
            #expect(throws: e) { try Codec.decode(f, runID: 7, parameterCount: P, sparseRows: t) }
        }
        let order = ProtocolError.badMeta("gradient rows must be ascending, unique and inside the table's 4 rows")
        rejects(values, [[3, 1], [0]], order)
        rejects(values, [[1, 1], [0]], order)
        rejects(values, [[1, 4], [0]], order)
        rejects(values, [[-1, 3], [0]], order)
        rejects(values, [[1, 3], [3]], .badMeta("gradient rows must be ascending, unique and inside the table's 3 rows"))
        rejects(values, [[1], [0]], .parameterCount(expected: 9, got: 12))
        rejects(Array(values.prefix(11)), rows, .parameterCount(expected: 12, got: 11))
        rejects(values, [[1, 3]], .badMeta("gradient lists rows of 1 tables, this model has 2 row-sparse tables"))
        rejects(values, rows, .badMeta("gradient lists rows of 2 tables, this model has 0 row-sparse tables"), tables: [])
        var nan = values; nan[4] = .nan
        rejects(nan, rows, .nonFinite("gradient"))
        var tooMany = Codec.encode(m); tooMany[0][60] = 200
        #expect(throws: ProtocolError.badMeta("gradient declares 12 float32 values and 200 row words, its payload holds 18 words before the carried state")) {
            try Codec.decode(tooMany, runID: 7, parameterCount: P, sparseRows: tables)
        }
        var badWords = Codec.encode(m); badWords[1][48] = 9  // the table count
        #expect(throws: ProtocolError.badMeta("gradient row words are not a table count, per-table row counts and the rows")) {
            try Codec.decode(badWords, runID: 7, parameterCount: P, sparseRows: tables)
        }
    }

    /// `--gradient-compression bf16`: the support's values as bfloat16 (two a word, an odd count padded), rounded
    /// to nearest even with error feedback: what rounding lost stays in the worker's residual, exactly, and is
    /// added to the next step's gradient. The coordinator expands them exactly and checks them finite.
    @Test func bfloat16GradientsCarryTheirRoundingErrorForward() throws {
        // 2 values, a [4, 3] table, 1 value: 15; rows 0 and 2 of the table touched.
        let tables = [SparseRowTensor(offset: 2, rows: 4, width: 3)], n = 15
        var g = [Float](repeating: 0, count: n)
        for i in 0..<n { g[i] = Float(i + 1) * 0.1234567 * (i % 2 == 0 ? 1 : -1) }
        for r in [1, 3] { for j in 0..<3 { g[2 + r * 3 + j] = 0 } }  // untouched rows are zero
        let support = GradientSupport(count: n, tables: tables, rows: [[0, 2]])
        #expect(support.valueCount == 9)  // odd: padded with one zero half-word
        var residual = [Float](repeating: 0, count: n)
        let before = residual
        let compressed = try #require(g.withUnsafeBufferPointer { gp in residual.withUnsafeMutableBufferPointer { Codec.compress(gp, support: support, residual: $0) } })
        #expect(compressed.count == 10 && compressed[9] == 0)
        let frames = g.withUnsafeBufferPointer {
            Codec.encodeGradient(runID: 7, step: 2, lossSum: 1, tokens: 3, gradient: $0, support: support, compressed: compressed,
                                 state: [0.25], computeNanos: 5)
        }
        #expect(frames[1].count == 4 * (5 + 4 + 1), "9 bfloat16 values in 5 words, 4 row words, 1 carried value")
        guard case .gradient(_, 2, 1, 3, let values, [0.25], 5, [[0, 2]]) = try Codec.decode(frames, runID: 7, parameterCount: n, sparseRows: tables) else {
            Issue.record("not the gradient sent"); return
        }
        // Sent + kept = what was there to send, exactly; the sent value is the nearest bfloat16.
        for (k, i) in support.ranges.flatMap({ Array($0) }).enumerated() {
            #expect(values[k] + residual[i] == g[i] + before[i], "value \(i)")
            #expect(values[k].bitPattern & 0xFFFF == 0)
            #expect(abs(residual[i]) <= abs(g[i]) * Float(1.0 / 256))
        }
        for i in 0..<n where !support.ranges.contains(where: { $0.contains(i) }) { #expect(residual[i] == 0) }
        // The next step sends the kept error too.
        let residualAfterFirst = residual
        let second = try #require(g.withUnsafeBufferPointer { gp in residual.withUnsafeMutableBufferPointer { Codec.compress(gp, support: support, residual: $0) } })
        for (k, i) in support.ranges.flatMap({ Array($0) }).enumerated() {
            let sent = Float(bitPattern: UInt32(second[k]) << 16)
            #expect(sent + residual[i] == g[i] + residualAfterFirst[i])
        }
        // Malformed: an unknown encoding, a value count the payload does not hold, an infinity.
        var badEncoding = frames; badEncoding[0][64] = 7
        #expect(throws: ProtocolError.badMeta("gradient encoding 7 is neither 0 (float32) nor 1 (bfloat16)")) {
            try Codec.decode(badEncoding, runID: 7, parameterCount: n, sparseRows: tables)
        }
        var badCount = frames; badCount[0][68] = 11
        #expect(throws: ProtocolError.badMeta("gradient declares 11 bfloat16 values and 4 row words, its payload holds 9 words before the carried state")) {
            try Codec.decode(badCount, runID: 7, parameterCount: n, sparseRows: tables)
        }
        var infinite = frames; infinite[1][2] = 0x80; infinite[1][3] = 0x7F  // value 1 = +inf
        #expect(throws: ProtocolError.nonFinite("gradient")) { try Codec.decode(infinite, runID: 7, parameterCount: n, sparseRows: tables) }
        // A non-finite gradient is not compressed (the worker sends it as Float32, for the coordinator to refuse),
        // and the residual starts over.
        var bad = g; bad[0] = .infinity
        #expect(bad.withUnsafeBufferPointer { gp in residual.withUnsafeMutableBufferPointer { Codec.compress(gp, support: support, residual: $0) } } == nil)
        #expect(residual.allSatisfy { $0 == 0 })
    }

    /// `decodeWeights` (the worker's in-place path) against `decode`: the same fields for every well-formed weights
    /// message, and the same rejection, with the same reason, for every malformed one `decode` rejects.
    @Test func inPlaceWeightsDecodingAgreesWithDecode() throws {
        func inPlace(_ frames: [[UInt8]], runID: UInt64 = 7, count: Int = 3) throws -> (Codec.WeightsFields, [Float]) {
            var params = [Float](repeating: -99, count: count)
            let payload = frames.count > 1 ? frames[1] : []
            let fields = try payload.withUnsafeBytes { raw in
                try params.withUnsafeMutableBufferPointer { p in
                    try Codec.decodeWeights(head: frames[0], payload: raw, runID: runID, into: p)
                }
            }
            return (fields, params)
        }
        for m in samples {
            guard case .weights(_, let step, let epoch, let batch, let reset, let params, let state) = m else { continue }
            let (f, p) = try inPlace(Codec.encode(m))
            #expect(f == Codec.WeightsFields(step: step, epoch: epoch, batch: batch, resetState: reset, state: state))
            #expect(p == params)
        }
        let w = samples[3]
        let malformed: [([[UInt8]], UInt64, Int)] = [
            (patched(w, at: 0, [0x58]), 7, 3), (patched(w, at: 4, [1, 0]), 7, 3), (patched(w, at: 7, [1]), 7, 3),
            (patched(w, at: 24, [9]), 7, 3), (patched(w, at: 28, [16]), 7, 3), (Codec.encode(w), 8, 3), (Codec.encode(w), 7, 4),
            (patched(w, at: 41, [200]), 7, 3), (patched(w, at: 40, [2]), 7, 3),
            (Codec.encode(.weights(runID: 7, step: 1, epoch: 0, batch: 0, resetState: false, parameters: [1, .nan, 2], state: [])), 7, 3),
            (Codec.encode(.weights(runID: 7, step: 1, epoch: 0, batch: 0, resetState: false, parameters: [1, 1, 2], state: [.infinity])), 7, 3),
        ]
        for (frames, run, count) in malformed {
            var expected: ProtocolError?
            do { _ = try Codec.decode(frames, runID: run, parameterCount: count) } catch { expected = error }
            #expect(expected != nil, "decode accepted a malformed message")
            #expect(throws: expected!) { _ = try inPlace(frames, runID: run, count: count) }
        }
        #expect(throws: ProtocolError.badMeta("expected a weights message, got gradient")) { _ = try inPlace(Codec.encode(samples[4])) }
    }

    /// Weights that carry changed rows only: applied to the parameters of their base step they give the new
    /// weights exactly; anything that does not fit (another base, rows outside a table, a wrong value count, a
    /// non-finite value, no tables) is refused with its reason, and rows are checked before anything is written.
    @Test func weightRowsUpdateTheBaseStepsWeights() throws {
        // Two tables of 4 rows × 2 inside 20 parameters: dense 0..<2, table 2..<10, dense 10..<12, table 12..<20.
        let tables = [SparseRowTensor(offset: 2, rows: 4, width: 2), SparseRowTensor(offset: 12, rows: 4, width: 2)]
        let old = (0..<20).map { Float($0) }
        var new = old.map { $0 + 0.5 }
        for r in [0, 2, 3] { new[2 + 2 * r] = old[2 + 2 * r]; new[3 + 2 * r] = old[3 + 2 * r] }  // table 0: row 1 changed
        for r in [0, 1, 2, 3] { new[12 + 2 * r] = old[12 + 2 * r]; new[13 + 2 * r] = old[13 + 2 * r] }  // table 1: none
        let support = GradientSupport(count: 20, tables: tables, rows: [[1], []])
        let head = Codec.weightRowsHead(runID: 7, step: 9, epoch: 1, batch: 2, resetState: true, support: support, baseStep: 8)
        let payload = new.withUnsafeBufferPointer { Codec.weightRowsPayload($0, support: support) }
        #expect(payload.count == 4 * (support.valueCount + support.wireRows.count) && support.valueCount == 2 + 2 + 2 + 0)
        func apply(_ head: [UInt8], _ payload: [UInt8], holding: UInt64? = 8, tables: [SparseRowTensor] = tables) throws -> ([Float], Codec.WeightsFields) {
            var p = old
            let f = try payload.withUnsafeBytes { raw in
                try p.withUnsafeMutableBufferPointer { try Codec.decodeWeights(head: head, payload: raw, runID: 7, into: $0, sparseRows: tables, holding: holding) }
            }
            return (p, f)
        }
        let (p, f) = try apply(head, payload)
        #expect(p.map(\.bitPattern) == new.map(\.bitPattern))
        #expect(f == Codec.WeightsFields(step: 9, epoch: 1, batch: 2, resetState: true, state: [], baseStep: 8))
        #expect(throws: ProtocolError.weightsBase(base: 8, held: 7)) { _ = try apply(head, payload, holding: 7) }
        #expect(throws: ProtocolError.weightsBase(base: 8, held: nil)) { _ = try apply(head, payload, holding: nil) }
        #expect((try? apply(head, payload, tables: [])) == nil, "a model without row-sparse tables takes no rows")
        // The generic decoder and the in-place reader refuse the form: it only makes sense applied to a worker's copy.
        #expect(throws: ProtocolError.self) { _ = try Codec.decode([head, payload], runID: 7, parameterCount: 20) }
        #expect(throws: ProtocolError.self) { _ = try payload.withUnsafeBytes { try Codec.decodeWeightsInPlace(head: head, payload: $0, runID: 7, parameterCount: 20) } }
        // A row outside its table, rows out of order, a value count that is not the rows', a non-finite value, a base
        // that is not earlier: refused, and the parameters untouched by every refusal but the non-finite one.
        func words(_ w: [Int32], values: Int) -> [UInt8] { new.prefix(values).withUnsafeBytes { Array($0) } + w.withUnsafeBytes { Array($0) } }
        func headFor(_ w: [Int32], values: Int, base: UInt64 = 8) -> [UInt8] {
            var h = head
            let n = UInt32(4 * (values + w.count))
            withUnsafeBytes(of: n.littleEndian) { for i in 0..<4 { h[28 + i] = $0[i] } }
            withUnsafeBytes(of: UInt32(w.count).littleEndian) { for i in 0..<4 { h[Header.size + 5 + i] = $0[i] } }
            withUnsafeBytes(of: base.littleEndian) { for i in 0..<8 { h[Header.size + 9 + i] = $0[i] } }
            return h
        }
        for (w, values) in [([2, 1, 0, 4], 6), ([2, 2, 0, 2, 1], 8), ([2, 1, 0, 1], 7), ([1, 1, 1], 6)] as [([Int32], Int)] {
            var p = old
            #expect(throws: ProtocolError.self, "rows \(w) with \(values) values") {
                _ = try words(w, values: values).withUnsafeBytes { raw in
                    try p.withUnsafeMutableBufferPointer { try Codec.decodeWeights(head: headFor(w, values: values), payload: raw, runID: 7, into: $0, sparseRows: tables, holding: 8) }
                }
            }
            #expect(p == old)
        }
        #expect(throws: ProtocolError.badMeta("changed rows for step 9 from step 9, not an earlier one")) {
            _ = try apply(headFor([2, 1, 0, 1], values: 6, base: 9), payload, holding: 9)
        }
        var bad = new; bad[0] = .nan
        let badPayload = bad.withUnsafeBufferPointer { Codec.weightRowsPayload($0, support: support) }
        #expect(throws: ProtocolError.nonFinite("weights")) { _ = try apply(head, badPayload) }
    }

    /// `decodeGradient` (the coordinator's path for a gradient in shared memory) against `decode`: the same message,
    /// or the same rejection with the same reason.
    @Test func inPlaceGradientDecodingAgreesWithDecode() throws {
        func inPlace(_ frames: [[UInt8]], runID: UInt64 = 7, count: Int = 3) throws -> Message {
            try (frames.count > 1 ? frames[1] : []).withUnsafeBytes { raw in
                try Codec.decodeGradient(head: frames[0], payload: raw, runID: runID, parameterCount: count)
            }
        }
        let g = samples[4]
        #expect(try inPlace(Codec.encode(g)) == g)
        var bigState = Codec.encode(g); bigState[0][48] = 200
        let malformed: [([[UInt8]], UInt64, Int)] = [
            (patched(g, at: 7, [1]), 7, 3), (patched(g, at: 24, [9]), 7, 3), (patched(g, at: 28, [16]), 7, 3),
            (Codec.encode(g), 8, 3), (Codec.encode(g), 7, 4), (bigState, 7, 3),
            (Codec.encode(.gradient(runID: 7, step: 1, lossSum: 1, tokens: 5, gradient: [1, .nan, 2], state: [], computeNanos: 0)), 7, 3),
            (Codec.encode(.gradient(runID: 7, step: 1, lossSum: .infinity, tokens: 5, gradient: [1, 1, 2], state: [], computeNanos: 0)), 7, 3),
            (Codec.encode(.gradient(runID: 7, step: 1, lossSum: 1, tokens: 0, gradient: [1, 1, 2], state: [], computeNanos: 0)), 7, 3),
            (Codec.encode(.gradient(runID: 7, step: 1, lossSum: 1, tokens: 5, gradient: [1, 1, 2], state: [.nan], computeNanos: 0)), 7, 3),
        ]
        for (frames, run, count) in malformed {
            var expected: ProtocolError?
            do { _ = try Codec.decode(frames, runID: run, parameterCount: count) } catch { expected = error }
            #expect(expected != nil, "decode accepted a malformed message")
            #expect(throws: expected!) { _ = try inPlace(frames, runID: run, count: count) }
        }
        #expect(throws: ProtocolError.badMeta("expected a gradient message, got weights")) { _ = try inPlace(Codec.encode(samples[2])) }
    }

    @Test func randomBytesNeverCrashTheDecoder() {
        var state: UInt64 = 12345
        func next() -> UInt8 { state = state &* 6364136223846793005 &+ 1; return UInt8(truncatingIfNeeded: state >> 56) }
        var rejected = 0
        for i in 0..<20_000 {
            var frames = Codec.encode(samples[i % samples.count])
            let f = Int(next()) % frames.count
            if frames[f].isEmpty { continue }
            for _ in 0..<(1 + Int(next()) % 4) { frames[f][Int(next()) % frames[f].count] = next() }
            if next() % 4 == 0 { frames[f].removeLast(Int(next()) % (frames[f].count + 1)) }
            if (try? Codec.decode(frames, runID: 7, parameterCount: 3)) == nil { rejected += 1 }
        }
        #expect(rejected > 10_000)
    }
}
