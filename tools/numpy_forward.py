#!/usr/bin/env python3
"""An independent NumPy forward pass of an rnnlm language-model checkpoint: the loss of a text, to compare with
`rnnlm eval` on the same text (CI runs it through .ci/numpy-check).

    python tools/numpy_forward.py CHECKPOINT.safetensors TEXT_FILE

Reads the tensors with the `safetensors` package (NumPy framework) and the model's shape and vocabulary from
`__metadata__["rnnlm"]`; tokenizes the text per character (the char-raw tokenizer, every character kept),
runs the model from a zero state over the whole text as one stream (PyTorch's RNN/GRU/LSTM equations, gate
orders r z n and i f g o), and prints the mean cross-entropy of each next character as `loss X`.
"""
import json, sys
import numpy as np
from safetensors import safe_open


def load(path):
    with safe_open(path, framework="np") as f:
        record = json.loads(f.metadata()["rnnlm"])
        tensors = {k: f.get_tensor(k).astype(np.float64) for k in f.keys()}
    spec = record["spec"]
    if "languageModel" not in spec:
        sys.exit(f"{path} holds {list(spec)[0]}, not a language model")
    config = spec["languageModel"]["_0"]
    task = json.loads(record["extra"]["task"]["json"])
    return config, tensors, task["vocabulary"]["tokens"], task["tokenizer"]["kind"]


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def step(cell, x, h, c, w_ih, w_hh, b_ih, b_hh):
    gx, gh = w_ih @ x + b_ih, w_hh @ h + b_hh
    H = h.shape[0]
    if cell in ("rnn", "rnn-relu"):
        a = gx + gh
        return (np.tanh(a) if cell == "rnn" else np.maximum(a, 0)), c
    if cell == "gru":
        r = sigmoid(gx[:H] + gh[:H]); z = sigmoid(gx[H:2 * H] + gh[H:2 * H])
        n = np.tanh(gx[2 * H:] + r * gh[2 * H:])
        return (1 - z) * n + z * h, c
    i, f = sigmoid(gx[:H] + gh[:H]), sigmoid(gx[H:2 * H] + gh[H:2 * H])
    g, o = np.tanh(gx[2 * H:3 * H] + gh[2 * H:3 * H]), sigmoid(gx[3 * H:] + gh[3 * H:])
    c = f * c + i * g
    return o * np.tanh(c), c


def loss(config, t, vocab, text):
    index = {tok: i for i, tok in enumerate(vocab)}
    ids = [index.get(ch, 0) for ch in text]
    V, H, L, cell = config["vocabSize"], config["hiddenSize"], config["layers"], config["cell"]
    embed = t.get("encoder.weight")
    decoder = t["encoder.weight"] if config.get("tied") else t["decoder.weight"]
    h = [np.zeros(H) for _ in range(L)]; c = [np.zeros(H) for _ in range(L)]
    total = 0.0
    for pos in range(len(ids) - 1):
        x = embed[ids[pos]] if embed is not None else np.eye(V)[ids[pos]]
        for k in range(L):
            h[k], c[k] = step(cell, x, h[k], c[k], t[f"rnn.weight_ih_l{k}"], t[f"rnn.weight_hh_l{k}"],
                              t[f"rnn.bias_ih_l{k}"], t[f"rnn.bias_hh_l{k}"])
            x = h[k]
        logits = decoder @ x + t["decoder.bias"]
        m = logits.max()
        total += m + np.log(np.exp(logits - m).sum()) - logits[ids[pos + 1]]
    return total / (len(ids) - 1)


if __name__ == "__main__":
    config, tensors, vocab, kind = load(sys.argv[1])
    if kind != "char-raw":
        sys.exit(f"this check tokenizes per character (char-raw); the checkpoint uses {kind}")
    print(f"loss {loss(config, tensors, vocab, open(sys.argv[2], encoding='utf-8').read()):.6f}")
