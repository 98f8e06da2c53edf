#!/usr/bin/env python3
"""The fault matrix: real runs (a coordinator and workers over TCP, or `rnnlm train`), one fault each, each under a
watchdog; one table row per fault. Driven by cluster/tests/chaos.sh (see it for the options)."""
import argparse, os, random, re, shutil, signal, subprocess, sys, tempfile, threading, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
LAB = os.environ.get("LAB_DIR", os.path.join(os.path.dirname(ROOT), "shared", "lab"))
RNNLM = os.environ.get("RNNLM", os.path.join(ROOT, ".build", "release", "rnnlm"))
STEP = re.compile(r"step (\d+)/")
VAL = re.compile(r"done: .*?(?:val (?:perplexity )?|, val )([0-9.]+)")
STEP_AT = re.compile(r"step (\d+)")
RESUMED = re.compile(r"resuming .*step (\d+)")


class Proc:
    """A process whose output lines are kept with the time each arrived."""

    def __init__(self, args, name, log_dir, prefix=()):
        self.name, self.lines, self.start = name, [], time.time()
        self.log = open(os.path.join(log_dir, name + ".log"), "a")
        self.p = subprocess.Popen(list(prefix) + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.append((time.time(), line.rstrip("\n")))
            self.log.write(line)
            self.log.flush()

    def first(self, pattern, after=0.0):
        rx = re.compile(pattern)
        return next(((t, l) for t, l in list(self.lines) if t >= after and rx.search(l)), None)

    def last_step(self):
        steps = [int(m.group(1)) for _, l in list(self.lines) for m in [STEP.search(l)] if m]
        return steps[-1] if steps else 0

    def signal(self, sig):
        try:
            os.kill(self.p.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self):
        """Ends this process (and a frozen one), by its own pid."""
        if self.p.poll() is None:
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGTERM)
            try:
                self.p.wait(3)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.p.wait()


class Row:
    def __init__(self, fault):
        self.fault, self.struck, self.detect, self.recover, self.lost = fault, "-", "-", "-", "-"
        self.outcome, self.ppl, self.ok, self.expected_fail = "?", None, False, None


class Chaos:
    def __init__(self, args):
        self.args = args
        self.work = tempfile.mkdtemp(prefix="rnnlm-chaos-")
        self.port = 20000 + (os.getpid() % 5000) * 2
        self.procs, self.rows, self.baseline = [], [], {}
        self.rng = random.Random(args.seed)
        self.lab = None

    # -- running things -------------------------------------------------------------------------------------------
    def flags(self, task):
        if task == "translation":
            return ["--task", "translation", "--dataset", "fra-eng", "--embed", "16", "--hidden", "16", "--num-examples",
                    "300", "--valid-examples", "60", "--batch-size", "8", "--num-steps", "10", "--epochs", "3",
                    "--optimizer", "adam", "--lr", "0.005", "--seed", "3"]
        return ["--dataset", "timemachine", "--max-tokens", str(self.args.tokens), "--valid-fraction", "0.1",
                "--hidden", "256", "--batch-size", "24", "--num-steps", "32", "--epochs", "3", "--seed", "3"]

    def spawn(self, args, name, prefix=()):
        p = Proc(args, name, self.work, prefix)
        self.procs.append(p)
        return p

    def next_port(self):
        self.port += 1
        return self.port

    def coordinator(self, name, port, ck, task="lm", extra=(), workers=2, bind_host="127.0.0.1", prefix=()):
        args = [RNNLM, "coordinator", "--bind", f"tcp://{bind_host}:{port}", "--expect-workers", str(workers),
                "--join-timeout", "30", "--step-timeout", "60", "--heartbeat-timeout", "2", "--log-every", "5",
                "--checkpoint-dir", ck, "--checkpoint-every", "10"] + self.flags(task)
        extra = list(extra)
        while extra:  # a flag given again replaces the default's value
            flag = extra.pop(0)
            value = extra.pop(0) if extra and not extra[0].startswith("--") else None
            if flag in args and value is not None:
                args[args.index(flag) + 1] = value
            else:
                args += [flag] + ([value] if value is not None else [])
        return self.spawn(args, name, prefix)

    def worker(self, name, port, host="127.0.0.1", extra=(), prefix=()):
        return self.spawn([RNNLM, "worker", "--connect", f"tcp://{host}:{port}", "--name", name, "--rejoin-grace", "20",
                           "--quiet"] + list(extra), name, prefix)

    def wait_step(self, proc, step, deadline):
        while time.time() < deadline and proc.p.poll() is None and proc.last_step() < step:
            time.sleep(0.05)
        return proc.last_step()

    def wait(self, proc, deadline):
        while time.time() < deadline and proc.p.poll() is None:
            time.sleep(0.1)
        return proc.p.poll()

    def cleanup(self):
        for p in self.procs:
            p.stop()
        self.procs = []

    def finish(self, row, coord, deadline, task):
        """The watchdog: the run must end by `deadline`; then every process of the row is stopped."""
        rc = self.wait(coord, deadline)
        if rc is None:
            row.outcome = f"HUNG (watchdog {self.args.watchdog}s)"
            self.cleanup()
            return None
        done = coord.first(r"^done: ")
        if done:
            m = VAL.search(done[1])
            if m and task in self.baseline:  # task: (family, mode) of the undisturbed run it compares with
                row.ppl = float(m.group(1)) / self.baseline[task]
        self.cleanup()
        return rc

    # -- the faults ---------------------------------------------------------------------------------------------------
    def points(self, n, total):
        return sorted(self.rng.randint(total // 6, total * 2 // 3) for _ in range(n))

    def undisturbed(self, task, mode):
        row = Row(f"none (baseline, {task}, {mode})")
        port, ck = self.next_port(), os.path.join(self.work, f"base-{task}-{mode}")
        extra = ["--mode", "async"] if mode == "async" else []
        start = time.time()
        c = self.coordinator(f"base-{task}-{mode}", port, ck, task, extra)
        for i in range(2):
            self.worker(f"base-{task}-{mode}-w{i}", port)
        rc = self.finish(row, c, start + self.args.watchdog, None)
        done = c.first(r"^done: ")
        if rc == 0 and done and VAL.search(done[1]):
            val = float(VAL.search(done[1]).group(1))
            self.baseline[(task, mode)] = val
            row.outcome, row.ok, row.ppl = f"finished in {time.time() - start:.0f}s, {c.last_step()} steps", True, 1.0
        else:
            row.outcome = f"FAILED: exit {rc}"
        self.steps[(task, mode)] = max(c.last_step(), 20)
        return row

    def worker_fault(self, kind, at, task="lm", mode="sync", hold=0.0):
        label = {"kill": "SIGKILL worker", "stop": f"SIGSTOP worker {hold:.0f}s"}[kind]
        row = Row(f"{label} ({task}, {mode})")
        port = self.next_port()
        ck = os.path.join(self.work, f"w{port}")
        extra = ["--mode", "async"] if mode == "async" else []
        if kind == "stop":  # the run must outlast the freeze for the thawed worker to rejoin it
            extra += ["--epochs", str(max(3, int(3 * (hold + 10) / 4)))]
        start = time.time()
        c = self.coordinator(f"c{port}", port, ck, task, extra, workers=3)
        ws = [self.worker(f"w{port}-{i}", port) for i in range(3)]
        step = self.wait_step(c, at, start + self.args.watchdog)
        hit = time.time()
        row.struck = f"step {step}, {hit - start:.1f}s"
        victim = ws[1]
        victim.signal(signal.SIGKILL if kind == "kill" else signal.SIGSTOP)
        if kind == "stop":
            thaw = hit + hold
            while time.time() < thaw and c.p.poll() is None:
                time.sleep(0.1)
            ended_frozen = c.p.poll() is not None  # the run finished before the worker thawed: nothing to rejoin
            victim.signal(signal.SIGCONT)
        # A freeze row trains longer than the undisturbed run (to outlast the freeze): no like-for-like perplexity.
        rc = self.finish(row, c, start + self.args.watchdog, (task, mode) if kind == "kill" else None)
        lost = c.first(r"lost", after=hit)
        rejoined = c.first(r"joined the running job", after=hit)
        if lost:
            row.detect = f"{lost[0] - hit:.1f}s"
        if rejoined:
            row.recover = f"{rejoined[0] - hit:.1f}s (rejoined)"
        if rc == 0:
            row.lost = "0"
            row.ok = True
            what = "finished"
            if kind == "stop":
                what += "; worker rejoined" if rejoined else "; worker dropped (did not rejoin)" if c.p.poll() is not None and lost else ""
                if lost and not rejoined and not ended_frozen and hold < self.args.watchdog:
                    row.ok = False  # a thawed worker must come back as a new member
            row.outcome = what
        elif rc is not None:
            row.outcome = f"FAILED: exit {rc}"
        return row

    def coordinator_kill(self, at, also_worker=False, task="lm"):
        row = Row(("SIGKILL coordinator + worker" if also_worker else "SIGKILL coordinator") + f", --resume ({task})")
        port = self.next_port()
        ck = os.path.join(self.work, f"c{port}")
        start = time.time()
        c = self.coordinator(f"c{port}", port, ck, task)
        ws = [self.worker(f"w{port}-{i}", port) for i in range(2)]
        self.wait_step(c, at, start + self.args.watchdog)
        step = c.last_step()
        hit = time.time()
        row.struck = f"step {step}, {hit - start:.1f}s"
        c.signal(signal.SIGKILL)
        if also_worker:
            ws[0].signal(signal.SIGKILL)
        c.p.wait()
        extra = ["--resume"] + (["--min-workers", "1", "--join-timeout", "5"] if also_worker else [])
        c2 = self.coordinator(f"c{port}-resumed", port, ck, task, extra)
        rc = self.finish(row, c2, start + self.args.watchdog, (task, "sync"))
        resumed = c2.first(r"^resuming ")
        first = c2.first(r"step \d+/", after=resumed[0] if resumed else 0)
        if first:
            row.recover = f"{first[0] - hit:.1f}s"
        row.detect = "n/a (restarted by hand)"
        if resumed:
            row.lost = str(max(0, step - int(RESUMED.search(resumed[1]).group(1))))
        if rc == 0:
            row.ok, row.outcome = True, "finished after --resume"
        elif rc is not None:
            why = next((l for _, l in c2.lines if "joined within" in l or "error" in l.lower()), "")
            row.outcome = f"FAILED: exit {rc} {why[:80]}"
        return row

    def full_disk(self):
        row = Row("full disk (tmpfs --checkpoint-dir)")
        disk = os.path.join(self.work, "disk")
        os.makedirs(disk)
        if subprocess.call(["mount", "-t", "tmpfs", "-o", "size=2500k", "tmpfs", disk], stderr=subprocess.DEVNULL) != 0:
            row.outcome = "SKIPPED: cannot mount a tmpfs (needs root)"
            return row
        try:
            port = self.next_port()
            start = time.time()
            c = self.coordinator(f"c{port}", port, disk + "/ck", "lm")  # ~0.9 MB checkpoints: the third does not fit
            for i in range(2):
                self.worker(f"w{port}-{i}", port)
            rc = self.finish(row, c, start + self.args.watchdog, None)
            warn = c.first(r"not saved at step")
            row.struck = f"step {STEP_AT.search(warn[1]).group(1)}, {warn[0] - start:.1f}s" if warn else "-"
            row.detect = "0s (write fails)" if warn else "-"
            files = sorted(f for f in os.listdir(disk + "/ck") if f.startswith("step-") and f.endswith(".safetensors"))
            intact = bool(files) and subprocess.call([RNNLM, "generate", "--checkpoint", disk + "/ck/" + files[-1],
                                                      "--prefix", "the", "--tokens", "5"],
                                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0
            temps = [f for f in os.listdir(disk + "/ck") if ".tmp" in f]
            stopped = c.first(r"checkpoint saves failed in a row")
            if rc != 0 and rc is not None and stopped and intact and not temps:
                row.ok = True
                row.outcome = f"stopped cleanly, exit {rc}; newest {files[-1]} valid, no partial file"
            elif rc == 0 and intact and not temps:
                row.ok, row.outcome = True, "finished (space sufficed)"
            else:
                row.outcome = f"FAILED: exit {rc}, newest valid: {intact}, temp files {temps}"
        finally:
            self.cleanup()
            subprocess.call(["umount", disk])
        return row

    def truncated_newest(self):
        row = Row("truncated newest checkpoint, --resume")
        port = self.next_port()
        ck = os.path.join(self.work, f"t{port}")
        start = time.time()
        c = self.coordinator(f"c{port}", port, ck, "lm")
        for i in range(2):
            self.worker(f"w{port}-{i}", port)
        self.wait_step(c, self.steps[("lm", "sync")] // 2, start + self.args.watchdog)
        c.signal(signal.SIGKILL)
        c.p.wait()
        files = sorted(f for f in os.listdir(ck) if f.startswith("step-") and f.endswith(".safetensors"))
        newest = os.path.join(ck, files[-1])
        size = os.path.getsize(newest)
        with open(newest, "r+b") as f:
            f.truncate(size // 2)
        hit = time.time()
        row.struck = f"{files[-1]} cut to {size // 2} bytes"
        c2 = self.coordinator(f"c{port}-resumed", port, ck, "lm", ["--resume"])
        rc = self.finish(row, c2, start + self.args.watchdog, ("lm", "sync"))
        aside = c2.first(r"set aside as")
        resumed = c2.first(r"^resuming ")
        row.detect = f"{aside[0] - hit:.1f}s" if aside else "-"
        if resumed:
            row.recover = f"{resumed[0] - hit:.1f}s"
            row.lost = str(int(files[-1][5:13]) - int(RESUMED.search(resumed[1]).group(1)))
        if rc == 0 and aside and os.path.exists(newest + ".bad"):
            row.ok, row.outcome = True, f"set aside as {files[-1]}.bad, resumed from the one before, finished"
        else:
            row.outcome = f"FAILED: exit {rc}, set aside: {bool(aside)}"
        return row

    def wrong_key(self):
        row = Row("wrong CURVE key")
        keys = os.path.join(self.work, "keys")
        os.makedirs(keys + "/authorized")
        for n in ["coordinator", "good", "stranger"]:
            subprocess.check_call([RNNLM, "keygen", "--name", n, "--out", keys], stdout=subprocess.DEVNULL)
        shutil.copy(keys + "/good.public", keys + "/authorized/")
        port = self.next_port()
        ck = os.path.join(self.work, f"k{port}")
        start = time.time()
        c = self.coordinator(f"c{port}", port, ck, "lm", ["--curve-secret", keys + "/coordinator.secret",
                                                         "--authorized-keys", keys + "/authorized"], workers=1)
        server = ["--curve-server-key", keys + "/coordinator.public"]
        self.worker(f"w{port}-good", port, extra=server + ["--curve-key", keys + "/good.secret"])
        self.wait_step(c, 5, start + self.args.watchdog)
        hit = time.time()
        row.struck = f"step {c.last_step()}, {hit - start:.1f}s"
        bad = self.worker(f"w{port}-stranger", port, extra=server + ["--curve-key", keys + "/stranger.secret",
                                                                     "--join-timeout", "10"])
        bad_rc = self.wait(bad, hit + 30)
        row.detect = f"{time.time() - hit:.1f}s (worker exit {bad_rc})"
        rc = self.finish(row, c, start + self.args.watchdog, ("lm", "sync"))
        refused = any("not auth" in l.lower() or "refus" in l.lower() for _, l in bad.lines + c.lines)
        if rc == 0 and bad_rc not in (0, None):
            row.ok, row.lost = True, "0"
            row.outcome = "stranger refused" + (" (reason logged)" if refused else "") + "; run finished"
        else:
            row.outcome = f"FAILED: run exit {rc}, stranger exit {bad_rc}"
        return row

    def other_run(self):
        row = Row("worker of another run")
        port = self.next_port()
        start = time.time()
        a = self.coordinator(f"c{port}-a", port, os.path.join(self.work, f"a{port}"), "lm", workers=1)
        w = self.worker(f"w{port}", port)
        self.wait_step(a, 10, start + self.args.watchdog)
        a.signal(signal.SIGKILL)
        a.p.wait()
        hit = time.time()
        row.struck = f"run A's coordinator killed at step {a.last_step()}; run B on its port"
        b = self.coordinator(f"c{port}-b", port, os.path.join(self.work, f"b{port}"), "lm",
                             ["--hidden", "24"], workers=1)
        rc = self.finish(row, b, start + self.args.watchdog, None)
        joined = b.first(r"joined")
        row.detect = f"{joined[0] - hit:.1f}s (joined B afresh)" if joined else "-"
        if rc == 0:
            row.ok, row.outcome, row.lost = True, "B finished; A's worker took B's model and data (state not carried over)", "0"
        else:
            row.outcome = f"FAILED: run B exit {rc}"
        return row

    def with_netns(self, what):
        row = Row({"partition": "partitioned link 10s (netns)", "rate": "rate-capped link 100 Mbit/s (netns)"}[what])
        if self.lab is None:
            env = dict(os.environ, LAB_NETNS_PREFIX="chaos", LAB_NETNS_SUBNET="10.203.0")
            w = os.path.join(self.work, "lab")
            ok = subprocess.call(["bash", os.path.join(LAB, "netns-up.sh"), w, "2"], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0
            self.lab = (w, env) if ok else False
        if not self.lab:
            row.outcome = "SKIPPED: network namespaces unavailable"
            return row
        w, env = self.lab
        ex = ["env", "LAB_NETNS_PREFIX=chaos", "LAB_NETNS_SUBNET=10.203.0", "bash", os.path.join(LAB, "netns-exec.sh"), w]
        port = self.next_port()
        ck = os.path.join(self.work, f"n{port}")
        start = time.time()
        c = self.coordinator(f"c{port}", port, ck, "lm", ["--insecure"], bind_host="10.203.0.1")
        self.worker(f"w{port}-h1", port, host="10.203.0.1", prefix=ex + ["h1"])
        self.worker(f"w{port}-h2", port, host="10.203.0.1", prefix=ex + ["h2"])
        if what == "rate":
            subprocess.call(["bash", os.path.join(LAB, "netns-shape.sh"), w, "h1", "100mbit"], env=env, stdout=subprocess.DEVNULL)
        self.wait_step(c, self.steps[("lm", "sync")] // 3, start + self.args.watchdog)
        hit = time.time()
        row.struck = f"step {c.last_step()}, {hit - start:.1f}s" if what == "partition" else "from the start"
        if what == "partition":
            subprocess.call(["ip", "-n", "chaos-h1", "link", "set", "eth0", "down"])
            while time.time() < hit + 10 and c.p.poll() is None:
                time.sleep(0.1)
            subprocess.call(["ip", "-n", "chaos-h1", "link", "set", "eth0", "up"])
        rc = self.finish(row, c, start + self.args.watchdog, ("lm", "sync"))
        if what == "rate":
            subprocess.call(["bash", os.path.join(LAB, "netns-shape.sh"), w, "h1", "off"], env=env, stdout=subprocess.DEVNULL)
        lost = c.first(r"lost", after=hit)
        rejoined = c.first(r"joined the running job", after=hit)
        row.detect = f"{lost[0] - hit:.1f}s" if lost else "-"
        row.recover = f"{rejoined[0] - hit:.1f}s (rejoined)" if rejoined else "-"
        if rc == 0:
            row.ok, row.lost = True, "0"
            row.outcome = "finished" + ("" if what == "rate" else "; worker rejoined" if rejoined else "; worker dropped")
        elif rc is not None:
            row.outcome = f"FAILED: exit {rc}"
        return row

    def delayed(self):
        row = Row("50 ms delayed link (delayproxy.py)")
        port, proxy_port = self.next_port(), self.next_port()
        ck = os.path.join(self.work, f"d{port}")
        start = time.time()
        c = self.coordinator(f"c{port}", port, ck, "lm", ["--max-tokens", str(self.args.tokens // 4)])
        self.spawn([sys.executable, os.path.join(LAB, "delayproxy.py"), "--listen", f"127.0.0.1:{proxy_port}",
                    "--target", f"127.0.0.1:{port}", "--delay-ms", "50"], f"proxy{port}")
        time.sleep(0.5)
        self.worker(f"w{port}-near", port)
        self.worker(f"w{port}-far", proxy_port)
        row.struck = "from the start"
        rc = self.finish(row, c, start + self.args.watchdog, None)
        if rc == 0:
            row.ok, row.lost = True, "0"
            row.outcome = f"finished in {time.time() - start:.0f}s ({c.last_step()} steps)"
        elif rc is not None:
            row.outcome = f"FAILED: exit {rc}"
        return row

    # -- the matrix ---------------------------------------------------------------------------------------------------
    def run(self):
        full = self.args.full
        self.steps = {}
        plan = [lambda: self.undisturbed("lm", "sync")]
        if self.args.only:  # one fault's method by name, for debugging a row
            plan = [getattr(self, self.args.only)]
        seeds = 5 if full else 1
        T = lambda task="lm", mode="sync": self.steps.get((task, mode), 60)
        # Seeded points, as fractions of the undisturbed run's steps (known once it ran).
        at = lambda: self.points(1, T())[0]
        plan += [lambda: self.worker_fault("kill", at()) for _ in range(seeds)]
        plan += [lambda: self.worker_fault("stop", at(), hold=10) for _ in range(seeds)]
        if full:
            plan += [lambda: self.worker_fault("stop", at(), hold=60) for _ in range(seeds)]
        plan += [lambda: self.coordinator_kill(at()) for _ in range(3 if full else 1)]
        plan += [lambda: self.coordinator_kill(at(), also_worker=True)]
        plan += [lambda: self.undisturbed("lm", "async"), lambda: self.worker_fault("kill", T() // 3, mode="async")]
        plan += [lambda: self.undisturbed("translation", "sync"),
                 lambda: self.worker_fault("kill", T("translation") // 3, task="translation")]
        if full:
            plan += [lambda: self.coordinator_kill(T("translation") // 2, task="translation"),
                     lambda: self.worker_fault("kill", T("translation") // 3, task="translation", mode="async")]
        plan += [self.full_disk, self.truncated_newest, self.wrong_key, self.other_run, self.delayed,
                 lambda: self.with_netns("partition"), lambda: self.with_netns("rate")]
        if self.args.only:
            plan = plan[:1]
        if not full:
            skipped = Row("SIGSTOP worker 60s (x5), coordinator kill x3, translation resume/async")
            skipped.outcome = "SKIPPED in the reduced form: run with --full"
        started = time.time()
        try:
            for make in plan:
                t0 = time.time()
                try:
                    row = make()
                except Exception as e:  # a broken row is a failed row, never the end of the matrix
                    row = Row("(row raised)")
                    row.outcome = f"FAILED: {type(e).__name__}: {e}"
                    self.cleanup()
                row.seconds = time.time() - t0
                self.rows.append(row)
                self.print_row(row)
        finally:
            self.cleanup()
            if self.lab:
                subprocess.call(["bash", os.path.join(LAB, "netns-down.sh"), self.lab[0]], env=self.lab[1],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not full:
            self.rows.append(skipped)
        self.table(time.time() - started)
        bad = [r for r in self.rows if not r.ok and not r.expected_fail and not r.outcome.startswith("SKIPPED")]
        return 1 if bad else 0

    def print_row(self, r):
        print(f"chaos: {r.fault}: {r.outcome} ({r.seconds:.0f}s)", flush=True)

    def table(self, seconds):
        print()
        print(f"| fault | struck | detected | recovered | steps lost | outcome | val ppl vs undisturbed |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for r in self.rows:
            outcome = r.outcome if r.ok or r.outcome.startswith("SKIPPED") else (
                f"EXPECTED-FAIL ({r.expected_fail}): {r.outcome}" if r.expected_fail else f"**FAIL** {r.outcome}")
            ppl = "-" if r.ppl is None else f"{r.ppl:.3f}×"
            print(f"| {r.fault} | {r.struck} | {r.detect} | {r.recover} | {r.lost} | {outcome} | {ppl} |")
        print(f"\nchaos: {'full' if self.args.full else 'reduced'} matrix, {len(self.rows)} rows in {seconds:.0f}s; logs in {self.work}")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--full", action="store_true", help="every seed and every fault (slow)")
    ap.add_argument("--seed", type=int, default=14, help="seed of the points at which faults strike")
    ap.add_argument("--watchdog", type=float, default=150, help="seconds after which a row's run counts as hung")
    ap.add_argument("--tokens", type=int, default=100000, help="--max-tokens of the language-model runs")
    ap.add_argument("--only", help="run just this fault method (full_disk, truncated_newest, wrong_key, ...)")
    args = ap.parse_args()
    if not os.access(RNNLM, os.X_OK):
        sys.exit(f"chaos: {RNNLM} not found; run: swift build -c release")
    sys.exit(Chaos(args).run())


if __name__ == "__main__":
    main()
