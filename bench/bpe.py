"""BPE learning, rnnlm vs Hugging Face tokenizers, side by side (run through bench/bpe.sh).

For each (text, merge count) case, runs alternately and `--repeats` times each, every run in a fresh process:
  rnnlm   bpe-bench: `Tokenizer.learnBPE` (word counting included) after reading the file;
  hf      tokenizers' BpeTrainer as users run it: WhitespaceSplit pre-tokenizer, end_of_word_suffix "</w>",
          min_frequency 2, vocab_size = its initial alphabet + the merge count (train() reads the file itself);
  hf-eow  the same trainer without the suffix, on a copy of the text in which every word ends with a private-use
          character standing for rnnlm's separate "</w>" symbol: the same BPE problem rnnlm solves, so the merges
          can be compared one for one (they differ only where tie-breaking rules differ; bench/README.md).
Prints medians of wall seconds (the learning call, timed inside each process), the ratio rnnlm / hf, how many of
the first N merges agree, and a Markdown table; the last line is JSON with every run.
"""
import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

MARK = "\ue000"  # stands for "</w>" in the hf-eow copy; must not occur in the text
EOW = "</w>"


def hf_train(path, merges, suffix):
    """Runs in a child process: trains and prints seconds and merges as JSON."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    def make(vocab_size):
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        kw = {"end_of_word_suffix": EOW} if suffix else {}
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                      special_tokens=[], **kw)
        return tok, trainer

    # The trainer's budget is a vocabulary size, which counts the initial alphabet (characters and, with the
    # suffix, each word-final character with "</w>" attached); measure that first, outside the timed call.
    tok, trainer = make(1)
    tok.train([path], trainer)
    alphabet = tok.get_vocab_size()
    tok, trainer = make(alphabet + merges)
    t0 = time.perf_counter()
    tok.train([path], trainer)
    seconds = time.perf_counter() - t0
    learned = json.loads(tok.to_str())["model"]["merges"]
    learned = [m.split(" ") if isinstance(m, str) else m for m in learned]
    print(json.dumps({"learn_s": seconds, "merges": learned, "alphabet": alphabet}))


def run_rnnlm(bench_bin, path, merges, out):
    r = subprocess.run([bench_bin, "--corpus", path, "--merges", str(merges), "--out", out],
                       check=True, capture_output=True, text=True)
    j = json.loads(r.stdout)
    with open(out, encoding="utf-8") as f:
        learned = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    return j["read_s"] + j["learn_s"], learned


def run_hf(path, merges, suffix):
    r = subprocess.run([sys.executable, __file__, "--hf-worker", path, str(merges), "1" if suffix else "0"],
                       check=True, capture_output=True, text=True)
    j = json.loads(r.stdout)
    return j["learn_s"], j["merges"]


def counts_at(text, merges, pairs):
    """Replays `merges` on the text's words (characters + "</w>") and returns how often each of `pairs` occurs."""
    words = [(list(w) + [EOW], n) for w, n in collections.Counter(text.split()).items()]
    for l, r in merges:
        for k, (s, n) in enumerate(words):
            if l in s and r in s:
                out, i = [], 0
                while i < len(s):
                    if i + 1 < len(s) and s[i] == l and s[i + 1] == r:
                        out.append(l + r)
                        i += 2
                    else:
                        out.append(s[i])
                        i += 1
                words[k] = (out, n)
    found = collections.Counter()
    for s, n in words:
        for i in range(len(s) - 1):
            if (s[i], s[i + 1]) in pairs:
                found[(s[i], s[i + 1])] += n
    return [found[p] for p in pairs]


def prefix_agreement(a, b):
    n = 0
    for x, y in zip(a, b):
        if list(x) != list(y):
            break
        n += 1
    return n


def run_cases(args, tmp):
    rows = []
    for case in args.case:
        path, merges = case.rsplit(":", 1)
        merges = int(merges)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        if MARK in text:
            sys.exit(f"bpe.py: {path} contains U+E000, which the hf-eow copy uses as its end-of-word mark")
        marked = os.path.join(tmp, "marked.txt")
        with open(marked, "w", encoding="utf-8") as f:
            for line in text.split("\n"):
                f.write(" ".join(w + MARK for w in line.split()) + "\n")
        times = {"rnnlm": [], "hf": [], "hf-eow": []}
        learned = {}
        for rep in range(args.repeats):
            s, learned["rnnlm"] = run_rnnlm(args.bench_bin, path, merges, os.path.join(tmp, "rnnlm.tsv"))
            times["rnnlm"].append(s)
            s, learned["hf"] = run_hf(path, merges, True)
            times["hf"].append(s)
            s, learned["hf-eow"] = run_hf(marked, merges, False)
            times["hf-eow"].append(s)
            print(f"{os.path.basename(path)} {merges} merges, run {rep + 1}: "
                  + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in times.items()), flush=True)
        ours = learned["rnnlm"]
        eow = [[x.replace(MARK, EOW) for x in m] for m in learned["hf-eow"]]
        # With the suffix, tokenizers starts from word-final characters with "</w>" attached, so rnnlm's
        # (x, "</w>") merges have no counterpart there; the rest are compared as sets.
        ours_no_final = {tuple(m) for m in ours if m[1] != EOW}
        hf_set = {tuple(m) for m in learned["hf"]}
        row = {
            "text": os.path.basename(path), "mb": len(text.encode("utf-8")) / 1e6, "merges": merges,
            "learned": {k: len(v) for k, v in learned.items()},
            "median_s": {k: statistics.median(v) for k, v in times.items()},
            "eow_prefix": prefix_agreement(ours, eow),
            "eow_common": len({tuple(m) for m in ours} & {tuple(m) for m in eow}),
            "hf_common": len(ours_no_final & hf_set), "hf_comparable": min(len(ours_no_final), len(hf_set)),
            "runs": times,
        }
        row["ratio"] = row["median_s"]["rnnlm"] / row["median_s"]["hf"]
        row["ratio_eow"] = row["median_s"]["rnnlm"] / row["median_s"]["hf-eow"]
        k = row["eow_prefix"]
        if k < min(len(ours), len(eow)):
            # Where the two first differ, both pairs should be among the most frequent, with equal counts.
            a, b = tuple(ours[k]), tuple(eow[k])
            row["first_difference"] = {"merge": k, "rnnlm": a, "hf-eow": b, "counts": counts_at(text, ours[:k], [a, b])}
            print(f"  first difference at merge {k}: rnnlm {a}, tokenizers {b}, occurring "
                  f"{row['first_difference']['counts'][0]:,} and {row['first_difference']['counts'][1]:,} times")
        rows.append(row)
        print(f"  merges learned {row['learned']}; agreeing with hf-eow: the first {row['eow_prefix']:,} in order, "
              f"{row['eow_common']:,} as a set; with hf (rnnlm's (x, </w>) merges left out): {row['hf_common']:,} "
              f"of {row['hf_comparable']:,} as a set", flush=True)

    return rows


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--hf-worker":
        hf_train(sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1")
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench-bin", required=True, help="path of bench's bpe-bench executable")
    ap.add_argument("--case", action="append", required=True, metavar="PATH:MERGES",
                    help="a text file and a merge count; repeatable")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="rnnlm-bpe-") as tmp:
        rows = run_cases(args, tmp)
    print()
    print("| text | merges | rnnlm s | tokenizers s | rnnlm / tokenizers | tokenizers, `</w>` as a symbol: s | "
          "ratio | merges agreeing (in order / as a set) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        m = r["median_s"]
        print(f"| {r['text']} ({r['mb']:.1f} MB) | {r['merges']:,} | {m['rnnlm']:.2f} | {m['hf']:.2f} | "
              f"{r['ratio']:.2f}x | {m['hf-eow']:.2f} | {r['ratio_eow']:.2f}x | "
              f"{r['eow_prefix']:,} / {r['eow_common']:,} of {min(r['learned']['rnnlm'], r['learned']['hf-eow']):,} |")
    print(json.dumps({"bpe": rows, "cpus": os.cpu_count(), "tokenizers": tokenizers_version()}))


def tokenizers_version():
    import tokenizers
    return tokenizers.__version__


if __name__ == "__main__":
    main()
