#!/usr/bin/env python3
"""rnnlm's encoder-decoder vs the PyTorch peer (torch_seq2seq.py) on fra-eng, side by side in the same run.

Parts (--parts, default all):
  d2l      D2L 9.7's setting (600 pairs, T=10, E=H=32, 2-layer GRU, dropout 0.1, batch 64, Adam 0.005, 300 epochs):
           one run each; final training loss, rnnlm's translations of D2L's four sentences, and the same
           checkpoint loaded into PyTorch (torch_seq2seq.py --load), whose translations must be identical.
  speed    the real setting (20,000 pairs, T=12, E=H=128, 2 layers, bidirectional GRU encoder, dropout 0.2,
           batch 128, Adam 0.002), --speed-epochs epochs on 1 thread, rnnlm and peer alternately, --repeats
           times; tokens/s and the ratio rnnlm/peer.
  workers  the real setting, rnnlm --workers 2 vs --workers 1 alternately, --repeats times; the ratio.
  bleu     the real setting, one --bleu-epochs run each with validation on the 2,001 pairs after the training
           lines; corpus BLEU of greedy translations (rnnlm's last val_bleu and `rnnlm eval`; the peer's
           corpus_bleu), and rnnlm greedy vs --beam 4 through `rnnlm translate`, scored here with sacreBLEU
           (tokenize none) as tools/bleu_fixture.py does.

Tokens/s: both sides count valid target tokens over the training loop's wall time, per epoch. The peer reports
only the median of its epochs (the upper one for an even count), so each rnnlm run is reduced the same way
and the figure quoted is the median over runs. Speed runs skip validation on both sides.
"""
import argparse, json, os, re, statistics, subprocess, sys, tempfile, time

PEERS = os.environ.get("PEERS")
DATA = os.environ.get("RNNLM_DATA_DIR")
BLEU_PY = os.environ.get("BLEU_PYTHON", "/tmp/bleu-venv/bin/python")
D2L_SENTENCES = ["go .", "i lost .", "he's calm .", "i'm home ."]

D2L = dict(num_examples=600, valid=0, steps=10, embed=32, hidden=32, layers=2, bidir=False, dropout=0.1, batch=64, lr=0.005)
REAL = dict(num_examples=20000, valid=2001, steps=12, embed=128, hidden=128, layers=2, bidir=True, dropout=0.2, batch=128,
            lr=0.002)

def fra(): return os.path.join(DATA, "fra-eng", "fra.txt")

def run(cmd, **kw):
    t0 = time.time()
    out = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return out.stdout, time.time() - t0

def rnnlm_cmd(args, s, epochs, ck, valid=None, workers=0, threads=1):
    """`rnnlm train --task translation` with setting s; valid overrides the setting's validation pairs."""
    cmd = [args.rnnlm, "train", "--task", "translation", "--dataset", "fra-eng", "--data-dir", DATA,
           "--num-examples", str(s["num_examples"]), "--valid-examples", str(s["valid"] if valid is None else valid),
           "--num-steps", str(s["steps"]), "--embed", str(s["embed"]), "--hidden", str(s["hidden"]),
           "--layers", str(s["layers"]), "--model", "gru", "--dropout", str(s["dropout"]), "--batch-size", str(s["batch"]),
           "--optimizer", "adam", "--lr", str(s["lr"]), "--clip", "1", "--epochs", str(epochs), "--seed", str(args.seed),
           "--threads", str(threads), "--checkpoint-dir", ck, "--metrics", os.path.join(ck, "bench-metrics.jsonl"), "--quiet"]
    if s["bidir"]: cmd.append("--bidirectional")
    if workers: cmd += ["--workers", str(workers)]
    return cmd

def peer_cmd(args, s, epochs, valid=None, extra=()):
    """torch_seq2seq.py with setting s. Its --valid-examples N reads N + 1 lines (D2L's inclusive bound), rnnlm's
    reads N, so the peer gets one less to score the same pairs."""
    v = s["valid"] if valid is None else valid
    cmd = [sys.executable, os.path.join(PEERS, "torch_seq2seq.py"), fra(), "--cell", "gru", "--embed", str(s["embed"]),
           "--hidden", str(s["hidden"]), "--layers", str(s["layers"]), "--dropout", str(s["dropout"]), "--batch", str(s["batch"]),
           "--num-steps", str(s["steps"]), "--num-examples", str(s["num_examples"]), "--valid-examples", str(max(v - 1, 0)),
           "--lr", str(s["lr"]), "--epochs", str(epochs), "--threads", "1", "--seed", str(args.seed)] + list(extra)
    if s["bidir"]: cmd.append("--bidirectional")
    return cmd

def epochs_of(ck):
    return [json.loads(l) for l in open(os.path.join(ck, "bench-metrics.jsonl")) if '"kind":"epoch"' in l]

def upper_median(xs): return sorted(xs)[len(xs) // 2]  # the peer's tokens_per_s_median

def peer_json(out): return json.loads([l for l in out.splitlines() if l.startswith("{")][-1])

def newest_checkpoint(ck):
    files = [f for f in os.listdir(ck) if f.endswith(".safetensors")]
    return os.path.join(ck, max(files, key=lambda f: int(re.findall(r"\d+", f)[-1])))

def translate(args, ck, sentences, beam=None):
    cmd = [args.rnnlm, "translate", "--checkpoint", ck] + (["--beam", str(beam)] if beam else [])
    out, secs = run(cmd, input="\n".join(sentences) + "\n")
    lines = out.split("\n")[: len(sentences)]
    assert len(lines) == len(sentences), f"{len(lines)} translations for {len(sentences)} sentences"
    return lines, secs

def preprocess(text):  # D2L's, as torch_seq2seq.py and rnnlm
    text = text.replace("\u202f", " ").replace("\xa0", " ").lower()
    return "".join(" " + c if i > 0 and c in ",.!?" and text[i - 1] != " " else c for i, c in enumerate(text))

def valid_pairs(s):
    """The validation pairs of setting s as rnnlm reads them: raw source lines, preprocessed target references."""
    src, ref = [], []
    for i, line in enumerate(open(fra(), encoding="utf-8").read().split("\n")):
        if i <= s["num_examples"]: continue
        if i > s["num_examples"] + s["valid"]: break
        parts = line.split("\t")
        if len(parts) == 2:
            src.append(parts[0]); ref.append(preprocess(parts[1]))
    return src, ref

def sacrebleu(hyps, refs):
    code = ("import json, sys, sacrebleu; d = json.load(sys.stdin); "
            "print(sacrebleu.corpus_bleu(d['h'], [d['r']], tokenize='none').score)")
    out = subprocess.run([BLEU_PY, "-c", code], input=json.dumps({"h": hyps, "r": refs}), capture_output=True, text=True)
    if out.returncode != 0: raise RuntimeError(f"sacreBLEU ({BLEU_PY}) failed: {out.stderr[-500:]}")
    return float(out.stdout)

def part_d2l(args, tmp, report):
    s = D2L
    ck = tempfile.mkdtemp(dir=tmp)
    _, r_secs = run(rnnlm_cmd(args, s, args.d2l_epochs, ck))
    ours = epochs_of(ck)[-1]
    out, p_secs = run(peer_cmd(args, s, args.d2l_epochs))
    peer = peer_json(out)
    mine, _ = translate(args, ck, D2L_SENTENCES)
    out, _ = run(peer_cmd(args, s, 0, extra=["--load", newest_checkpoint(ck)]))
    loaded = [e["translation"] for e in peer_json(out)["examples"]]
    x = dict(rnnlm_loss=ours["loss"], peer_loss=peer["loss"], rnnlm_seconds=r_secs, peer_seconds=p_secs,
             rnnlm_tokens_per_s=ours["tokens_per_s"], peer_tokens_per_s=peer["tokens_per_s_median"],
             rnnlm_translations=mine, peer_translations=[e["translation"] for e in peer["examples"]],
             torch_load_translations=loaded, load_matches=mine == loaded)
    report["d2l"] = x
    print(f"d2l: final training loss rnnlm {x['rnnlm_loss']:.4f}, PyTorch {x['peer_loss']:.4f} "
          f"({args.d2l_epochs} epochs, {r_secs:.0f} s / {p_secs:.0f} s)")
    print("| sentence | rnnlm | PyTorch, rnnlm's checkpoint (--load) | PyTorch, own training |")
    print("|---|---|---|---|")
    for e, m, l, p in zip(D2L_SENTENCES, mine, loaded, x["peer_translations"]):
        print(f"| {e} | {m} | {l} | {p} |")
    print(f"PyTorch --load translations identical to rnnlm's: {'yes' if x['load_matches'] else 'NO'}", flush=True)

def part_speed(args, tmp, report):
    r_runs, p_runs = [], []
    for k in range(args.repeats):  # alternate: rnnlm, peer, rnnlm, peer, ...
        ck = tempfile.mkdtemp(dir=tmp)
        run(rnnlm_cmd(args, REAL, args.speed_epochs, ck, valid=0))
        r_runs.append([e["tokens_per_s"] for e in epochs_of(ck)])
        out, _ = run(peer_cmd(args, REAL, args.speed_epochs, valid=0))
        p_runs.append(peer_json(out)["tokens_per_s_median"])
        print(f"speed run {k + 1}: rnnlm {', '.join(f'{t:,.0f}' for t in r_runs[-1])} tok/s by epoch, "
              f"PyTorch {p_runs[-1]:,.0f} tok/s (median of its epochs)", flush=True)
    r = statistics.median(upper_median(x) for x in r_runs); p = statistics.median(p_runs)
    report["speed"] = dict(rnnlm=r, peer=p, ratio=r / p, rnnlm_runs=r_runs, peer_runs=p_runs, epochs=args.speed_epochs)
    print(f"speed (real setting, 1 thread, {args.speed_epochs} epochs x {args.repeats}): rnnlm {r:,.0f} tok/s, "
          f"PyTorch {p:,.0f} tok/s, ratio {r / p:.2f}", flush=True)

def part_workers(args, tmp, report):
    runs = {1: [], 2: []}
    for k in range(args.repeats):
        for w in (2, 1):
            ck = tempfile.mkdtemp(dir=tmp)
            run(rnnlm_cmd(args, REAL, args.speed_epochs, ck, valid=0, workers=w))
            runs[w].append([e["tokens_per_s"] for e in epochs_of(ck)])
        print(f"workers run {k + 1}: --workers 2 {', '.join(f'{t:,.0f}' for t in runs[2][-1])}, "
              f"--workers 1 {', '.join(f'{t:,.0f}' for t in runs[1][-1])} tok/s by epoch", flush=True)
    w1 = statistics.median(t for x in runs[1] for t in x); w2 = statistics.median(t for x in runs[2] for t in x)
    report["workers"] = dict(workers1=w1, workers2=w2, ratio=w2 / w1, runs={str(k): v for k, v in runs.items()})
    print(f"workers (real setting, {args.speed_epochs} epochs x {args.repeats}, median over all epochs): "
          f"--workers 1 {w1:,.0f} tok/s, --workers 2 {w2:,.0f} tok/s, ratio {w2 / w1:.2f}", flush=True)

def part_bleu(args, tmp, report):
    ck = args.bleu_checkpoint or tempfile.mkdtemp(dir=tmp)
    if not args.bleu_checkpoint:  # the two full runs side by side, one core each
        rp = subprocess.Popen(rnnlm_cmd(args, REAL, args.bleu_epochs, ck), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        pp = subprocess.Popen(peer_cmd(args, REAL, args.bleu_epochs), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        (_, r_err), (p_out, p_err) = rp.communicate(), pp.communicate()
        if rp.returncode or pp.returncode: raise RuntimeError(f"bleu runs failed:\n{r_err[-1500:]}\n{p_err[-1500:]}")
        peer = peer_json(p_out)
    else:
        peer = peer_json(open(args.peer_result).read()) if args.peer_result else {}
    last = [e for e in epochs_of(ck) if "val_bleu" in e][-1]
    ev, _ = run([args.rnnlm, "eval", "--checkpoint", ck, "--data-dir", DATA])
    src, refs = valid_pairs(REAL)
    greedy, g_secs = translate(args, ck, src)
    beam, b_secs = translate(args, ck, src, beam=args.beam)
    x = dict(rnnlm_val_bleu=last["val_bleu"], rnnlm_loss=last["loss"], rnnlm_val_loss=last.get("val_loss"),
             rnnlm_eval=ev.strip(), peer_corpus_bleu=peer.get("corpus_bleu"), peer_loss=peer.get("loss"),
             peer_valid_pairs=peer.get("valid_pairs"), valid_pairs=len(src),
             greedy_sacrebleu=sacrebleu(greedy, refs), beam_sacrebleu=sacrebleu(beam, refs), beam=args.beam,
             greedy_seconds=g_secs, beam_seconds=b_secs, epochs=args.bleu_epochs)
    report["bleu"] = x
    print(f"bleu ({args.bleu_epochs} epochs, {len(src)} validation pairs; PyTorch scored {x['peer_valid_pairs']}):")
    print(f"  rnnlm last epoch: loss {x['rnnlm_loss']:.3f}, val_loss {x['rnnlm_val_loss']}, val_bleu {x['rnnlm_val_bleu']:.2f}")
    print(f"  rnnlm eval: {x['rnnlm_eval']}")
    if peer: print(f"  PyTorch: loss {x['peer_loss']:.3f}, corpus BLEU {x['peer_corpus_bleu']:.2f}")
    print(f"  rnnlm translate, sacreBLEU: greedy {x['greedy_sacrebleu']:.2f} ({g_secs:.1f} s), "
          f"--beam {args.beam} {x['beam_sacrebleu']:.2f} ({b_secs:.1f} s)", flush=True)

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rnnlm", required=True)
    ap.add_argument("--parts", default="d2l,speed,workers,bleu")
    ap.add_argument("--repeats", type=int, default=3, help="alternating runs for speed and workers")
    ap.add_argument("--speed-epochs", type=int, default=2)
    ap.add_argument("--d2l-epochs", type=int, default=300)
    ap.add_argument("--bleu-epochs", type=int, default=15)
    ap.add_argument("--beam", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bleu-checkpoint", default="", help="score an existing rnnlm run's folder instead of training")
    ap.add_argument("--peer-result", default="", help="with --bleu-checkpoint: the peer's output (its last JSON line is read)")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp()
    report = {"bench": "translation"}
    parts = {"d2l": part_d2l, "speed": part_speed, "workers": part_workers, "bleu": part_bleu}
    for p in args.parts.split(","):
        parts[p](args, tmp, report)
        print()
    print(json.dumps(report))

if __name__ == "__main__":
    main()
