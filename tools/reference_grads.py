#!/usr/bin/env python3
"""Independent float64 reference for rnnlm's numeric core.

For a fixed tiny model of each cell type (RNN-tanh, RNN-relu, GRU, LSTM; with and without an embedding;
1 and 2 layers) it computes the summed cross-entropy loss over a [T, B] minibatch, the gradient of every
parameter tensor and of the initial state, and the final state, with PyTorch's parameterisation
(gate order GRU r,z,n; LSTM i,f,g,o; two bias vectors). The gradients come from a hand-written BPTT
checked here against float64 central differences before anything is written.

It also covers the layers on their own ("stack_cases", "loss_cases"):
- a recurrent stack (uni- or bidirectional, PyTorch's names and order with "_reverse" tensors, layer k > 0 reading
  [forward ; backward] outputs) with optional per-row lengths under PyTorch's packed-sequence semantics, computed
  row by row over each row's valid steps only (the reverse direction starts at the row's last valid token; padded
  outputs are 0; the final state is the one after the last valid step). The objective is
  J = sum(wOut * output) + sum(wH * h_final) + sum(wC * c_final), so the final-state gradient is exercised; the
  gradients of every parameter, the input and the initial state come from a hand-written BPTT per row, checked
  against float64 central differences;
- softmax cross-entropy with a 0/1 row mask: the masked sum, the number of unmasked rows and the gradient.

And the encoder-decoder of torch_seq2seq.py ("seq2seq_cases"; GRU and LSTM, uni- and bidirectional, packed and
unpacked source, rows of different source and target lengths): the encoder (zero initial state, H/2 per direction)
reads each row's valid source steps when packed and all of them otherwise; per layer its final [forward ; backward]
state starts the decoder, whose input at every step is [target embedding ; top layer's final h]; the loss is the
cross-entropy summed over each row's valid target steps. Written row by row, with the decoder run over the valid
target steps only (it is causal, so the masked positions cannot matter); the gradient of every parameter comes from
a hand-written backward through the same per-direction BPTT, checked against float64 central differences.

Regenerate the fixture (from the repository root):
    python3 tools/reference_grads.py > Tests/RNNCoreTests/Fixtures/reference_grads.json
"""
import json
import sys

import numpy as np

GATES = {"rnn": 1, "rnn-relu": 1, "gru": 3, "lstm": 4}


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def make_case(cell, layers, embed, seed, V=6, H=5, T=4, B=3):
    rng = np.random.default_rng(seed)
    G = GATES[cell]
    params = {}
    if embed:
        params["encoder.weight"] = rng.uniform(-0.5, 0.5, (V, embed))
    for k in range(layers):
        inp = (embed or V) if k == 0 else H
        params[f"rnn.weight_ih_l{k}"] = rng.uniform(-0.6, 0.6, (G * H, inp))
        params[f"rnn.weight_hh_l{k}"] = rng.uniform(-0.6, 0.6, (G * H, H))
        params[f"rnn.bias_ih_l{k}"] = rng.uniform(-0.3, 0.3, (G * H,))
        params[f"rnn.bias_hh_l{k}"] = rng.uniform(-0.3, 0.3, (G * H,))
    params["decoder.weight"] = rng.uniform(-0.5, 0.5, (V, H))
    params["decoder.bias"] = rng.uniform(-0.2, 0.2, (V,))
    inputs = rng.integers(0, V, (T, B))
    targets = rng.integers(0, V, (T, B))
    h0 = rng.uniform(-0.5, 0.5, (layers, B, H))
    c0 = rng.uniform(-0.5, 0.5, (layers, B, H)) if cell == "lstm" else None
    return dict(cell=cell, layers=layers, embed=embed, V=V, H=H, T=T, B=B, params=params,
                inputs=inputs, targets=targets, h0=h0, c0=c0)


def layer_input0(case, params):
    V, embed = case["V"], case["embed"]
    if embed:
        return params["encoder.weight"][case["inputs"]]  # [T, B, E]
    return np.eye(V)[case["inputs"]]  # one-hot [T, B, V]


def step(cell, x, h, c, wih, whh, bih, bhh):
    """One time step for one layer; returns (h', c', cache)."""
    H = h.shape[-1]
    gx = x @ wih.T + bih
    gh = h @ whh.T + bhh
    if cell in ("rnn", "rnn-relu"):
        pre = gx + gh
        hn = np.tanh(pre) if cell == "rnn" else np.maximum(pre, 0)
        return hn, None, (pre,)
    if cell == "gru":
        r = sigmoid(gx[:, :H] + gh[:, :H])
        z = sigmoid(gx[:, H:2 * H] + gh[:, H:2 * H])
        n = np.tanh(gx[:, 2 * H:] + r * gh[:, 2 * H:])
        return (1 - z) * n + z * h, None, (r, z, n, gh[:, 2 * H:])
    i = sigmoid(gx[:, :H] + gh[:, :H])
    f = sigmoid(gx[:, H:2 * H] + gh[:, H:2 * H])
    g = np.tanh(gx[:, 2 * H:3 * H] + gh[:, 2 * H:3 * H])
    o = sigmoid(gx[:, 3 * H:] + gh[:, 3 * H:])
    cn = f * c + i * g
    return o * np.tanh(cn), cn, (i, f, g, o, cn)


def forward(case, params, h0, c0):
    cell, L, T = case["cell"], case["layers"], case["T"]
    xs = list(layer_input0(case, params))
    caches, hs_all, cs_all = [], [], []
    hT, cT = [], []
    for k in range(L):
        h = h0[k]
        c = c0[k] if c0 is not None else None
        hs, cs, cache = [h], [c], []
        for t in range(T):
            h, c, cc = step(cell, xs[t], h, c, params[f"rnn.weight_ih_l{k}"], params[f"rnn.weight_hh_l{k}"],
                            params[f"rnn.bias_ih_l{k}"], params[f"rnn.bias_hh_l{k}"])
            hs.append(h)
            cs.append(c)
            cache.append(cc)
        caches.append((xs, hs, cs, cache))
        hT.append(h)
        cT.append(c)
        xs = hs[1:]
    logits = np.stack(xs) @ params["decoder.weight"].T + params["decoder.bias"]  # [T, B, V]
    m = logits.max(-1, keepdims=True)
    lse = (m + np.log(np.exp(logits - m).sum(-1, keepdims=True)))[..., 0]
    tgt = case["targets"]
    picked = np.take_along_axis(logits, tgt[..., None], -1)[..., 0]
    loss = float((lse - picked).sum())
    return loss, logits, lse, caches, np.stack(hT), (np.stack(cT) if c0 is not None else None)


def backward(case, params, h0, c0):
    cell, L, T, B, H, V = case["cell"], case["layers"], case["T"], case["B"], case["H"], case["V"]
    loss, logits, lse, caches, hT, cT = forward(case, params, h0, c0)
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    dlogits = np.exp(logits - lse[..., None])
    tgt = case["targets"]
    for t in range(T):
        for b in range(B):
            dlogits[t, b, tgt[t, b]] -= 1
    top = np.stack(caches[-1][1][1:])  # [T, B, H]
    grads["decoder.weight"] += np.einsum("tbv,tbh->vh", dlogits, top)
    grads["decoder.bias"] += dlogits.sum((0, 1))
    dout = list(dlogits @ params["decoder.weight"])  # per step [B, H]
    dh0 = np.zeros((L, B, H))
    dc0 = np.zeros((L, B, H)) if c0 is not None else None
    for k in reversed(range(L)):
        xs, hs, cs, cache = caches[k]
        wih, whh = params[f"rnn.weight_ih_l{k}"], params[f"rnn.weight_hh_l{k}"]
        dh = np.zeros((B, H))
        dc = np.zeros((B, H))
        dxs = [None] * T
        for t in reversed(range(T)):
            dh = dh + dout[t]
            hp = hs[t]
            if cell in ("rnn", "rnn-relu"):
                (pre,) = cache[t]
                dpre = dh * (1 - np.tanh(pre) ** 2) if cell == "rnn" else dh * (pre > 0)
                dgx, dgh, direct = dpre, dpre, 0
            elif cell == "gru":
                r, z, n, hn = cache[t]
                dn = dh * (1 - z) * (1 - n ** 2)
                dz = dh * (hp - n) * z * (1 - z)
                dr = dn * hn * r * (1 - r)
                dgx = np.concatenate([dr, dz, dn], 1)
                dgh = np.concatenate([dr, dz, dn * r], 1)
                direct = dh * z
            else:
                i, f, g, o, cn = cache[t]
                tc = np.tanh(cn)
                dc = dc + dh * o * (1 - tc ** 2)
                dgx = np.concatenate([dc * g * i * (1 - i), dc * cs[t] * f * (1 - f), dc * i * (1 - g ** 2),
                                      dh * tc * o * (1 - o)], 1)
                dgh = dgx
                dc = dc * f
                direct = 0
            grads[f"rnn.weight_ih_l{k}"] += dgx.T @ xs[t]
            grads[f"rnn.weight_hh_l{k}"] += dgh.T @ hp
            grads[f"rnn.bias_ih_l{k}"] += dgx.sum(0)
            grads[f"rnn.bias_hh_l{k}"] += dgh.sum(0)
            dxs[t] = dgx @ wih
            dh = dgh @ whh + direct
        dh0[k] = dh
        if dc0 is not None:
            dc0[k] = dc
        dout = dxs
    if case["embed"]:
        for t in range(T):
            for b in range(B):
                grads["encoder.weight"][case["inputs"][t, b]] += dout[t][b]
    return loss, grads, dh0, dc0, hT, cT


def finite_difference_check(case):
    params, h0, c0 = case["params"], case["h0"], case["c0"]
    loss, grads, dh0, dc0, _, _ = backward(case, params, h0, c0)
    eps = 1e-6
    worst = 0.0
    targets = [(params[k], grads[k]) for k in params] + [(h0, dh0)] + ([(c0, dc0)] if c0 is not None else [])
    for arr, g in targets:
        num = np.zeros_like(arr)
        it = np.nditer(arr, flags=["multi_index"])
        for _ in it:
            idx = it.multi_index
            old = arr[idx]
            arr[idx] = old + eps
            lp = forward(case, params, h0, c0)[0]
            arr[idx] = old - eps
            lm = forward(case, params, h0, c0)[0]
            arr[idx] = old
            num[idx] = (lp - lm) / (2 * eps)
        worst = max(worst, np.abs(num - g).max() / max(np.abs(g).max(), 1e-12))
    if worst > 1e-6:
        sys.exit(f"reference BPTT disagrees with finite differences for {case['cell']}: {worst:.3g}")
    return worst


def run_direction(cell, xs, h, c, w):
    """One direction of one layer over one row's valid steps; xs: list of [1, in]. Returns (hs, cs, cache)."""
    hs, cs, cache = [h], [c], []
    for x in xs:
        h, c, cc = step(cell, x, h, c, *w)
        hs.append(h)
        cs.append(c)
        cache.append(cc)
    return hs, cs, cache


def direction_backward(cell, xs, hs, cs, cache, douts, dhT, dcT, w, g):
    """BPTT through run_direction: douts per step [1, H]; dhT/dcT the final-state gradient. Accumulates the four
    parameter gradients into g; returns (dxs, dh0, dc0)."""
    wih, whh = w[0], w[1]
    H = hs[0].shape[-1]
    dh, dc = dhT.copy(), (dcT.copy() if dcT is not None else np.zeros_like(dhT))
    dxs = [None] * len(xs)
    for t in reversed(range(len(xs))):
        dh = dh + douts[t]
        hp = hs[t]
        if cell in ("rnn", "rnn-relu"):
            (pre,) = cache[t]
            dpre = dh * (1 - np.tanh(pre) ** 2) if cell == "rnn" else dh * (pre > 0)
            dgx, dgh, direct = dpre, dpre, 0
        elif cell == "gru":
            r, z, n, hn = cache[t]
            dn = dh * (1 - z) * (1 - n ** 2)
            dz = dh * (hp - n) * z * (1 - z)
            dr = dn * hn * r * (1 - r)
            dgx = np.concatenate([dr, dz, dn], 1)
            dgh = np.concatenate([dr, dz, dn * r], 1)
            direct = dh * z
        else:
            i, f, gg, o, cn = cache[t]
            tc = np.tanh(cn)
            dc = dc + dh * o * (1 - tc ** 2)
            dgx = np.concatenate([dc * gg * i * (1 - i), dc * cs[t] * f * (1 - f), dc * i * (1 - gg ** 2),
                                  dh * tc * o * (1 - o)], 1)
            dgh = dgx
            dc = dc * f
            direct = 0
        g[0] += dgx.T @ xs[t]
        g[1] += dgh.T @ hp
        g[2] += dgx.sum(0)
        g[3] += dgh.sum(0)
        dxs[t] = dgx @ wih
        dh = dgh @ whh + direct
    return dxs, dh, dc


def make_stack_case(cell, layers, bidirectional, lengths, seed, onehot=False, I=3, H=4, T=4, B=4):
    rng = np.random.default_rng(seed)
    G, D = GATES[cell], 2 if bidirectional else 1
    params = {}
    for k in range(layers):
        for suffix in (["", "_reverse"] if bidirectional else [""]):
            inp = I if k == 0 else D * H
            params[f"rnn.weight_ih_l{k}{suffix}"] = rng.uniform(-0.6, 0.6, (G * H, inp))
            params[f"rnn.weight_hh_l{k}{suffix}"] = rng.uniform(-0.6, 0.6, (G * H, H))
            params[f"rnn.bias_ih_l{k}{suffix}"] = rng.uniform(-0.3, 0.3, (G * H,))
            params[f"rnn.bias_hh_l{k}{suffix}"] = rng.uniform(-0.3, 0.3, (G * H,))
    tokens = rng.integers(0, I, (T, B)) if onehot else None
    x = np.eye(I)[tokens] if onehot else rng.uniform(-1, 1, (T, B, I))
    S = layers * D
    return dict(cell=cell, layers=layers, bidirectional=bidirectional, I=I, H=H, T=T, B=B, D=D, params=params,
                tokens=tokens, x=x, lengths=lengths, h0=rng.uniform(-0.5, 0.5, (S, B, H)),
                c0=rng.uniform(-0.5, 0.5, (S, B, H)) if cell == "lstm" else None,
                wOut=rng.uniform(-1, 1, (T, B, D * H)), wH=rng.uniform(-1, 1, (S, B, H)),
                wC=rng.uniform(-1, 1, (S, B, H)) if cell == "lstm" else None)


def stack_weights(case, k, d):
    suffix = "_reverse" if d == 1 else ""
    p = case["params"]
    return [p[f"rnn.weight_ih_l{k}{suffix}"], p[f"rnn.weight_hh_l{k}{suffix}"], p[f"rnn.bias_ih_l{k}{suffix}"],
            p[f"rnn.bias_hh_l{k}{suffix}"]]


def stack_forward_backward(case, want_grads=True):
    """Row by row over its valid steps. Returns (J, out, hT, cT, grads, dx, dh0, dc0)."""
    cell, L, T, B, H, D = case["cell"], case["layers"], case["T"], case["B"], case["H"], case["D"]
    x, h0, c0 = case["x"], case["h0"], case["c0"]
    lengths = case["lengths"] if case["lengths"] is not None else [T] * B
    lstm = c0 is not None
    out = np.zeros((T, B, D * H))
    hT, cT = np.zeros_like(h0), (np.zeros_like(c0) if lstm else None)
    grads = {k: np.zeros_like(v) for k, v in case["params"].items()}
    dx, dh0, dc0 = np.zeros_like(x), np.zeros_like(h0), (np.zeros_like(c0) if lstm else None)
    for b in range(B):
        n = lengths[b]
        seq = [x[t, b][None] for t in range(n)]
        saved = []
        for k in range(L):
            outs = []
            for d in range(D):
                s = k * D + d
                xs = seq if d == 0 else seq[::-1]
                hs, cs, cache = run_direction(cell, xs, h0[s, b][None], c0[s, b][None] if lstm else None,
                                              stack_weights(case, k, d))
                hT[s, b] = hs[-1][0]
                if lstm:
                    cT[s, b] = cs[-1][0]
                saved.append((k, d, xs, hs, cs, cache))
                outs.append(hs[1:] if d == 0 else hs[1:][::-1])
            seq = [np.concatenate([o[t] for o in outs], 1) for t in range(n)]
        for t in range(n):
            out[t, b] = seq[t][0]
        if not want_grads:
            continue
        dseq = [case["wOut"][t, b][None] for t in range(n)]
        for k in reversed(range(L)):
            din = [np.zeros((1, seq_w)) for seq_w in [x.shape[2] if k == 0 else D * H] * n]
            for d in range(D):
                s = k * D + d
                _, _, xs, hs, cs, cache = saved[k * D + d]
                douts = [dq[:, d * H:(d + 1) * H] for dq in dseq]
                if d == 1:
                    douts = douts[::-1]
                g = [grads[name] for name in [f"rnn.{w}_l{k}{'_reverse' if d == 1 else ''}"
                                              for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]]
                dxs, dh, dc = direction_backward(cell, xs, hs, cs, cache, douts, case["wH"][s, b][None],
                                                 case["wC"][s, b][None] if lstm else None, stack_weights(case, k, d), g)
                if d == 1:
                    dxs = dxs[::-1]
                for t in range(n):
                    din[t] = din[t] + dxs[t]
                dh0[s, b] = dh[0]
                if lstm:
                    dc0[s, b] = dc[0]
            dseq = din
        for t in range(n):
            dx[t, b] = dseq[t][0]
    J = float((case["wOut"] * out).sum() + (case["wH"] * hT).sum() + ((case["wC"] * cT).sum() if lstm else 0))
    return J, out, hT, cT, grads, dx, dh0, dc0


def stack_finite_difference_check(case):
    _, _, _, _, grads, dx, dh0, dc0 = stack_forward_backward(case)
    eps, worst = 1e-6, 0.0
    targets = [(case["params"][k], grads[k]) for k in case["params"]] + [(case["h0"], dh0)]
    if case["tokens"] is None:
        targets.append((case["x"], dx))
    if case["c0"] is not None:
        targets.append((case["c0"], dc0))
    for arr, g in targets:
        num = np.zeros_like(arr)
        it = np.nditer(arr, flags=["multi_index"])
        for _ in it:
            idx = it.multi_index
            old = arr[idx]
            arr[idx] = old + eps
            lp = stack_forward_backward(case, want_grads=False)[0]
            arr[idx] = old - eps
            lm = stack_forward_backward(case, want_grads=False)[0]
            arr[idx] = old
            num[idx] = (lp - lm) / (2 * eps)
        worst = max(worst, np.abs(num - g).max() / max(np.abs(g).max(), 1e-12))
    if worst > 1e-6:
        sys.exit(f"reference stack BPTT disagrees with finite differences for {case['cell']}: {worst:.3g}")
    return worst


def make_seq2seq_case(cell, bidirectional, packed, seed, Vs=6, Vt=7, E=3, H=4, L=2, S=5, T=4, B=3,
                      source_lengths=(5, 2, 3), target_lengths=(4, 1, 3)):
    """torch_seq2seq.py's model: encoder.embedding, encoder.rnn (H/2 per direction when bidirectional),
    decoder.embedding, decoder.rnn (input E + H), decoder.dense; state_dict names and order."""
    rng = np.random.default_rng(seed)
    G, D = GATES[cell], 2 if bidirectional else 1
    h = H // D
    params = {"encoder.embedding.weight": rng.uniform(-0.8, 0.8, (Vs, E))}
    for k in range(L):
        for suffix in (["", "_reverse"] if bidirectional else [""]):
            inp = E if k == 0 else D * h
            params[f"encoder.rnn.weight_ih_l{k}{suffix}"] = rng.uniform(-0.6, 0.6, (G * h, inp))
            params[f"encoder.rnn.weight_hh_l{k}{suffix}"] = rng.uniform(-0.6, 0.6, (G * h, h))
            params[f"encoder.rnn.bias_ih_l{k}{suffix}"] = rng.uniform(-0.3, 0.3, (G * h,))
            params[f"encoder.rnn.bias_hh_l{k}{suffix}"] = rng.uniform(-0.3, 0.3, (G * h,))
    params["decoder.embedding.weight"] = rng.uniform(-0.8, 0.8, (Vt, E))
    for k in range(L):
        inp = E + H if k == 0 else H
        params[f"decoder.rnn.weight_ih_l{k}"] = rng.uniform(-0.6, 0.6, (G * H, inp))
        params[f"decoder.rnn.weight_hh_l{k}"] = rng.uniform(-0.6, 0.6, (G * H, H))
        params[f"decoder.rnn.bias_ih_l{k}"] = rng.uniform(-0.3, 0.3, (G * H,))
        params[f"decoder.rnn.bias_hh_l{k}"] = rng.uniform(-0.3, 0.3, (G * H,))
    params["decoder.dense.weight"] = rng.uniform(-0.6, 0.6, (Vt, H))
    params["decoder.dense.bias"] = rng.uniform(-0.2, 0.2, (Vt,))
    # Ids 0..3 are <unk> <pad> <bos> <eos>; padding holds <pad> (read by an unpacked encoder, never by a packed one),
    # targets past a row's length are arbitrary ids (masked out of the loss).
    source = rng.integers(3, Vs, (S, B))
    for b in range(B):
        source[source_lengths[b]:, b] = 1
    target = rng.integers(3, Vt, (T, B))
    decoder_input = np.concatenate([np.full((1, B), 2), target[:-1]], 0)
    return dict(cell=cell, bidirectional=bidirectional, packed=packed, Vs=Vs, Vt=Vt, E=E, H=H, L=L, S=S, T=T, B=B,
                D=D, h=h, params=params, source=source, decoder_input=decoder_input, target=target,
                source_lengths=list(source_lengths), target_lengths=list(target_lengths))


def seq2seq_forward_backward(case, want_grads=True):
    """Row by row. The encoder (zero initial state) reads the row's valid source steps when packed, all S otherwise;
    layer k's final state is [forward h ; backward h] (and c) and starts decoder layer k; the context is the top
    layer's. The decoder runs over the row's valid target steps only: it is causal, so later steps cannot change
    the masked loss. Returns (loss summed over valid target tokens, their count, gradients)."""
    cell, L, D, H, h, E = case["cell"], case["L"], case["D"], case["H"], case["h"], case["E"]
    p, lstm = case["params"], case["cell"] == "lstm"
    grads = {k: np.zeros_like(v) for k, v in p.items()}
    total, count = 0.0, 0

    def weights(prefix, k, d):
        suffix = "_reverse" if d == 1 else ""
        return [p[f"{prefix}{w}_l{k}{suffix}"] for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]

    def grad_views(prefix, k, d):
        suffix = "_reverse" if d == 1 else ""
        return [grads[f"{prefix}{w}_l{k}{suffix}"] for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]

    for b in range(case["B"]):
        ns = case["source_lengths"][b] if case["packed"] else case["S"]
        nt = case["target_lengths"][b]
        src = case["source"][:ns, b]
        # Encoder.
        seq = [p["encoder.embedding.weight"][src[t]][None] for t in range(ns)]
        enc_saved, h_init, c_init = [], [], []
        for k in range(L):
            outs, hk, ck = [], [], []
            for d in range(D):
                xs = seq if d == 0 else seq[::-1]
                zero = np.zeros((1, h))
                hs, cs, cache = run_direction(cell, xs, zero, zero.copy() if lstm else None, weights("encoder.rnn.", k, d))
                enc_saved.append((xs, hs, cs, cache))
                outs.append(hs[1:] if d == 0 else hs[1:][::-1])
                hk.append(hs[-1])
                ck.append(cs[-1])
            seq = [np.concatenate([o[t] for o in outs], 1) for t in range(ns)]
            h_init.append(np.concatenate(hk, 1))
            c_init.append(np.concatenate(ck, 1) if lstm else None)
        context = h_init[-1]
        # Decoder over the valid target steps.
        tin = case["decoder_input"][:nt, b]
        seq = [np.concatenate([p["decoder.embedding.weight"][tin[t]][None], context], 1) for t in range(nt)]
        dec_saved = []
        for k in range(L):
            hs, cs, cache = run_direction(cell, seq, h_init[k], c_init[k], weights("decoder.rnn.", k, 0))
            dec_saved.append((seq, hs, cs, cache))
            seq = hs[1:]
        W, bias = p["decoder.dense.weight"], p["decoder.dense.bias"]
        dtops = []
        for t in range(nt):
            logits = seq[t][0] @ W.T + bias
            m = logits.max()
            lse = m + np.log(np.exp(logits - m).sum())
            y = case["target"][t, b]
            total += lse - logits[y]
            count += 1
            if want_grads:
                dl = np.exp(logits - lse)
                dl[y] -= 1
                grads["decoder.dense.weight"] += np.outer(dl, seq[t][0])
                grads["decoder.dense.bias"] += dl
                dtops.append((dl @ W)[None])
        if not want_grads:
            continue
        # Decoder backward: nothing reads its final state.
        dstate_h, dstate_c = [None] * L, [None] * L
        douts = dtops
        for k in reversed(range(L)):
            xs, hs, cs, cache = dec_saved[k]
            zero = np.zeros((1, H))
            douts, dh0, dc0 = direction_backward(cell, xs, hs, cs, cache, douts, zero, zero.copy() if lstm else None,
                                                 weights("decoder.rnn.", k, 0), grad_views("decoder.rnn.", k, 0))
            dstate_h[k], dstate_c[k] = dh0, dc0
        for t in range(nt):
            grads["decoder.embedding.weight"][tin[t]] += douts[t][0, :E]
            dstate_h[L - 1] = dstate_h[L - 1] + douts[t][:, E:]  # the context is the top layer's initial h
        # Encoder backward: its outputs feed only the next layer; each layer's final state gets the decoder's
        # initial-state gradient, split into directions.
        dseq = [np.zeros((1, D * h)) for _ in range(ns)]
        for k in reversed(range(L)):
            din = [np.zeros((1, E if k == 0 else D * h)) for _ in range(ns)]
            for d in range(D):
                xs, hs, cs, cache = enc_saved[k * D + d]
                dd = [dq[:, d * h:(d + 1) * h] for dq in dseq]
                if d == 1:
                    dd = dd[::-1]
                dhT = dstate_h[k][:, d * h:(d + 1) * h]
                dcT = dstate_c[k][:, d * h:(d + 1) * h] if lstm else None
                dxs, _, _ = direction_backward(cell, xs, hs, cs, cache, dd, dhT, dcT, weights("encoder.rnn.", k, d),
                                               grad_views("encoder.rnn.", k, d))
                if d == 1:
                    dxs = dxs[::-1]
                for t in range(ns):
                    din[t] = din[t] + dxs[t]
            dseq = din
        for t in range(ns):
            grads["encoder.embedding.weight"][src[t]] += dseq[t][0]
    return float(total), count, grads


def seq2seq_finite_difference_check(case):
    _, _, grads = seq2seq_forward_backward(case)
    # The loss sums ~8 tokens and the deep encoder's gradients are small: at eps 1e-6 rounding dominates (measured
    # up to 1.7e-6); at 1e-5 the check reads ~1e-7, and the O(eps^2) truncation is far below that.
    eps, worst = 1e-5, 0.0
    for name, arr in case["params"].items():
        num = np.zeros_like(arr)
        it = np.nditer(arr, flags=["multi_index"])
        for _ in it:
            idx = it.multi_index
            old = arr[idx]
            arr[idx] = old + eps
            lp = seq2seq_forward_backward(case, want_grads=False)[0]
            arr[idx] = old - eps
            lm = seq2seq_forward_backward(case, want_grads=False)[0]
            arr[idx] = old
            num[idx] = (lp - lm) / (2 * eps)
        worst = max(worst, np.abs(num - grads[name]).max() / max(np.abs(grads[name]).max(), 1e-12))
    if worst > 1e-6:
        sys.exit(f"reference encoder-decoder backward disagrees with finite differences for {case['cell']}: {worst:.3g}")
    return worst


def masked_loss_case(seed, N=7, V=5):
    rng = np.random.default_rng(seed)
    logits = rng.uniform(-2, 2, (N, V))
    targets = rng.integers(0, V, N)
    mask = np.array([1, 0, 1, 1, 0, 1, 1][:N], dtype=float)
    m = logits.max(-1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(logits - m).sum(-1))
    loss = float((mask * (lse - logits[np.arange(N), targets])).sum())
    grad = np.exp(logits - lse[:, None])
    grad[np.arange(N), targets] -= 1
    grad *= mask[:, None]
    return {"vocab": V, "rows": N, "logits": [float(v) for v in logits.reshape(-1)],
            "targets": [int(v) for v in targets], "mask": [float(v) for v in mask], "loss": loss,
            "count": int(mask.sum()), "grad": [float(v) for v in grad.reshape(-1)]}


def language_model_record(case, layers, embed):
    """A language-model case, checked against finite differences, with its loss, gradients and final state."""
    fd = finite_difference_check(case)
    loss, grads, dh0, dc0, hT, cT = backward(case, case["params"], case["h0"], case["c0"])
    flat = lambda a: [float(v) for v in np.asarray(a).reshape(-1)]
    return {
        "cell": case["cell"], "layers": layers, "embed": embed, "vocab": case["V"], "hidden": case["H"],
        "steps": case["T"], "batch": case["B"],
        "inputs": [int(v) for v in case["inputs"].reshape(-1)],
        "targets": [int(v) for v in case["targets"].reshape(-1)],
        "params": {k: flat(v) for k, v in case["params"].items()},
        "h0": flat(case["h0"]), "c0": flat(case["c0"]) if case["c0"] is not None else [],
        "loss": loss,
        "grads": {k: flat(v) for k, v in grads.items()},
        "dh0": flat(dh0), "dc0": flat(dc0) if dc0 is not None else [],
        "hT": flat(hT), "cT": flat(cT) if cT is not None else [],
        "fd_check_max_rel": fd,
    }


def seq2seq_record(case, cell, bidirectional, packed):
    """An encoder-decoder case, checked against finite differences, with its loss and gradients."""
    flat = lambda a: [float(v) for v in np.asarray(a).reshape(-1)]
    ints = lambda a: [int(v) for v in np.asarray(a).reshape(-1)]
    fd = seq2seq_finite_difference_check(case)
    loss, count, grads = seq2seq_forward_backward(case)
    return {
        "cell": cell, "bidirectional": bidirectional, "packed": packed, "sourceVocab": case["Vs"],
        "targetVocab": case["Vt"], "embed": case["E"], "hidden": case["H"], "layers": case["L"],
        "sourceSteps": case["S"], "targetSteps": case["T"], "batch": case["B"],
        "source": ints(case["source"]), "sourceLengths": case["source_lengths"],
        "decoderInput": ints(case["decoder_input"]), "target": ints(case["target"]),
        "targetLengths": case["target_lengths"],
        "params": {k: flat(v) for k, v in case["params"].items()},
        "loss": loss, "count": count, "grads": {k: flat(v) for k, v in grads.items()},
        "fd_check_max_rel": fd,
    }


def main():
    cases = []
    seed = 1
    for cell in ("rnn", "rnn-relu", "gru", "lstm"):
        for layers, embed in ((1, 0), (2, 3)):
            cases.append(language_model_record(make_case(cell, layers, embed, seed), layers, embed))
            seed += 1
    # Shapes the small cases above never reach (seeds apart, so the cases above stay as they were): hidden sizes
    # past the kernels' 8-float vectors and a bias-gradient sum over more than 64 columns, fewer than 4 steps (the
    # recurrent products' plain-BLAS path), a single step, and 3 layers without dropout.
    wide_seed = 300
    for cell, layers, embed, H, T, B in (("gru", 2, 5, 37, 3, 2), ("lstm", 2, 5, 37, 6, 2), ("lstm", 1, 0, 19, 1, 3),
                                         ("rnn", 3, 4, 9, 2, 3), ("rnn-relu", 2, 3, 16, 5, 2)):
        cases.append(language_model_record(make_case(cell, layers, embed, wide_seed, V=11, H=H, T=T, B=B), layers, embed))
        wide_seed += 1
    flat = lambda a: [float(v) for v in np.asarray(a).reshape(-1)] if a is not None else []
    stack_cases = []
    for cell, layers, bidirectional, lengths, onehot, *extra in (
            ("gru", 2, True, None, False), ("lstm", 2, True, None, False),
            ("gru", 2, True, [4, 2, 0, 3], False), ("lstm", 2, True, [1, 4, 3, 0], False),
            ("rnn-relu", 1, False, [3, 0, 4, 2], False), ("rnn", 2, False, None, False),
            ("lstm", 1, True, [3, 4, 1, 2], True),
            # Seeds 400 on (the cases above keep theirs): bidirectional rnn-relu, 3 layers, wider, fewer steps.
            ("rnn-relu", 2, True, [3, 1, 0, 2], False, 400, 3, 3), ("lstm", 3, False, None, False, 401, 12, 2),
            ("gru", 1, True, [2, 3, 1, 3], False, 402, 24, 3)):
        if extra:
            case_seed, H, T = extra
            case = make_stack_case(cell, layers, bidirectional, lengths, case_seed, onehot=onehot, H=H, T=T)
        else:
            case = make_stack_case(cell, layers, bidirectional, lengths, seed, onehot=onehot)
            seed += 1
        fd = stack_finite_difference_check(case)
        J, out, hT, cT, grads, dx, dh0, dc0 = stack_forward_backward(case)
        stack_cases.append({
            "cell": cell, "layers": layers, "bidirectional": bidirectional, "input": case["I"], "hidden": case["H"],
            "steps": case["T"], "batch": case["B"], "lengths": lengths,
            "tokens": [int(v) for v in case["tokens"].reshape(-1)] if onehot else None,
            "x": flat(case["x"]), "params": {k: flat(v) for k, v in case["params"].items()},
            "h0": flat(case["h0"]), "c0": flat(case["c0"]),
            "wOut": flat(case["wOut"]), "wH": flat(case["wH"]), "wC": flat(case["wC"]),
            "objective": J, "output": flat(out), "hT": flat(hT), "cT": flat(cT),
            "grads": {k: flat(v) for k, v in grads.items()}, "dx": flat(dx), "dh0": flat(dh0), "dc0": flat(dc0),
            "fd_check_max_rel": fd,
        })
    loss_cases = [masked_loss_case(seed)]
    seq2seq_cases = []
    s2s_seed = 100  # apart from the seeds above, so adding cases here leaves the earlier ones unchanged
    for cell in ("gru", "lstm"):
        for bidirectional in (False, True):
            for packed in (False, True):
                seq2seq_cases.append(seq2seq_record(make_seq2seq_case(cell, bidirectional, packed, s2s_seed),
                                                    cell, bidirectional, packed))
                s2s_seed += 1
    # One layer (the context slot beside layer 0's state), targets of at most 3 steps (the plain-BLAS recurrent
    # path) and a wider hidden size, on seeds past those above.
    for cell, bidirectional, L, H, T, target_lengths in (("gru", True, 1, 8, 3, (3, 1, 2)),
                                                          ("lstm", False, 1, 18, 2, (2, 2, 1))):
        case = make_seq2seq_case(cell, bidirectional, True, s2s_seed, L=L, H=H, T=T, target_lengths=target_lengths)
        seq2seq_cases.append(seq2seq_record(case, cell, bidirectional, True))
        s2s_seed += 1
    json.dump({"generator": "tools/reference_grads.py", "numpy": np.__version__, "cases": cases,
               "stack_cases": stack_cases, "loss_cases": loss_cases, "seq2seq_cases": seq2seq_cases}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
