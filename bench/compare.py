#!/usr/bin/env python3
"""rnnlm vs the PyTorch peer, alternately in the same run, on identical configurations.

For each configuration: tokens/s (median over every repeat's epochs after the first), the ratio
rnnlm/PyTorch, peak RSS per process, and model FLOP utilisation (achieved GFLOP/s of the model's matrix
products ÷ the sgemm rate this run measures at the same thread count). Char-level timemachine, one-hot
input, SGD lr 1, clip 1, T=35. Both sides train on the same first MAX_TOKENS tokens (the peer via
--max-batches with the same number of minibatches per epoch).

--word runs the word-level rows instead (WORD_CONFIGS): tinyshakespeare as words (--tokenizer lines --min-freq 2,
about 10.7k words), embedding -> 2-layer LSTM -> linear, SGD lr 20, clip 0.25, against the peer's torch_wordlm.py
(the same semantics; it builds its vocabulary from the whole file as rnnlm does, and stops after the same number
of minibatches). Zaremba et al.'s "small" (2 x 200, batch 20, T 20) and "medium" (2 x 650, batch 20, T 35)
shapes, 1 and 2 threads. FLOPs per token count the embedding as a lookup (no FLOPs).

--baseline PATH adds a before/after comparison in the same run: each repeat runs the current rnnlm, the
baseline rnnlm (same command line; these rows use only flags every version knows) and, unless --no-peer, the
peer, in that order, and each row gains "after/before" (ratio of the median tokens/s).
"""
import argparse, json, os, re, statistics, subprocess, sys, tempfile, time

PEERS = os.environ.get("PEERS")
DATA = os.environ.get("RNNLM_DATA_DIR")
V = 28

CONFIGS = [  # name, cell, hidden, layers, batch, threads, workers(0 = one process)
    ("rnn-256-1t", "rnn", 256, 1, 32, 1, 0),
    ("gru-256-1t", "gru", 256, 1, 32, 1, 0),
    ("lstm-256-1t", "lstm", 256, 1, 32, 1, 0),
    ("rnn-256-2t", "rnn", 256, 1, 32, 2, 0),
    ("gru-256-2t", "gru", 256, 1, 32, 2, 0),
    ("lstm-256-2t", "lstm", 256, 1, 32, 2, 0),
    ("lstm-512x2-b64-1t", "lstm", 512, 2, 64, 1, 0),
    ("gru-256-2workers", "gru", 256, 1, 32, 1, 2),   # 16 streams per worker vs DDP 2 ranks x 16
]

WORD_CONFIGS = [  # name, hidden (= embedding), layers, batch, steps, threads, max tokens per epoch
    ("word-small-1t", 200, 2, 20, 20, 1, 16000),
    ("word-small-2t", 200, 2, 20, 20, 2, 16000),
    ("word-medium-1t", 650, 2, 20, 35, 1, 14000),
    ("word-medium-2t", 650, 2, 20, 35, 2, 14000),
]
WORD_VOCAB = None  # read from rnnlm's run (metrics.jsonl has no vocabulary; the peer's JSON does)

def gates(cell): return {"rnn": 1, "gru": 3, "lstm": 4}[cell]

def flops_per_token(cell, hidden, layers):
    """Model FLOPs per token, forward + backward (3x forward), of the matrix products: input projection
    (one-hot counted as a GEMM, as PyTorch runs it), recurrent projection, decoder."""
    g, f = gates(cell), 0
    for k in range(layers):
        inp = V if k == 0 else hidden
        f += 2 * g * hidden * (inp + hidden)
    f += 2 * hidden * V
    return 3 * f

def timed(cmd, env=None):
    """Runs cmd under /usr/bin/time; returns (stdout, peak RSS in MiB of that process)."""
    out = subprocess.run(["/usr/bin/time", "-f", "@@RSS %M"] + cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    rss = int(re.search(r"@@RSS (\d+)", out.stderr).group(1)) / 1024
    return out.stdout, rss

def word_flops_per_token(hidden, layers, vocab):
    """3 x forward: per LSTM layer 2*4H*(in + H) with in = E = H (the embedding is a lookup), decoder 2*H*V."""
    return 3 * (layers * 2 * 4 * hidden * (2 * hidden) + 2 * hidden * vocab)

def word_rnnlm_run(args, c, tmp, binary=None):
    binary = binary or args.rnnlm
    name, hidden, layers, batch, steps, threads, max_tokens = c
    ck = tempfile.mkdtemp(dir=tmp)
    flags = ["--dataset", "tinyshakespeare", "--data-dir", DATA, "--tokenizer", "lines", "--min-freq", "2",
             "--model", "lstm", "--hidden", str(hidden), "--embed", str(hidden), "--layers", str(layers),
             "--batch-size", str(batch), "--num-steps", str(steps), "--max-tokens", str(max_tokens),
             "--epochs", str(args.epochs), "--lr", "20", "--clip", "0.25", "--seed", "0", "--checkpoint-dir", ck, "--quiet"]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    _, rss = timed([binary, "train", "--threads", str(threads)] + flags, env)
    tps = [json.loads(l)["tokens_per_s"] for l in open(os.path.join(ck, "metrics.jsonl")) if '"kind":"epoch"' in l]
    return tps[1:] if len(tps) > 1 else tps, rss

def word_torch_run(args, c):
    name, hidden, layers, batch, steps, threads, max_tokens = c
    batches = (max_tokens - 1) // batch // steps
    out, rss = timed([sys.executable, os.path.join(PEERS, "torch_wordlm.py"), "--train", os.path.join(DATA, "tinyshakespeare.txt"),
                      "--min-freq", "2", "--cell", "lstm", "--hidden", str(hidden), "--embed", str(hidden), "--layers", str(layers),
                      "--batch", str(batch), "--num-steps", str(steps), "--lr", "20", "--clip", "0.25", "--lr-decay", "1",
                      "--epochs", str(args.epochs), "--threads", str(threads), "--max-batches", str(batches), "--seed", "0"])
    tps = [float(m.group(1).replace(",", "")) for m in re.finditer(r"^epoch \d+ .* ([\d,]+) tok/s$", out, re.M)]
    res = json.loads([l for l in out.splitlines() if l.startswith("{")][-1])
    global WORD_VOCAB
    WORD_VOCAB = res["vocab"]
    return tps[1:] if len(tps) > 1 else tps, rss

def rnnlm_run(args, c, tmp, binary=None):
    binary = binary or args.rnnlm
    name, cell, hidden, layers, batch, threads, workers = c
    ck = tempfile.mkdtemp(dir=tmp)
    flags = ["--dataset", "timemachine", "--data-dir", DATA, "--model", cell, "--hidden", str(hidden), "--layers", str(layers),
             "--batch-size", str(batch), "--num-steps", "35", "--max-tokens", str(args.max_tokens), "--epochs", str(args.epochs),
             "--lr", "1", "--clip", "1", "--seed", "0", "--checkpoint-dir", ck, "--quiet"]
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads))
    if workers == 0:
        _, rss = timed([binary, "train", "--threads", str(threads)] + flags, env)
        rss_all = [rss]
    else:
        port = str(41000 + int(time.time() * 1000) % 1000)
        coord = subprocess.Popen(["/usr/bin/time", "-f", "@@RSS %M", binary, "coordinator", "--bind", "tcp://127.0.0.1:" + port,
                                  "--expect-workers", str(workers)] + flags, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        ws = [subprocess.Popen(["/usr/bin/time", "-f", "@@RSS %M", binary, "worker", "--connect", "tcp://127.0.0.1:" + port,
                                "--threads", "1", "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
              for _ in range(workers)]
        outs = [p.communicate() for p in [coord] + ws]
        rss_all = [int(re.search(r"@@RSS (\d+)", e).group(1)) / 1024 for _, e in outs]
    tps = [json.loads(l)["tokens_per_s"] for l in open(os.path.join(ck, "metrics.jsonl")) if '"kind":"epoch"' in l]
    return tps[1:] if len(tps) > 1 else tps, max(rss_all)

def torch_run(args, c, batches):
    """The PyTorch peer. Its DDP script occasionally aborts ("terminate called without an active exception");
    a failed run is retried twice, then reported as missing rather than ending the comparison."""
    for attempt in range(3):
        try:
            return torch_run_once(args, c, batches)
        except RuntimeError as e:
            print(f"peer run failed (attempt {attempt + 1} of 3): {str(e).splitlines()[0][:160]}", file=sys.stderr, flush=True)
    return [], 0.0

def torch_run_once(args, c, batches):
    name, cell, hidden, layers, batch, threads, workers = c
    corpus = os.path.join(DATA, "timemachine.txt")
    common = ["--cell", cell, "--hidden", str(hidden), "--layers", str(layers), "--num-steps", "35", "--lr", "1", "--clip", "1",
              "--epochs", str(args.epochs), "--threads", str(threads), "--max-batches", str(batches), "--seed", "0"]
    if workers == 0:
        out, rss = timed([sys.executable, os.path.join(PEERS, "torch_lm.py"), corpus, "--batch", str(batch)] + common)
    else:
        out, rss = timed([sys.executable, os.path.join(PEERS, "torch_ddp.py"), corpus, "--world", str(workers),
                          "--port", str(43000 + int(time.time() * 1000) % 1000), "--batch", str(batch // workers)] + common)
    res = json.loads([l for l in out.splitlines() if l.startswith("{")][-1])
    by_epoch = res.get("tokens_per_sec_by_epoch") or res.get("agg_tokens_per_sec_by_epoch")
    return by_epoch[1:] if len(by_epoch) > 1 else by_epoch, rss

def sgemm_rates():
    out = subprocess.run([sys.executable, os.path.join(PEERS, "sgemm.py"), "--threads", "1,2", "--libs", "numpy"],
                         capture_output=True, text=True).stdout
    rows = json.loads([l for l in out.splitlines() if l.startswith('{"bench"')][-1])["rows"]
    rate = {}
    for r in rows:
        if r["label"].startswith("square 1024"):
            rate[r["threads"]] = r["gflops_median"]
    return rate

def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rnnlm", required=True)
    ap.add_argument("--baseline", default="", help="an older rnnlm binary to compare against (after/before column)")
    ap.add_argument("--no-peer", action="store_true", help="skip the PyTorch peer (with --baseline: before/after only)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=45000)
    ap.add_argument("--only", default="")
    ap.add_argument("--word", action="store_true", help="the word-level rows (WORD_CONFIGS) instead of the char-level ones")
    args = ap.parse_args()
    table = WORD_CONFIGS if args.word else CONFIGS
    configs = [c for c in table if not args.only or c[0] in args.only.split(",")]
    if not configs:
        sys.exit(f"compare: no configuration named {args.only}; known: {', '.join(c[0] for c in table)}")
    nan = float("nan")
    rates = {} if args.no_peer else sgemm_rates()
    if rates:
        print(f"sgemm (numpy/OpenBLAS, square 1024): {', '.join(f'{t} thread(s) {r:.1f} GFLOP/s' for t, r in sorted(rates.items()))}", flush=True)
    tmp = tempfile.mkdtemp()
    rows = []
    for c in configs:
        if args.word:
            name, hidden, layers, batch, steps, threads, _ = c
            workers = 0
            run_rnnlm = lambda binary=None: word_rnnlm_run(args, c, tmp, binary)
            run_torch = lambda: word_torch_run(args, c)
        else:
            name, cell, hidden, layers, batch, threads, workers = c
            batches = (args.max_tokens - 36) // batch // 35
            run_rnnlm = lambda binary=None: rnnlm_run(args, c, tmp, binary)
            run_torch = lambda: torch_run(args, c, batches)
        r_tps, b_tps, t_tps, r_rss, b_rss, t_rss = [], [], [], [], [], []
        for _ in range(args.repeats):  # alternate: rnnlm, [baseline], [torch], rnnlm, ...
            tps, rss = run_rnnlm(); r_tps += tps; r_rss.append(rss)
            if args.baseline:
                tps, rss = run_rnnlm(args.baseline); b_tps += tps; b_rss.append(rss)
            if not args.no_peer:
                tps, rss = run_torch(); t_tps += tps; t_rss.append(rss)
        r = statistics.median(r_tps)
        b = statistics.median(b_tps) if b_tps else nan
        t = statistics.median(t_tps) if t_tps else nan
        if args.word:
            fpt = word_flops_per_token(hidden, layers, WORD_VOCAB or 10_700)
        else:
            fpt = flops_per_token(cell, hidden, layers)
        # MFU against the sgemm rate at the threads the run uses (2 worker processes: 2 cores).
        cores = threads if workers == 0 else workers
        rate = rates.get(cores, rates.get(1, nan) * cores)
        x = dict(name=name, rnnlm=r, torch=t, ratio=r / t, mflop_per_token=fpt / 1e6, rnnlm_runs=r_tps, torch_runs=t_tps,
                 rnnlm_rss=max(r_rss), torch_rss=max(t_rss, default=nan),
                 mfu_rnnlm=r * fpt / 1e9 / rate, mfu_torch=t * fpt / 1e9 / rate)
        if args.baseline:
            x.update(before=b, after_before=r / b, before_rss=max(b_rss), before_runs=b_tps)
        rows.append(x)
        line = f"{name:20} rnnlm {r:10,.0f} tok/s"
        if args.baseline:
            line += f"  before {b:10,.0f} tok/s  after/before {x['after_before']:5.3f}"
        if not args.no_peer:
            line += (f"  torch {t:10,.0f} tok/s  ratio {x['ratio']:5.2f}  RSS {x['rnnlm_rss']:6.0f} / {x['torch_rss']:6.0f} MiB"
                     f"  MFU {100 * x['mfu_rnnlm']:4.0f}% / {100 * x['mfu_torch']:4.0f}%")
        else:
            line += f"  RSS {x['rnnlm_rss']:6.0f} MiB"
        print(line, flush=True)
    print()
    head, rule = "| configuration | rnnlm tok/s |", "|---|---:|"
    if args.baseline:
        head += " before tok/s | after/before |"; rule += "---:|---:|"
    if not args.no_peer:
        head += " PyTorch tok/s | ratio | peak RSS rnnlm / PyTorch (MiB) | MFU rnnlm / PyTorch |"; rule += "---:|---:|---:|---:|"
    print(head); print(rule)
    for x in rows:
        line = f"| {x['name']} | {x['rnnlm']:,.0f} |"
        if args.baseline:
            line += f" {x['before']:,.0f} | {x['after_before']:.3f} |"
        if not args.no_peer:
            line += (f" {x['torch']:,.0f} | {x['ratio']:.2f}x | {x['rnnlm_rss']:.0f} / {x['torch_rss']:.0f} | "
                     f"{100 * x['mfu_rnnlm']:.0f}% / {100 * x['mfu_torch']:.0f}% |")
        print(line)
    clean = lambda v: None if isinstance(v, float) and v != v else v  # NaN (a side not run) as null: strict JSON
    rows = [{k: clean(v) for k, v in x.items()} for x in rows]
    print(json.dumps({"bench": "compare-word" if args.word else "compare", "rows": rows, "vocab": WORD_VOCAB, "sgemm": rates, "baseline": args.baseline or None,
                      "repeats": args.repeats, "epochs": args.epochs}))

if __name__ == "__main__":
    main()
