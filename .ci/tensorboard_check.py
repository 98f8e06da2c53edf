"""Reads a run folder's TensorBoard event files with TensorBoard's own reader and checks them against metrics.jsonl:
every numeric measurement of every record is a scalar `train/<field>` (a logging interval) or `epoch/<field>` (an
epoch) at the record's step and wall_time, with no scalar that metrics.jsonl lacks; the file version is
brain.Event:2; the text summary `run/settings` holds run.toml's settings.

Usage: python tensorboard_check.py RUN_DIR[=TAG,...] ...   (the tags after = must be among the scalars)
"""
import json
import math
import os
import sys

from tensorboard.backend.event_processing import event_accumulator, event_file_loader

BOOKKEEPING = {"kind", "step", "epoch", "time", "wall_time"}


def expected_scalars(metrics_path):
    expected = {}  # tag -> {step: (value, wall_time)}
    with open(metrics_path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            record = json.loads(line)
            if "wall_time" not in record:
                raise SystemExit(f"{metrics_path} line {n}: no wall_time")
            group = "epoch" if record["kind"] == "epoch" else "train"
            for name, value in record.items():
                if name in BOOKKEEPING or value is None or isinstance(value, str):
                    continue
                tag = f"{group}/{name}"
                if record["step"] in expected.setdefault(tag, {}):
                    raise SystemExit(f"{metrics_path} line {n}: a second {tag} at step {record['step']}")
                expected[tag][record["step"]] = (float(value), record["wall_time"])
    return expected


def check(run_dir):
    files = [f for f in os.listdir(run_dir) if f.startswith("events.out.tfevents.")]
    if not files:
        raise SystemExit(f"{run_dir}: no events.out.tfevents.* file")
    for f in files:
        first = next(iter(event_file_loader.EventFileLoader(os.path.join(run_dir, f)).Load()))
        if first.file_version != "brain.Event:2":
            raise SystemExit(f"{run_dir}/{f}: first event is not file_version brain.Event:2: {first}")
    acc = event_accumulator.EventAccumulator(
        run_dir, size_guidance={event_accumulator.SCALARS: 0, event_accumulator.TENSORS: 0})
    acc.Reload()
    expected = expected_scalars(os.path.join(run_dir, "metrics.jsonl"))
    tags = acc.Tags()
    if sorted(tags["scalars"]) != sorted(expected):
        raise SystemExit(f"{run_dir}: scalar tags {sorted(tags['scalars'])}, metrics.jsonl has {sorted(expected)}")
    count = 0
    for tag, by_step in expected.items():
        events = acc.Scalars(tag)
        got = {e.step: (e.value, e.wall_time) for e in events}
        if len(events) != len(by_step) or sorted(got) != sorted(by_step):
            raise SystemExit(f"{run_dir} {tag}: steps {sorted(got)}, metrics.jsonl has {sorted(by_step)}")
        for step, (value, wall_time) in by_step.items():
            v, w = got[step]
            # TensorBoard scalars are float32: equal to the JSON value rounded to float32.
            if not math.isclose(v, value, rel_tol=1e-6, abs_tol=1e-30):
                raise SystemExit(f"{run_dir} {tag} step {step}: TensorBoard {v}, metrics.jsonl {value}")
            if w != wall_time:  # the same double, written exactly to both files
                raise SystemExit(f"{run_dir} {tag} step {step}: wall_time {w}, metrics.jsonl {wall_time}")
            count += 1
    settings = acc.Tensors("run/settings")
    text = settings[0].tensor_proto.string_val[0].decode("utf-8")
    with open(os.path.join(run_dir, "run.toml"), encoding="utf-8") as f:
        toml = [line for line in f.read().splitlines() if line and not line.startswith("#")]
    missing = [line for line in toml if line not in text.splitlines()]
    if missing:
        raise SystemExit(f"{run_dir}: run/settings lacks {missing}")
    print(f"tensorboard: {run_dir}: {count} scalars in {len(expected)} tags equal metrics.jsonl; "
          f"run/settings has {len(toml)} settings")
    return set(expected)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    for arg in sys.argv[1:]:
        run_dir, _, required = arg.partition("=")
        tags = check(run_dir)
        missing = [t for t in required.split(",") if t and t not in tags]
        if missing:
            raise SystemExit(f"{run_dir}: no scalar {missing}")
