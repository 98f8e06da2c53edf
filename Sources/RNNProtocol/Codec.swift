import Foundation
import RNNCore

/// Encodes messages into frames and decodes frames with strict validation.
public enum Codec {
    /// The frames of `message`: header+meta, then the payload when there is one.
    public static func encode(_ message: Message) -> [[UInt8]] {
        var runID: UInt64 = 0, step: UInt64 = 0, aux: UInt64 = 0
        var meta: [UInt8] = []
        var payload: [UInt8]? = nil
        switch message {
        case .hello(let h):
            meta = Array((try? JSONEncoder().encode(h)) ?? Data())
        case .welcome(let r, let assignment, let task):
            runID = r; meta = assignment; payload = task
        case .weights(let r, let s, let epoch, let batch, let reset, let params, let state):
            runID = r; step = s
            aux = UInt64(epoch) << 32 | UInt64(batch)
            meta = [reset ? 1 : 0]
            append(&meta, UInt32(state.count))
            payload = params.withUnsafeBytes { p in state.withUnsafeBytes { bytes(of: [p, $0]) } }
        case .gradient(let r, let s, let lossSum, let tokens, let g, let state, let nanos, let rows):
            let words = GradientSupport.wire(rows: rows)
            let payload = g.withUnsafeBytes { v in words.withUnsafeBytes { i in state.withUnsafeBytes { bytes(of: [v, i, $0]) } } }
            return [gradientHead(runID: r, step: s, lossSum: lossSum, tokens: tokens, gradientCount: g.count,
                                 rowWords: words.count, stateCount: state.count, computeNanos: nanos), payload]
        case .stop(let r, let reason):
            runID = r; meta = Array(reason.utf8)
        case .heartbeat(let r):
            runID = r
        case .columns(let r, let s, let cols):
            runID = r; step = s; payload = bytes(of: cols)
        case .weightsReceived(let r, let s):
            runID = r; step = s
        }
        let head = head(type: message.type, runID: runID, step: step, meta: meta, payloadCount: payload?.count ?? 0, aux: aux)
        return payload.map { [head, $0] } ?? [head]
    }

    /// The frames of a gradient message, read straight from `gradient` (a worker's whole gradient buffer): the
    /// values of `support` (all of them for a dense support) and its rows go into the payload with one copy, as
    /// Float32, or as the bfloat16 values `compressed` (`compress`) when given.
    public static func encodeGradient(runID: UInt64, step: UInt64, lossSum: Double, tokens: UInt32,
                                      gradient: UnsafeBufferPointer<Float>, support: GradientSupport? = nil,
                                      compressed: [UInt16]? = nil, state: [Float], computeNanos: UInt64) -> [[UInt8]] {
        let support = support ?? .dense(gradient.count)
        precondition(support.count == gradient.count, "a support of \(support.count) values for a gradient of \(gradient.count)")
        let words = support.wireRows
        let payload = state.withUnsafeBytes { st in
            words.withUnsafeBytes { rows in
                (compressed ?? []).withUnsafeBytes { c in
                    bytes(of: gradientPayloadParts(gradient, support: support, compressed: compressed == nil ? nil : c, rows: rows, state: st))
                }
            }
        }
        return [gradientHead(runID: runID, step: step, lossSum: lossSum, tokens: tokens, gradientCount: support.valueCount,
                             encoding: compressed == nil ? .float32 : .bfloat16, rowWords: words.count,
                             stateCount: state.count, computeNanos: computeNanos), payload]
    }

    /// The values of `support` in `gradient` rounded to bfloat16 with error feedback through `residual` (the
    /// whole buffer's size: what rounding lost, added before the next rounding), padded to an even count with a
    /// zero. Nil when some value is not finite (the residual is reset; send the Float32 values, which the
    /// coordinator refuses as non-finite).
    public static func compress(_ gradient: UnsafeBufferPointer<Float>, support: GradientSupport,
                                residual: UnsafeMutableBufferPointer<Float>) -> [UInt16]? {
        precondition(support.count == gradient.count && residual.count == gradient.count, "compressing a gradient of \(gradient.count) values with a residual of \(residual.count)")
        let n = support.valueCount
        var finite = true
        let out = [UInt16](unsafeUninitializedCapacity: n + (n & 1)) { buf, done in
            var at = 0
            for r in support.ranges {
                finite = bf16Compress(gradient.baseAddress! + r.lowerBound, residual: residual.baseAddress! + r.lowerBound,
                                      count: r.count, into: buf.baseAddress! + at) && finite
                at += r.count
            }
            if n & 1 == 1 { buf[n] = 0 }
            done = n + (n & 1)
        }
        if !finite { residual.update(repeating: 0) }
        return finite ? out : nil
    }

    /// A gradient payload as the pieces to copy in order: the values of each range of `support` in `gradient`
    /// (or the bfloat16 `compressed` bytes), then the rows' bytes (`rows`, the support's `wireRows`), then the
    /// carried values' bytes.
    public static func gradientPayloadParts(_ gradient: UnsafeBufferPointer<Float>, support: GradientSupport,
                                            compressed: UnsafeRawBufferPointer? = nil,
                                            rows: UnsafeRawBufferPointer, state: UnsafeRawBufferPointer) -> [UnsafeRawBufferPointer] {
        var parts = compressed.map { [$0] }
            ?? support.ranges.map { UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(gradient)[(4 * $0.lowerBound)..<(4 * $0.upperBound)]) }
        parts.append(rows)
        parts.append(state)
        return parts
    }

    /// The first frame of a gradient message whose payload is `gradientCount` values in `encoding`, `rowWords`
    /// Int32 row words (`GradientSupport.wireRows`) and `stateCount` Float32 carried values.
    public static func gradientHead(runID: UInt64, step: UInt64, lossSum: Double, tokens: UInt32, gradientCount: Int,
                                    encoding: GradientEncoding = .float32, rowWords: Int = 0, stateCount: Int,
                                    computeNanos: UInt64) -> [UInt8] {
        var meta = withUnsafeBytes(of: lossSum.bitPattern.littleEndian) { Array($0) }
        append(&meta, UInt32(stateCount))
        append(&meta, computeNanos)
        append(&meta, UInt32(rowWords))
        append(&meta, encoding.rawValue)
        append(&meta, UInt32(gradientCount))
        return head(type: .gradient, runID: runID, step: step, meta: meta,
                    payloadCount: 4 * (encoding.words(gradientCount) + rowWords + stateCount), aux: UInt64(tokens))
    }

    /// The value count a gradient head declares (nil for anything else): P for a local worker's whole buffer,
    /// the support's count for compact values.
    public static func gradientValueCount(_ head: [UInt8]) -> Int? {
        guard let h = try? header(clearingSharedPayloadFlag(head)), h.type == .gradient, head.count >= Header.size + 32 else { return nil }
        return Int(read(head, Header.size + 28) as UInt32)
    }

    /// Header byte 7, reserved (0) on the wire, is non-zero on a head frame sent alone because its payload waits in
    /// shared memory: 1 in the sender's own slot, 2 (`sharedWeightsFlag`) in the run's shared weights region. The
    /// receiver clears it and decodes the payload where it lies (`decodeWeights`, `decodeGradient`) or puts it back
    /// as the second frame for `decode`; a flagged head from a peer without shared memory is rejected there.
    public static let sharedPayloadFlagOffset = 7

    /// `head` marked "payload in shared memory" (the sender's own slot).
    public static func flaggingSharedPayload(_ head: [UInt8]) -> [UInt8] {
        var h = head
        h[sharedPayloadFlagOffset] = 1
        return h
    }

    /// The flag value of a weights head whose parameters wait in the run's shared weights region (one copy read by
    /// every local worker) rather than in the worker's own slot.
    public static let sharedWeightsFlag: UInt8 = 2

    /// `head` marked "parameters in the shared weights region".
    public static func flaggingSharedWeights(_ head: [UInt8]) -> [UInt8] {
        var h = head
        h[sharedPayloadFlagOffset] = sharedWeightsFlag
        return h
    }

    /// True for a lone head frame flagged by `flaggingSharedPayload`.
    public static func isSharedPayloadHead(_ frames: [[UInt8]]) -> Bool {
        frames.count == 1 && frames[0].count >= Header.size && frames[0][sharedPayloadFlagOffset] == 1
    }

    /// True for a lone head frame flagged by `flaggingSharedWeights`.
    public static func isSharedWeightsHead(_ frames: [[UInt8]]) -> Bool {
        frames.count == 1 && frames[0].count >= Header.size && frames[0][sharedPayloadFlagOffset] == sharedWeightsFlag
    }

    /// `head` with the "payload in shared memory" flag cleared, as `decode` and `decodeWeights` expect it.
    public static func clearingSharedPayloadFlag(_ head: [UInt8]) -> [UInt8] {
        var h = head
        if h.count > sharedPayloadFlagOffset { h[sharedPayloadFlagOffset] = 0 }
        return h
    }

    /// The message with its payload restored from shared memory, ready for `decode`; nil when the payload's
    /// length is not the one the head declares.
    public static func restoringSharedPayload(_ frames: [[UInt8]], payload: [UInt8]) -> [[UInt8]]? {
        let h = clearingSharedPayloadFlag(frames[0])
        let declared: UInt32 = read(h, 28)
        guard Int(declared) == payload.count else { return nil }
        return [h, payload]
    }

    static func head(type: MessageType, runID: UInt64, step: UInt64, meta: [UInt8], payloadCount: Int, aux: UInt64,
                     version: UInt16 = Header.version) -> [UInt8] {
        var head = [UInt8]()
        head.reserveCapacity(Header.size + meta.count)
        append(&head, Header.magic)
        append(&head, version)
        head.append(type.rawValue)
        head.append(0)
        append(&head, runID)
        append(&head, step)
        append(&head, UInt32(meta.count))
        append(&head, UInt32(payloadCount))
        append(&head, aux)
        head += meta
        return head
    }

    /// The first frame of a weights message whose payload (sent separately, e.g. as one shared ZeroMQ message
    /// for every worker) is `parameterCount` Float32 values and no state.
    public static func weightsHead(runID: UInt64, step: UInt64, epoch: UInt32, batch: UInt32, resetState: Bool,
                                   parameterCount: Int) -> [UInt8] {
        var head = encode(.weights(runID: runID, step: step, epoch: epoch, batch: batch, resetState: resetState,
                                   parameters: [], state: []))[0]
        withUnsafeBytes(of: UInt32(parameterCount * 4).littleEndian) { for i in 0..<4 { head[28 + i] = $0[i] } }
        return head
    }

    /// The first frame of a weights message that carries only what changed since the weights of step `baseStep`
    /// (`weightRowsPayload`): every value outside the row-sparse tables and the listed rows of each, then the row
    /// words (`GradientSupport.wireRows`); no carried values. Metadata: the reset byte, a state count (0), the
    /// row-word count and `baseStep`.
    public static func weightRowsHead(runID: UInt64, step: UInt64, epoch: UInt32, batch: UInt32, resetState: Bool,
                                      support: GradientSupport, baseStep: UInt64) -> [UInt8] {
        var meta: [UInt8] = [resetState ? 1 : 0]
        append(&meta, UInt32(0))
        append(&meta, UInt32(support.wireRows.count))
        append(&meta, baseStep)
        return head(type: .weights, runID: runID, step: step, meta: meta,
                    payloadCount: 4 * (support.valueCount + support.wireRows.count), aux: UInt64(epoch) << 32 | UInt64(batch))
    }

    /// The payload of `weightRowsHead`: the values of `support` in `parameters`, then its row words.
    public static func weightRowsPayload(_ parameters: UnsafeBufferPointer<Float>, support: GradientSupport) -> [UInt8] {
        let words = support.wireRows
        return words.withUnsafeBytes { bytes(of: weightRowsParts(parameters, support: support, rowWords: $0)) }
    }

    /// `weightRowsPayload` as the pieces to copy in order (e.g. straight into a socket's frames); `rowWords` holds
    /// the bytes of `support.wireRows`.
    public static func weightRowsParts(_ parameters: UnsafeBufferPointer<Float>, support: GradientSupport,
                                       rowWords: UnsafeRawBufferPointer) -> [UnsafeRawBufferPointer] {
        precondition(support.count == parameters.count, "a support of \(support.count) values for \(parameters.count) parameters")
        precondition(rowWords.count == 4 * support.wireRows.count, "row words of another support")
        return gradientPayloadParts(parameters, support: support, rows: rowWords, state: UnsafeRawBufferPointer(start: nil, count: 0))
    }

    /// Bytes of a weights message's metadata: the reset byte and the state count; the form that carries changed
    /// rows only (`weightRowsHead`) adds the row-word count and the base step.
    static let weightsMetaBytes = 5, weightRowsMetaBytes = 17

    /// A stop message in protocol `version`'s framing, which has not changed since version 1: how a peer that
    /// speaks another version is told why it is refused, in words it can decode.
    public static func refusal(version: UInt16, reason: String) -> [[UInt8]] {
        [head(type: .stop, runID: 0, step: 0, meta: Array(reason.utf8), payloadCount: 0, aux: 0, version: version)]
    }

    /// The protocol version a frame declares, when it is an rnnlm frame at all.
    public static func declaredVersion(_ frame: [UInt8]) -> UInt16? {
        guard frame.count >= Header.size, read(frame, 0) as UInt32 == Header.magic else { return nil }
        return read(frame, 4)
    }

    /// Header fields only (for logging a rejected message's type and step).
    public static func header(_ frame: [UInt8]) throws(ProtocolError) -> Header {
        guard frame.count >= Header.size else { throw .shortHeader(frame.count) }
        let magic: UInt32 = read(frame, 0), version: UInt16 = read(frame, 4)
        guard magic == Header.magic else { throw .badMagic(magic) }
        guard version == Header.version else { throw .badVersion(version) }
        guard let type = MessageType(rawValue: frame[6]) else { throw .unknownType(frame[6]) }
        guard frame[7] == 0 else { throw .reservedNonZero(frame[7]) }
        return Header(type: type, runID: read(frame, 8), step: read(frame, 16), metaLength: read(frame, 24),
                      payloadLength: read(frame, 28), aux: read(frame, 32))
    }

    /// Decodes and validates. `runID` (when given) must match; `parameterCount` (when given) must match the
    /// length of weights and gradients, a gradient being the support of its rows of `sparseRows` when the task has
    /// row-sparse tables (see `Message.gradient`). A welcome's task description is the task's to validate.
    public static func decode(_ frames: [[UInt8]], runID expectedRun: UInt64? = nil,
                              parameterCount: Int? = nil, sparseRows: [SparseRowTensor] = []) throws(ProtocolError) -> Message {
        guard frames.count == 1 || frames.count == 2 else { throw .frameCount(frames.count) }
        let payload = frames.count == 2 ? frames[1] : nil
        let (h, meta) = try checkedHead(frames[0], payloadCount: payload?.count, runID: expectedRun)
        switch h.type {
        case .hello:
            guard let hello = try? JSONDecoder().decode(WorkerHello.self, from: Data(meta)) else { throw .badMeta("hello is not a WorkerHello JSON object") }
            guard hello.protocolVersion == Header.version else { throw .badVersion(hello.protocolVersion) }
            return .hello(hello)
        case .welcome:
            return .welcome(runID: h.runID, assignment: meta, task: payload!)
        case .weights:
            try checkWeightsMeta(meta)
            guard meta.count == weightsMetaBytes else {
                throw .badMeta("weights that carry changed rows only update a worker's parameters: decode them with decodeWeights")
            }
            let (params, state) = try split(payload!, stateCount: read(meta, 1))
            if let n = parameterCount, params.values.count != n { throw .parameterCount(expected: n, got: params.values.count) }
            if !params.finite || !state.finite { throw .nonFinite("weights") }
            return .weights(runID: h.runID, step: h.step, epoch: UInt32(h.aux >> 32), batch: UInt32(truncatingIfNeeded: h.aux),
                            resetState: meta[0] == 1, parameters: params.values, state: state.values)
        case .gradient:
            return try withBytes(payload!) { raw throws(ProtocolError) in
                try gradient(h, meta, raw, parameterCount: parameterCount, sparseRows: sparseRows)
            }
        case .stop:
            guard let reason = String(validating: meta, as: UTF8.self) else { throw .badMeta("stop reason is not UTF-8") }
            return .stop(runID: h.runID, reason: reason)
        case .heartbeat:
            guard meta.isEmpty else { throw .badMeta("heartbeat has no metadata") }
            return .heartbeat(runID: h.runID)
        case .weightsReceived:
            guard meta.isEmpty else { throw .badMeta("weightsReceived has no metadata") }
            return .weightsReceived(runID: h.runID, step: h.step)
        case .columns:
            let cols: [Int32] = values(payload!)
            guard !cols.isEmpty, cols.allSatisfy({ $0 >= 0 }), Set(cols).count == cols.count else { throw .badColumns }
            return .columns(runID: h.runID, step: h.step, columns: cols)
        }
    }

    /// The head's fields and metadata, checked against the payload's length (nil: no payload frame) and the run.
    static func checkedHead(_ head: [UInt8], payloadCount: Int?, runID expectedRun: UInt64?) throws(ProtocolError) -> (Header, [UInt8]) {
        let h = try header(head)
        let meta = Array(head[Header.size...])
        guard Int(h.metaLength) == meta.count else { throw .metaLength(declared: h.metaLength, actual: meta.count) }
        guard Int(h.payloadLength) == (payloadCount ?? 0) else {
            throw .payloadLength(declared: h.payloadLength, actual: payloadCount ?? 0)
        }
        if let p = payloadCount, h.type != .welcome, p % 4 != 0 { throw .payloadNotAligned(p) }
        if let e = expectedRun, h.type != .hello, h.runID != e { throw .wrongRun(expected: e, got: h.runID) }
        let hasPayload = [.welcome, .weights, .gradient, .columns].contains(h.type)
        if hasPayload && payloadCount == nil { throw .missingPayload(h.type) }
        if !hasPayload && payloadCount != nil { throw .unexpectedPayload(h.type) }
        return (h, meta)
    }

    /// A gradient message from its checked head and its payload bytes (wherever they are): one copy into arrays.
    static func gradient(_ h: Header, _ meta: [UInt8], _ payload: UnsafeRawBufferPointer,
                         parameterCount: Int?, sparseRows: [SparseRowTensor]) throws(ProtocolError) -> Message {
        guard meta.count == 32 else { throw .badMeta("gradient metadata must be the loss sum, a state count, the compute time, a row-word count, an encoding and a value count") }
        let loss = Double(bitPattern: read(meta, 0) as UInt64)
        guard loss.isFinite else { throw .nonFinite("loss sum") }
        // No tokens is a worker whose rows were all padding (a short last minibatch): a zero contribution.
        guard h.aux <= UInt64(UInt32.max) else { throw .badMeta("token count \(h.aux) does not fit 32 bits") }
        guard h.aux > 0 || loss == 0 else { throw .badMeta("token count 0 with a non-zero loss sum") }
        guard let encoding = GradientEncoding(rawValue: read(meta, 24)) else {
            throw .badMeta("gradient encoding \(read(meta, 24) as UInt32) is neither 0 (float32) nor 1 (bfloat16)")
        }
        // Payload: the gradient's values, the row words, the carried values.
        let count = payload.count / 4, stateCount: UInt32 = read(meta, 8)
        guard Int(stateCount) <= count else { throw .stateCount(declared: stateCount, payload: count) }
        let before = count - Int(stateCount), rowWords = Int(read(meta, 20) as UInt32)
        let valueCount = Int(read(meta, 28) as UInt32), valueWords = encoding.words(valueCount)
        guard valueWords + rowWords == before else {
            throw .badMeta("gradient declares \(valueCount) \(encoding) values and \(rowWords) row words, its payload holds \(before) words before the carried state")
        }
        guard let rows = GradientSupport.rows(fromWire: int32Words(payload, valueWords..<before)) else {
            throw .badMeta("gradient row words are not a table count, per-table row counts and the rows")
        }
        // The values are the support's (compact), or, from a local worker that accumulated its gradient in its
        // shared-memory slot, the whole buffer, of which only the support is read.
        var ranges: [Range<Int>]?
        if let n = parameterCount {
            guard rows.isEmpty || rows.count == sparseRows.count else {
                throw .badMeta("gradient lists rows of \(rows.count) tables, this model has \(sparseRows.count) row-sparse tables")
            }
            try checkRows(rows, of: sparseRows, in: "gradient")
            let support = GradientSupport(count: n, tables: sparseRows, rows: rows)
            if encoding == .float32 && valueCount == n && support.valueCount < n && !rows.isEmpty {
                ranges = support.ranges
            } else if valueCount != support.valueCount {
                throw .parameterCount(expected: support.valueCount, got: valueCount)
            }
        }
        let g: Checked
        if let ranges {
            var finite = true
            let n = ranges.reduce(0) { $0 + $1.count }
            let values = [Float](unsafeUninitializedCapacity: n) { buf, done in
                var at = 0
                for r in ranges {
                    finite = copyAllFinite(from: payload.baseAddress! + 4 * r.lowerBound, to: buf.baseAddress! + at, count: r.count) && finite
                    at += r.count
                }
                done = n
            }
            g = (values, finite)
        } else if encoding == .bfloat16 {
            var finite = true
            let values = [Float](unsafeUninitializedCapacity: valueCount) { buf, done in
                finite = bf16Expand(from: payload.baseAddress!, to: buf.baseAddress!, count: valueCount)
                done = valueCount
            }
            g = (values, finite)
        } else {
            g = floats(UnsafeRawBufferPointer(rebasing: payload[0..<(4 * valueCount)]))
        }
        let state = floats(UnsafeRawBufferPointer(rebasing: payload[(4 * before)..<(4 * count)]))
        if !g.finite { throw .nonFinite("gradient") }
        if !state.finite { throw .nonFinite("carried state") }
        return .gradient(runID: h.runID, step: h.step, lossSum: loss, tokens: UInt32(h.aux), gradient: g.values, state: state.values,
                         computeNanos: read(meta, 12), rows: rows)
    }

    /// Decodes a gradient message from its (unflagged) head and its payload read in place (a shared-memory slot),
    /// with `decode`'s checks: the payload is copied once, into the message's arrays.
    public static func decodeGradient(head: [UInt8], payload: UnsafeRawBufferPointer, runID: UInt64,
                                      parameterCount: Int, sparseRows: [SparseRowTensor] = []) throws(ProtocolError) -> Message {
        let (h, meta) = try checkedHead(head, payloadCount: payload.count, runID: runID)
        guard h.type == .gradient else { throw .badMeta("expected a gradient message, got \(h.type)") }
        return try gradient(h, meta, payload, parameterCount: parameterCount, sparseRows: sparseRows)
    }

    /// The Int32 values at 4-byte word positions `words` of `payload` (a message's row words).
    static func int32Words(_ payload: UnsafeRawBufferPointer, _ words: Range<Int>) -> [Int32] {
        [Int32](unsafeUninitializedCapacity: words.count) { out, n in
            if !words.isEmpty {
                UnsafeMutableRawBufferPointer(out).copyMemory(
                    from: UnsafeRawBufferPointer(rebasing: payload[(4 * words.lowerBound)..<(4 * words.upperBound)]))
            }
            n = words.count
        }
    }

    /// Refuses rows of a row-sparse table (`rows[i]` of `tables[i]`) that are not ascending, unique and inside the
    /// table: a `what` message ("gradient", "weight") may only touch rows the model has.
    static func checkRows(_ rows: [[Int32]], of tables: [SparseRowTensor], in what: String) throws(ProtocolError) {
        for (t, r) in zip(tables, rows) {
            guard isStrictlyAscending(r), r.allSatisfy({ $0 >= 0 && Int($0) < t.rows }) else {
                throw .badMeta("\(what) rows must be ascending, unique and inside the table's \(t.rows) rows")
            }
        }
    }

    /// `body` on the bytes of `a`, keeping its error type.
    static func withBytes<T>(_ a: [UInt8], _ body: (UnsafeRawBufferPointer) throws(ProtocolError) -> T) throws(ProtocolError) -> T {
        let result: Result<T, ProtocolError> = a.withUnsafeBytes { raw in
            do throws(ProtocolError) { return .success(try body(raw)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    static func checkWeightsMeta(_ meta: [UInt8]) throws(ProtocolError) {
        guard meta.count == weightsMetaBytes || meta.count == weightRowsMetaBytes, meta[0] <= 1 else {
            throw .badMeta("weights metadata must be a reset byte (0 or 1) and a state count, and for changed rows only a row-word count and a base step")
        }
    }

    /// A weights message but its parameters, which `decodeWeights` puts straight where they are used.
    public struct WeightsFields: Equatable {
        public var step: UInt64
        public var epoch: UInt32
        public var batch: UInt32
        public var resetState: Bool
        public var state: [Float]
        /// For weights that carried changed rows only: the step whose weights they were applied to.
        public var baseStep: UInt64?
        public init(step: UInt64, epoch: UInt32, batch: UInt32, resetState: Bool, state: [Float], baseStep: UInt64? = nil) {
            self.step = step; self.epoch = epoch; self.batch = batch; self.resetState = resetState; self.state = state
            self.baseStep = baseStep
        }
    }

    /// Decodes a weights message from its (unflagged) head and its payload bytes, wherever those are (a socket
    /// frame, a shared-memory slot read in place), with `decode`'s checks, copying the parameters straight into
    /// `parameters` (whose count is the expected parameter count): the largest message of a step crosses one copy.
    /// When it throws, `parameters` may hold part of the payload; the caller must not use them.
    ///
    /// Weights that carry changed rows only (`weightRowsHead`) are applied to `parameters` as they are, which must
    /// hold the weights of their base step: `holding` is that step (nil: none known), `sparseRows` the task's
    /// row-sparse tables. The rows are checked before anything is written.
    public static func decodeWeights(head: [UInt8], payload: UnsafeRawBufferPointer, runID expectedRun: UInt64,
                                     into parameters: UnsafeMutableBufferPointer<Float>, sparseRows: [SparseRowTensor] = [],
                                     holding heldStep: UInt64? = nil) throws(ProtocolError) -> WeightsFields {
        let (h, meta) = try checkedHead(head, payloadCount: payload.count, runID: expectedRun)
        if h.type == .weights, meta.count == weightRowsMetaBytes {
            return try decodeWeightRows(h, meta, payload, into: parameters, sparseRows: sparseRows, holding: heldStep)
        }
        return try decodeWeights(h, meta, payload: payload, parameterCount: parameters.count) { n in
            n == 0 || copyAllFinite(from: payload.baseAddress!, to: parameters.baseAddress!, count: n)
        }
    }

    /// The changed-rows form of `decodeWeights`: validates the rows and the value count, then writes the values
    /// of their support into `parameters`.
    static func decodeWeightRows(_ h: Header, _ meta: [UInt8], _ payload: UnsafeRawBufferPointer,
                                 into parameters: UnsafeMutableBufferPointer<Float>, sparseRows: [SparseRowTensor],
                                 holding heldStep: UInt64?) throws(ProtocolError) -> WeightsFields {
        try checkWeightsMeta(meta)
        guard read(meta, 1) as UInt32 == 0 else { throw .badMeta("weights that carry changed rows only carry no state") }
        let rowWords = Int(read(meta, 5) as UInt32), base: UInt64 = read(meta, 9), count = payload.count / 4
        guard base < h.step else { throw .badMeta("changed rows for step \(h.step) from step \(base), not an earlier one") }
        guard heldStep == base else { throw .weightsBase(base: base, held: heldStep) }
        guard rowWords <= count else { throw .badMeta("weights declare \(rowWords) row words, more than their \(count)-word payload") }
        guard !sparseRows.isEmpty, let rows = GradientSupport.rows(fromWire: int32Words(payload, (count - rowWords)..<count)),
              rows.count == sparseRows.count else {
            throw .badMeta("weight rows must list rows of each of this model's \(sparseRows.count) row-sparse tables")
        }
        try checkRows(rows, of: sparseRows, in: "weight")
        let support = GradientSupport(count: parameters.count, tables: sparseRows, rows: rows)
        guard support.valueCount == count - rowWords else { throw .parameterCount(expected: support.valueCount, got: count - rowWords) }
        var finite = true, at = 0
        for r in support.ranges {
            finite = copyAllFinite(from: payload.baseAddress! + 4 * at, to: parameters.baseAddress! + r.lowerBound, count: r.count) && finite
            at += r.count
        }
        guard finite else { throw .nonFinite("weights") }
        return WeightsFields(step: h.step, epoch: UInt32(h.aux >> 32), batch: UInt32(truncatingIfNeeded: h.aux),
                             resetState: meta[0] == 1, state: [], baseStep: base)
    }

    /// `decodeWeights` that leaves the parameters where they lie, the payload's first `parameterCount` values (a
    /// local worker of a synchronous run computes straight from the run's shared weights region). Their
    /// finiteness is not checked here: that region's writer, the coordinator, only writes finite weights.
    public static func decodeWeightsInPlace(head: [UInt8], payload: UnsafeRawBufferPointer, runID expectedRun: UInt64,
                                            parameterCount: Int) throws(ProtocolError) -> WeightsFields {
        let (h, meta) = try checkedHead(head, payloadCount: payload.count, runID: expectedRun)
        return try decodeWeights(h, meta, payload: payload, parameterCount: parameterCount) { _ in true }
    }

    /// A weights message's checks and fields; `parameters(n)` takes the payload's `n` parameters (returns whether
    /// they are all finite).
    static func decodeWeights(_ h: Header, _ meta: [UInt8], payload: UnsafeRawBufferPointer, parameterCount: Int,
                              parameters: (Int) -> Bool) throws(ProtocolError) -> WeightsFields {
        guard h.type == .weights else { throw .badMeta("expected a weights message, got \(h.type)") }
        try checkWeightsMeta(meta)
        guard meta.count == weightsMetaBytes else { throw .badMeta("weights that carry changed rows only cannot be read in place") }
        let stateCount: UInt32 = read(meta, 1), count = payload.count / 4
        guard Int(stateCount) <= count else { throw .stateCount(declared: stateCount, payload: count) }
        let n = count - Int(stateCount)
        guard n == parameterCount else { throw .parameterCount(expected: parameterCount, got: n) }
        let finite = parameters(n)
        let state = floats(UnsafeRawBufferPointer(rebasing: payload[(4 * n)...]))
        guard finite, state.finite else { throw .nonFinite("weights") }
        return WeightsFields(step: h.step, epoch: UInt32(h.aux >> 32), batch: UInt32(truncatingIfNeeded: h.aux),
                             resetState: meta[0] == 1, state: state.values)
    }

    /// A Float32 payload's leading values and its trailing `stateCount` values, each decoded with one copy that
    /// also checks them (`finite`).
    typealias Checked = (values: [Float], finite: Bool)

    static func split(_ payload: [UInt8], stateCount: UInt32) throws(ProtocolError) -> (Checked, Checked) {
        try withBytes(payload) { raw throws(ProtocolError) in try split(raw, stateCount: stateCount) }
    }

    static func split(_ payload: UnsafeRawBufferPointer, stateCount: UInt32) throws(ProtocolError) -> (Checked, Checked) {
        let count = payload.count / 4
        guard Int(stateCount) <= count else { throw .stateCount(declared: stateCount, payload: count) }
        let cut = (count - Int(stateCount)) * 4
        return (floats(UnsafeRawBufferPointer(rebasing: payload[0..<cut])),
                floats(UnsafeRawBufferPointer(rebasing: payload[cut..<(count * 4)])))
    }

    /// The Float32 values stored in `bytes`, copied once, and whether all are finite.
    static func floats(_ bytes: UnsafeRawBufferPointer) -> Checked {
        let n = bytes.count / 4
        var finite = true
        let values = [Float](unsafeUninitializedCapacity: n) { buf, done in
            if n > 0 { finite = copyAllFinite(from: bytes.baseAddress!, to: buf.baseAddress!, count: n) }
            done = n
        }
        return (values, finite)
    }

    static func append<T: FixedWidthInteger>(_ out: inout [UInt8], _ v: T) {
        withUnsafeBytes(of: v.littleEndian) { out += $0 }
    }

    static func read<T: FixedWidthInteger>(_ b: [UInt8], _ at: Int) -> T {
        b.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: at, as: T.self)) }
    }

    // Payloads are the values' bytes as the host stores them: little-endian hosts only (x86-64, arm64).
    static func bytes<T>(of values: [T]) -> [UInt8] {
        values.withUnsafeBytes { Array($0) }
    }

    /// The parts one after the other as one byte array, copied once.
    static func bytes(of parts: [UnsafeRawBufferPointer]) -> [UInt8] {
        let n = parts.reduce(0) { $0 + $1.count }
        return [UInt8](unsafeUninitializedCapacity: n) { buf, count in
            var at = buf.baseAddress!
            for p in parts where p.count > 0 {
                UnsafeMutableRawPointer(at).copyMemory(from: p.baseAddress!, byteCount: p.count)
                at += p.count
            }
            count = n
        }
    }

    static func values<T>(_ bytes: [UInt8]) -> [T] { values(bytes, from: 0, to: bytes.count) }

    /// The values stored in `bytes[from..<to]` (whole values only).
    static func values<T>(_ bytes: [UInt8], from: Int, to: Int) -> [T] {
        let n = (to - from) / MemoryLayout<T>.size
        return [T](unsafeUninitializedCapacity: n) { buf, count in
            bytes.withUnsafeBytes { raw in
                UnsafeMutableRawBufferPointer(buf).copyMemory(
                    from: UnsafeRawBufferPointer(rebasing: raw[from..<(from + n * MemoryLayout<T>.size)]))
            }
            count = n
        }
    }
}
