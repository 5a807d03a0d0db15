"""Fault injection on scan stores: kill -9 at random moments and damage chunk files at random,
then count the wrong numbers a reader is served (the figure of merit: 0).

A reader opens the store with `jaxfeat.open_scan` after every fault. A number is *wrong* when a
seed marked finished holds a value different from an uninterrupted in-memory scan; an unfinished
or damaged seed must read as missing (NaN, `finished` False). After the faults, a rerun of the
scan must complete the store bit for bit equal to the reference.

    python benchmarks/fault_injection.py [--kills 12] [--corruptions 40]
    # writes results/fault-injection.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.join(os.path.dirname(HERE), "tests")
sys.path.insert(0, TESTS)
VARS = ("v", "trace", "u", "count")


def _env():
    return dict(os.environ, PYTHONPATH=TESTS, JAX_PLATFORMS="cpu", JAX_ENABLE_X64="1")


def wrong_numbers(ds, ref) -> int:
    """Values at finished seeds that differ from the reference, plus unfinished values that are
    not missing."""
    fin = np.asarray(ds["finished"].values)
    bad = 0
    for k in VARS:
        got, want = np.asarray(ds[k].values, float), np.asarray(ref[k].values, float)
        f = fin.reshape(fin.shape + (1,) * (got.ndim - fin.ndim))
        f = np.broadcast_to(f, got.shape)
        bad += int(np.sum(f & ~((got == want) | (np.isnan(got) & np.isnan(want)))))
        bad += int(np.sum(~f & ~np.isnan(got)))
    return bad


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=12)
    ap.add_argument("--corruptions", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import jax

    jax.config.update("jax_enable_x64", True)
    from scan_helpers.toy import GRID, toy

    from jaxfeat import scan
    from jaxfeat._scan import store as _store

    rng = random.Random(args.seed)
    ref = scan(toy, GRID, 40, chunk_size=1, progress=False)
    work = tempfile.mkdtemp(prefix="jaxfeat-faults-")
    out = os.path.join(work, "f.zarr")
    argv = [sys.executable, "-m", "scan_helpers.worker", out, "1"]
    served_wrong, opened, kill_log = 0, 0, []
    done_dir = os.path.join(out, "_done")
    for trial in range(args.kills):
        target = -1 if trial % 4 == 0 else rng.randrange(80)  # -1: during store creation
        if os.path.exists(out) and (target < 0 or _store.verify_scan(out).complete):
            shutil.rmtree(out)  # every trial kills a run in progress: fresh or resumed
        p = subprocess.Popen(argv, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        t0 = time.monotonic()
        while p.poll() is None and time.monotonic() - t0 < 120:
            if target < 0:
                hit = any(".f.zarr.creating-" in f for f in os.listdir(work))
            else:
                names = os.listdir(done_dir) if os.path.isdir(done_dir) else []
                hit = os.path.isdir(done_dir) and sum("." not in f for f in names) > target
            if hit:
                p.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)
        p.wait()
        killed = p.returncode == -signal.SIGKILL
        state = "no store yet"
        if os.path.exists(os.path.join(out, "zarr.json")):
            ds = _store.open_scan(out, warn=lambda m: None)
            opened += 1
            served_wrong += wrong_numbers(ds, ref)
            state = f"{ds.attrs['seeds_finished']} of 240 runs finished"
        where = "during creation" if target < 0 else f"once {target + 1} chunks are finished"
        kill_log.append({"kill": where, "killed": killed, "store": state})
    r = subprocess.run(argv, env=_env(), capture_output=True)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    after_kills = _store.open_scan(out)
    kills_ok = wrong_numbers(after_kills, ref) == 0 and bool(after_kills["finished"].all())

    kinds = ("delete file", "truncate file", "flip a byte", "delete marker", "garbage marker")
    detected, corrupt_log = 0, []
    for _ in range(args.corruptions):
        s, c = rng.randrange(2), rng.randrange(40)
        kind = rng.choice(kinds)
        marker = os.path.join(out, "_done", f"s{s}-c{c}")
        rec = json.load(open(marker))
        files = [f for f in rec["files"].values() if f is not None]
        target = os.path.join(out, rng.choice(files)["path"])
        if kind == "delete file":
            os.remove(target)
        elif kind == "truncate file":
            with open(target, "r+b") as f:
                f.truncate(rng.randrange(os.path.getsize(target)))
        elif kind == "flip a byte":
            with open(target, "r+b") as f:
                i = rng.randrange(os.path.getsize(target))
                f.seek(i)
                b = f.read(1)
                f.seek(i)
                f.write(bytes([b[0] ^ (1 << rng.randrange(8))]))
        elif kind == "delete marker":
            os.remove(marker)
        else:
            with open(marker, "w") as f:
                f.write("{not json")
        said = []
        ds = _store.open_scan(out, warn=said.append)
        wrong = wrong_numbers(ds, ref)
        served_wrong += wrong
        opened += 1
        lost = not bool(ds["finished"].all())
        detected += lost
        corrupt_log.append({"chunk": f"s{s}-c{c}", "kind": kind, "detected": lost, "wrong": wrong})
        fixed = scan(toy, GRID, 40, out=out, chunk_size=1, progress=False)
        assert wrong_numbers(fixed, ref) == 0 and bool(fixed["finished"].all())
    shutil.rmtree(work)
    results = {
        "kills": sum(k["killed"] for k in kill_log),
        "corruptions": args.corruptions,
        "reads_after_a_fault": opened,
        "wrong_numbers_served": served_wrong,
        "corruptions_detected": detected,
        "store_complete_and_exact_after_rerun": kills_ok,
        "kill_log": kill_log,
        "corruption_log": corrupt_log,
    }
    with open(os.path.join(HERE, "results", "fault-injection.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(
        f"{results['kills']} kills, {args.corruptions} corruptions, {opened} reads: "
        f"{served_wrong} wrong numbers served; {detected}/{args.corruptions} corruptions "
        f"detected and recomputed; complete and exact after the rerun: {kills_ok}"
    )


if __name__ == "__main__":
    main()
