#!/usr/bin/env python3
"""Corpus BLEU values computed by sacreBLEU, for rnnlm's BLEU test (Tests/RNNTextTests/Fixtures/bleu.json).

Regenerate (sacreBLEU in a virtual environment; the fixture records the version used):
    python3 -m venv /tmp/bleu-venv && /tmp/bleu-venv/bin/pip install sacrebleu
    /tmp/bleu-venv/bin/python tools/bleu_fixture.py > Tests/RNNTextTests/Fixtures/bleu.json

The cases are token strings (space-joined, as rnnlm's translations): hand-made edge cases (no match, a
missing order, short hypotheses, brevity penalty both ways, repeated n-grams) and random corpora drawn from a
small vocabulary so that matches of every order occur.
"""
import json, random
import sacrebleu

def case(name, hyps, refs):
    score = sacrebleu.corpus_bleu(hyps, [refs], tokenize="none").score
    return {"name": name, "hypotheses": hyps, "references": refs, "bleu": score}

cases = [
    case("identical", ["je suis chez moi .", "va !"], ["je suis chez moi .", "va !"]),
    case("no match", ["a b c"], ["d e f"]),
    case("no 4-gram match (exp smoothing)", ["il est calme .", "je suis"], ["il est très calme .", "je suis là"]),
    case("short hypotheses", ["va", "j'ai"], ["va !", "j'ai perdu ."]),
    case("hypothesis longer than reference", ["le chat est sur le tapis rouge ce soir ."], ["le chat est sur le tapis ."]),
    case("repeated n-grams are clipped", ["le le le le le le"], ["le chat est sur le tapis"]),
    case("empty hypothesis among others", ["", "nous sommes ici ."], ["bonjour .", "nous sommes là ."]),
]
rng = random.Random(7)
words = "je tu il nous vous ils suis es est sommes chez moi toi ici là . ! ? va perdu calme".split()
for k in range(8):
    refs, hyps = [], []
    for _ in range(rng.randint(5, 40)):
        ref = [rng.choice(words) for _ in range(rng.randint(1, 12))]
        hyp = [t if rng.random() < 0.6 else rng.choice(words) for t in ref]
        hyp = hyp[: rng.randint(1, len(hyp) + 2)] + [rng.choice(words) for _ in range(rng.randint(0, 2))]
        refs.append(" ".join(ref)); hyps.append(" ".join(hyp))
    cases.append(case(f"random corpus {k}", hyps, refs))
print(json.dumps({"sacrebleu": sacrebleu.__version__, "command": "tools/bleu_fixture.py", "cases": cases}, indent=1,
                 ensure_ascii=False))
