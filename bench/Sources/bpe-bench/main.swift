// bpe-bench: times BPE learning (and optionally encoding) on a text file, as `rnnlm train --tokenizer bpe` does it.
//
//   bpe-bench --corpus PATH --merges N [--lowercase] [--encode] [--out MERGES.tsv]
//
// Prints one JSON line: the seconds spent reading the file, learning the merges (word counting included, as
// `Tokenizer.learnBPE` does both), and with --encode tokenizing the same text with the learned merges; the merge
// count and the token count. --out writes the merges in order, one "left<TAB>right" per line, for bench/bpe.py
// to compare with Hugging Face tokenizers'.
import Foundation
import RNNText

func option(_ name: String) -> String? {
    let args = CommandLine.arguments
    if let i = args.firstIndex(of: "--" + name), i + 1 < args.count { return args[i + 1] }
    return nil
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("bpe-bench: \(message)\n".utf8))
    exit(2)
}

func seconds(since t0: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9 }

guard let path = option("corpus") else { fail("give --corpus PATH (a UTF-8 text file)") }
guard let mergesText = option("merges"), let mergeCount = Int(mergesText), mergeCount >= 0 else {
    fail("give --merges N, a whole number 0 or more")
}
let lowercase = CommandLine.arguments.contains("--lowercase")

var t0 = DispatchTime.now().uptimeNanoseconds
let text: String
do { text = try readCorpus(path) } catch { fail(error.description) }
let readSeconds = seconds(since: t0)

t0 = DispatchTime.now().uptimeNanoseconds
let tokenizer = Tokenizer.learnBPE(from: text, merges: mergeCount, lowercase: lowercase)
let learnSeconds = seconds(since: t0)

var encodeSeconds = -1.0, tokens = -1
if CommandLine.arguments.contains("--encode") {
    t0 = DispatchTime.now().uptimeNanoseconds
    tokens = tokenizer.tokenize(text).count
    encodeSeconds = seconds(since: t0)
}

if let out = option("out") {
    let lines = tokenizer.merges.map { $0[0] + "\t" + $0[1] + "\n" }.joined()
    do {
        try lines.write(toFile: out, atomically: true, encoding: .utf8)
    } catch {
        fail("cannot write \(out): \(error)")
    }
}

let fields = String(format: "\"read_s\": %.4f, \"learn_s\": %.4f, \"encode_s\": %.4f",
                    readSeconds, learnSeconds, encodeSeconds)
print("{\(fields), \"merges\": \(tokenizer.merges.count), \"tokens\": \(tokens), \"bytes\": \(text.utf8.count)}")
