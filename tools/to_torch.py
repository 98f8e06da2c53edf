#!/usr/bin/env python3
"""Loads an rnnlm checkpoint into the matching `torch.nn` module, strictly, and prints a greedy continuation
(language model) or translation (encoder-decoder): the proof that a checkpoint is a PyTorch model.

    python tools/to_torch.py CHECKPOINT.safetensors [--prefix TEXT] [--tokens N]     # language model
    python tools/to_torch.py CHECKPOINT.safetensors --sentence "Go."                  # translation

Needs torch and safetensors (bench's peer environment: /tmp/peer-venv, see ../shared/peers/README.md).
Language model: `encoder` (nn.Embedding, absent for one-hot input) → `rnn` (nn.RNN/GRU/LSTM) → `decoder`
(nn.Linear), word_language_model's names; a tied model stores `encoder.weight` once and `decoder.weight` is the
same tensor. Translation: `torch_seq2seq.py`'s Seq2Seq (encoder.embedding, encoder.rnn, decoder.embedding,
decoder.rnn over [embedding ; context], decoder.dense). `load_state_dict(strict=True)` either way.
"""
import argparse, json, re
import torch
from torch import nn
from safetensors.torch import load_file
from safetensors import safe_open

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("checkpoint")
p.add_argument("--prefix", default="time traveller")
p.add_argument("--tokens", type=int, default=50)
p.add_argument("--sentence", default="Go.")
a = p.parse_args()

with safe_open(a.checkpoint, framework="pt") as f:
    record = json.loads(f.metadata()["rnnlm"])
tensors = {k: v for k, v in load_file(a.checkpoint).items() if not k.startswith(("optimizer.", "state."))}
spec = record["spec"]
RNN = {"rnn": nn.RNN, "rnn-relu": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}

if "languageModel" in spec:
    c = spec["languageModel"]["_0"]
    V, E, H, L, cell = c["vocabSize"], c["embedSize"], c["hiddenSize"], c["layers"], c["cell"]

    class RNNModel(nn.Module):
        def __init__(s):
            super().__init__()
            if E: s.encoder = nn.Embedding(V, E)
            kw = {"nonlinearity": "relu"} if cell == "rnn-relu" else {}
            s.rnn = RNN[cell](E or V, H, L, **kw)
            s.decoder = nn.Linear(H, V)
            if c.get("tied"): s.decoder.weight = s.encoder.weight
        def forward(s, x, state=None):  # x [T, 1] token ids
            inp = s.encoder(x) if E else nn.functional.one_hot(x, V).float()
            out, state = s.rnn(inp, state)
            return s.decoder(out), state

    model = RNNModel()
    if c.get("tied"): tensors["decoder.weight"] = tensors["encoder.weight"]  # one tensor, two names
    model.load_state_dict(tensors, strict=True)
    task = json.loads(record["extra"]["task"]["json"])
    vocab, kind = task["vocabulary"]["tokens"], task["tokenizer"]["kind"]
    index = {t: i for i, t in enumerate(vocab)}
    text = a.prefix.lower() if kind == "char" else a.prefix
    if kind == "char": text = re.sub("[^a-z]+", " ", text)
    toks = list(text) if kind in ("char", "char-raw") else text.split()
    sep = "" if kind in ("char", "char-raw") else " "
    model.eval()
    with torch.no_grad():
        logits, state = model(torch.tensor([[index.get(t, 0)] for t in toks]))
        out = []
        for _ in range(a.tokens):
            y = int(logits[-1, 0].argmax())
            out.append(vocab[y])
            logits, state = model(torch.tensor([[y]]), state)
    print(sep.join(toks) + sep + sep.join(out))
else:
    c = spec["translation"]["_0"]
    Vs, Vt, E, H, L, cell, bi = (c["sourceVocabSize"], c["targetVocabSize"], c["embedSize"], c["hiddenSize"], c["layers"],
                                 c["cell"], c["bidirectional"])

    class Encoder(nn.Module):
        def __init__(s):
            super().__init__()
            s.embedding = nn.Embedding(Vs, E)
            s.rnn = RNN[cell](E, H // 2 if bi else H, L, bidirectional=bi)
        def forward(s, x):
            _, st = s.rnn(s.embedding(x))
            if not bi: return st
            join = lambda h: torch.cat([h[0::2], h[1::2]], 2)
            return tuple(join(h) for h in st) if isinstance(st, tuple) else join(st)

    class Decoder(nn.Module):
        def __init__(s):
            super().__init__()
            s.embedding = nn.Embedding(Vt, E)
            s.rnn = RNN[cell](E + H, H, L)
            s.dense = nn.Linear(H, Vt)
        def forward(s, y, st, ctx):
            e = s.embedding(y)
            out, st = s.rnn(torch.cat([e, ctx.expand(e.shape[0], -1, -1)], 2), st)
            return s.dense(out), st

    class Seq2Seq(nn.Module):
        def __init__(s):
            super().__init__(); s.encoder = Encoder(); s.decoder = Decoder()

    model = Seq2Seq()
    model.load_state_dict(tensors, strict=True)
    sv, tv = record["source_vocab"], record["target_vocab"]
    steps = json.loads(record["extra"]["task"]["json"])["numSteps"]
    text = a.sentence.replace("\u202f", " ").replace("\xa0", " ").lower()
    text = "".join(" " + ch if i > 0 and ch in ",.!?" and text[i - 1] != " " else ch for i, ch in enumerate(text))
    si = {t: i for i, t in enumerate(sv)}
    ids = ([si.get(t, 0) for t in text.split(" ")] + [sv.index("<eos>")])[:steps]
    # A bucketed model's encoder reads only the valid steps (a packed sequence); for one sentence that is simply
    # the sentence unpadded. A fixed-padding model's encoder reads the padding too, as D2L's does.
    if not c.get("packedSource"):
        ids += [sv.index("<pad>")] * (steps - len(ids))
    with torch.no_grad():
        st = model.encoder(torch.tensor(ids)[:, None])
        ctx = (st[0] if isinstance(st, tuple) else st)[-1]
        y, out = torch.tensor([[tv.index("<bos>")]]), []
        for _ in range(steps):
            logits, st = model.decoder(y, st, ctx)
            y = logits.argmax(2)
            if int(y) == tv.index("<eos>"): break
            out.append(tv[int(y)])
    print(" ".join(out))
