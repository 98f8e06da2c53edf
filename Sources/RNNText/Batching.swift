// Truncated-BPTT minibatches, D2L's two partitionings. Token matrices are time-major [T, B]: element
// t*B + b is step t of stream b, which is the layout LanguageModel takes.

/// One `[T, B]` minibatch of inputs and their next-token targets.
public struct Minibatch: Equatable, Sendable {
    public let steps: Int, batch: Int
    public var inputs: [Int32]
    public var targets: [Int32]

    /// Row `b` of the batch-major view (for tests and display): the T input tokens of stream b.
    public func stream(_ b: Int) -> [Int32] { (0..<steps).map { inputs[$0 * batch + b] } }
    public func targetStream(_ b: Int) -> [Int32] { (0..<steps).map { targets[$0 * batch + b] } }

    /// The sub-batch of streams `columns` (in that order), e.g. the columns a worker owns.
    public func selecting(columns: [Int]) -> Minibatch {
        var x = [Int32](), y = [Int32]()
        x.reserveCapacity(steps * columns.count); y.reserveCapacity(steps * columns.count)
        for t in 0..<steps {
            for c in columns { x.append(inputs[t * batch + c]); y.append(targets[t * batch + c]) }
        }
        return Minibatch(steps: steps, batch: columns.count, inputs: x, targets: y)
    }

    public init(steps: Int, batch: Int, inputs: [Int32], targets: [Int32]) {
        precondition(inputs.count == steps * batch && targets.count == steps * batch, "minibatch data does not fill [T=\(steps), B=\(batch)]")
        self.steps = steps; self.batch = batch; self.inputs = inputs; self.targets = targets
    }
}

public enum Partition: String, Codable, CaseIterable, Sendable {
    /// D2L `seq_data_iter_sequential`: B parallel streams; minibatch i continues minibatch i−1 in every
    /// stream, so the hidden state is carried (and detached) across minibatches.
    case sequential
    /// D2L `seq_data_iter_random`: independent subsequences in random order; state reset every minibatch.
    case random
}

/// The minibatches of one epoch over `corpus`.
public struct EpochBatches: Sendable {
    public let partition: Partition
    public let steps: Int, batch: Int
    public let offset: Int
    public let count: Int
    private let corpus: [Int32]
    /// Sequential: the length of each of the B streams. Random: the start of each subsequence, in order.
    private let streamLength: Int
    private let starts: [Int]

    /// D2L's sequential partitioning with a given `offset` (D2L draws it from 0...T).
    public static func sequential(_ corpus: [Int32], batch: Int, steps: Int, offset: Int) -> EpochBatches {
        let numTokens = max(0, (corpus.count - offset - 1) / batch * batch)
        let streamLength = numTokens / batch
        return EpochBatches(partition: .sequential, steps: steps, batch: batch, offset: offset,
                            count: streamLength / steps, corpus: corpus, streamLength: streamLength, starts: [])
    }

    /// D2L's random partitioning with a given `offset` (D2L draws it from 0..<T) and subsequence `order`
    /// (a permutation of 0..<numSubsequences; D2L shuffles it).
    public static func random(_ corpus: [Int32], batch: Int, steps: Int, offset: Int, order: [Int]) -> EpochBatches {
        let n = (corpus.count - offset - 1) / steps
        precondition(order.count == n, "order must be a permutation of the \(n) subsequences")
        return EpochBatches(partition: .random, steps: steps, batch: batch, offset: offset, count: n / batch,
                            corpus: corpus, streamLength: 0, starts: order.map { offset + $0 * steps })
    }

    /// Number of subsequences random partitioning cuts the corpus into at `offset`.
    public static func subsequenceCount(corpusCount: Int, steps: Int, offset: Int) -> Int { (corpusCount - offset - 1) / steps }

    /// Draws the epoch's offset (and order) from `rng` exactly as D2L does.
    public static func draw<R: RNGLike>(_ partition: Partition, corpus: [Int32], batch: Int, steps: Int,
                                        rng: inout R) -> EpochBatches {
        switch partition {
        case .sequential:
            return sequential(corpus, batch: batch, steps: steps, offset: rng.int(below: steps + 1))
        case .random:
            let offset = rng.int(below: steps)
            var order = Array(0..<subsequenceCount(corpusCount: corpus.count, steps: steps, offset: offset))
            rng.shuffle(&order)
            return random(corpus, batch: batch, steps: steps, offset: offset, order: order)
        }
    }

    private init(partition: Partition, steps: Int, batch: Int, offset: Int, count: Int, corpus: [Int32],
                 streamLength: Int, starts: [Int]) {
        self.partition = partition; self.steps = steps; self.batch = batch; self.offset = offset
        self.count = count; self.corpus = corpus; self.streamLength = streamLength; self.starts = starts
    }

    /// Minibatch `i` (0..<count).
    public subscript(i: Int) -> Minibatch {
        precondition(i >= 0 && i < count, "minibatch \(i) of an epoch with \(count)")
        var x = [Int32](repeating: 0, count: steps * batch), y = x
        for b in 0..<batch {
            let start: Int
            switch partition {
            case .sequential: start = offset + b * streamLength + i * steps
            case .random: start = starts[i * batch + b]
            }
            for t in 0..<steps {
                x[t * batch + b] = corpus[start + t]
                y[t * batch + b] = corpus[start + t + 1]
            }
        }
        return Minibatch(steps: steps, batch: batch, inputs: x, targets: y)
    }
}

/// What batching needs from a random generator (the core's `RandomGenerator` conforms in RNNTrain).
public protocol RNGLike {
    mutating func int(below n: Int) -> Int
    mutating func shuffle<T>(_ a: inout [T])
}
