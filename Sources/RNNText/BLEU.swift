#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// BLEU over token lists, as D2L scores a translation and as sacreBLEU scores a corpus.
public enum BLEU {
    /// D2L's sentence BLEU (9.7.4): `exp(min(0, 1 − len_label/len_pred)) · Π_{n=1…k} p_n^(1/2^n)`, where `p_n` is
    /// the clipped n-gram precision of `prediction` against `label`; 0 for an empty prediction.
    public static func sentence(prediction: [String], label: [String], k: Int = 2) -> Double {
        guard !prediction.isEmpty else { return 0 }
        var score = exp(min(0, 1 - Double(label.count) / Double(prediction.count)))
        for n in stride(from: 1, through: min(k, prediction.count), by: 1) {
            var available = ngramCounts(label, n)
            var matches = 0
            for i in 0...(prediction.count - n) {
                let g = prediction[i..<(i + n)].joined(separator: " ")
                if let c = available[g], c > 0 { matches += 1; available[g] = c - 1 }
            }
            score *= pow(Double(matches) / Double(prediction.count - n + 1), pow(0.5, Double(n)))
        }
        return score
    }

    /// Corpus BLEU on a 0–100 scale: 4-gram clipped precisions summed over the corpus, brevity penalty, and
    /// sacreBLEU's default "exp" smoothing for an order without matches. Equals
    /// `sacrebleu.corpus_bleu(hypotheses, [references], tokenize="none")` on the same space-joined tokens.
    public static func corpus(hypotheses: [[String]], references: [[String]], maxOrder: Int = 4) -> Double {
        precondition(hypotheses.count == references.count, "\(hypotheses.count) hypotheses for \(references.count) references")
        var correct = [Int](repeating: 0, count: maxOrder), total = correct
        var hypothesisLength = 0, referenceLength = 0
        for (h, r) in zip(hypotheses, references) {
            hypothesisLength += h.count
            referenceLength += r.count
            for n in 1...maxOrder where h.count >= n {
                let ref = ngramCounts(r, n)
                for (g, c) in ngramCounts(h, n) { correct[n - 1] += min(c, ref[g] ?? 0) }
                total[n - 1] += h.count - n + 1
            }
        }
        guard correct.contains(where: { $0 > 0 }) else { return 0 }
        let brevity = hypothesisLength < referenceLength
            ? (hypothesisLength > 0 ? exp(1 - Double(referenceLength) / Double(hypothesisLength)) : 0) : 1
        var precisions = [Double](repeating: 0, count: maxOrder)
        var smoothing = 1.0
        for n in 0..<maxOrder {
            if total[n] == 0 { break }
            if correct[n] == 0 {
                smoothing *= 2
                precisions[n] = 100 / (smoothing * Double(total[n]))
            } else {
                precisions[n] = 100 * Double(correct[n]) / Double(total[n])
            }
        }
        // sacreBLEU's log of 0 is a large negative number: a zero precision makes the score 0.
        let logs = precisions.map { $0 > 0 ? log($0) : -9_999_999_999 }
        return brevity * exp(logs.reduce(0, +) / Double(maxOrder))
    }

    static func ngramCounts(_ tokens: [String], _ n: Int) -> [String: Int] {
        var counts: [String: Int] = [:]
        guard tokens.count >= n else { return counts }
        for i in 0...(tokens.count - n) { counts[tokens[i..<(i + n)].joined(separator: " "), default: 0] += 1 }
        return counts
    }
}
