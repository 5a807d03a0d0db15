"""Fault injection on scan stores: kill -9 at random moments and damage chunk files at random,
then count the wrong numbers a reader is served (the figure of merit: 0).

A reader opens the store with `jaxfeat.open_scan` after every fault. A number is *wrong* when a
seed marked finished holds a value different from an uninterrupted in-memory scan; an unfinished
or damaged seed must read as missing (NaN, `finished` False). After the faults, a rerun of the
scan must complete the store bit for bit equal to the reference.

    python benchmarks/fault_injection.py [--kills 12] [--damages 240]
    # writes results/fault-injection.json

The damages cover every kind of file a store holds (data chunks, chunks a marker records as
absent because they held only the fill value, coordinate chunks, array metadata, the root
metadata with the config, chunk markers, the label record and its copies), each damaged at
random by one of: delete, truncate, flip a bit, swap with another file of its kind, or rewrite
with valid but different content (a zarr write, an edited JSON field). After each, the reader's
outcome (refused, chunks left out, served whole), the numbers and labels it served against an
uninterrupted scan (goal: 0 wrong), `jaxfeat info --verify`'s exit status, and whether the store
is exact again after `jaxfeat repair` (labels) and a rerun (chunks).
"""

from __future__ import annotations

import argparse
import contextlib
import io
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
KINDS = (
    "data chunk",
    "absent chunk",
    "coordinate chunk",
    "array metadata",
    "root metadata",
    "marker",
    "label record",
    "label copy",
)
DAMAGES = ("delete", "truncate", "flip a bit", "swap", "rewrite valid")
SEEDS = 40


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


def wrong_labels(ds, ref) -> int:
    """Labels a reader was served that differ from the reference: the set of variables, each
    variable's dimensions, each coordinate's values, the scan's attributes."""
    bad = int(set(ds.data_vars) != set(ref.data_vars))
    for k in set(ds.data_vars) & set(ref.data_vars):
        bad += int(ds[k].dims != ref[k].dims)
    for k in ref.coords:
        bad += int(k not in ds.coords or not np.array_equal(ds[k].values, ref[k].values))
    for k in ("experiment", "description", "jaxfeat_config"):
        bad += int(ds.attrs.get(k) != ref.attrs.get(k))
    return bad


def files_of_kind(out: str, kind: str) -> list[str]:
    """Paths (relative to the store) of every file of one kind (`KINDS`)."""
    markers = sorted(f for f in os.listdir(os.path.join(out, "_done")) if f.startswith("s"))
    recs = [json.load(open(os.path.join(out, "_done", m)))["files"] for m in markers]
    if kind in ("data chunk", "absent chunk"):
        want = kind == "absent chunk"
        return [r["path"] for rec in recs for r in rec.values() if bool(r.get("absent")) == want]
    if kind == "marker":
        return [os.path.join("_done", m) for m in markers]
    if kind == "label record":
        return [os.path.join("_done", "layout.json")]
    layout = json.load(open(os.path.join(out, "_done", "layout.json")))["files"]
    if kind == "label copy":
        return [os.path.join("_done", "layout", f) for f in layout]
    if kind == "root metadata":
        return ["zarr.json"]
    if kind == "array metadata":
        return [f for f in layout if f.endswith("zarr.json") and f != "zarr.json"]
    return [f for f in layout if not f.endswith("zarr.json")]  # coordinate chunks


def _rewrite_valid(path: str, rng) -> None:
    """Valid but different content: a JSON field edited, or a zarr chunk rewritten through zarr
    with other values (for a chunk path `VAR/c/i/j/...`)."""
    import zarr

    if path.endswith(".json") or os.path.basename(path) == "zarr.json" or "/_done/s" in path:
        rec = json.load(open(path))
        if "files" in rec:  # a marker: one recorded size off by one
            f = next(v for v in rec["files"].values() if v and "size" in v)
            f["size"] += 1
        elif "attributes" in rec:
            rec["attributes"]["edited"] = rng.random()
        else:
            rec["version"] = rec.get("version", 0) + 1
        with open(path, "w") as fh:
            json.dump(rec, fh)
        return
    root, rel = path.split(".zarr/", 1)
    parts = rel.split("/")
    var = os.path.join(root + ".zarr", *parts[: parts.index("c")])
    idx = tuple(int(i) for i in parts[parts.index("c") + 1 :])
    arr = zarr.open_array(var, mode="r+")
    region = tuple(slice(i * k, (i + 1) * k) for i, k in zip(idx, arr.chunks))
    old = arr[region]
    arr[region] = (~old) if old.dtype == bool else old[::-1] + 1


def damage(out: str, kind: str, how: str, rng) -> str | None:
    """Damage one random file of `kind` in the store at `out`; None when that damage does not
    apply (nothing to swap with, an absent chunk has no bytes to truncate)."""
    files = files_of_kind(out, kind)
    if not files:
        return None
    rel = rng.choice(files)
    path = os.path.join(out, rel)
    if kind == "absent chunk":  # no file: the only damage is one that writes it
        if how != "rewrite valid":
            return None
        _rewrite_valid(path, rng)
        return rel
    if how == "delete":
        os.remove(path)
    elif how == "truncate":
        with open(path, "r+b") as f:
            f.truncate(rng.randrange(os.path.getsize(path)))
    elif how == "flip a bit":
        with open(path, "r+b") as f:
            i = rng.randrange(os.path.getsize(path))
            f.seek(i)
            b = f.read(1)
            f.seek(i)
            f.write(bytes([b[0] ^ (1 << rng.randrange(8))]))
    elif how == "swap":
        others = [f for f in files if f != rel and not _same_bytes(out, f, rel)]
        if not others:
            return None
        other = os.path.join(out, rng.choice(others))
        os.rename(path, path + ".swap")
        os.rename(other, path)
        os.rename(path + ".swap", other)
    else:
        _rewrite_valid(path, rng)
    return rel


def _same_bytes(out, a, b) -> bool:
    return open(os.path.join(out, a), "rb").read() == open(os.path.join(out, b), "rb").read()


def _verify_exit(out: str) -> int:
    from jaxfeat.cli import main as cli

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return cli(["info", out, "--verify"])


def damage_every_file_kind(out: str, ref, rng, count: int) -> list[dict]:
    """`count` random damages (kind × how) to the finished store at `out`, each followed by a
    read, `jaxfeat info --verify`, and repair + rerun back to the reference."""
    from scan_helpers.toy import GRID, toy

    from jaxfeat import scan
    from jaxfeat._checks import InputError
    from jaxfeat._scan import store as _store

    log = []
    while len(log) < count:
        kind, how = rng.choice(KINDS), rng.choice(DAMAGES)
        rel = damage(out, kind, how, rng)
        if rel is None:
            continue
        entry = {"kind": kind, "damage": how, "file": rel, "wrong_numbers": 0, "wrong_labels": 0}
        try:
            ds = _store.open_scan(out, warn=lambda m: None)
        except (InputError, OSError, ValueError) as e:
            entry["outcome"] = "refused: " + str(e).split(": ", 2)[-1][:80]
        else:
            entry["wrong_numbers"] = wrong_numbers(ds, ref)
            entry["wrong_labels"] = wrong_labels(ds, ref)
            whole = bool(ds["finished"].all())
            entry["outcome"] = "served whole" if whole else "chunks left out"
        entry["verify_exit"] = _verify_exit(out)
        with contextlib.suppress(InputError):
            entry["repaired"], failed = _store.repair_scan(out)
            if failed:
                entry["not_repaired"] = failed
        try:
            fixed = scan(toy, GRID, SEEDS, out=out, chunk_size=1, progress=False)
            entry["exact_after"] = bool(
                wrong_numbers(fixed, ref) == 0
                and wrong_labels(fixed, ref) == 0
                and fixed["finished"].all()
                and _verify_exit(out) == 0
            )
        except (InputError, OSError, ValueError) as e:
            entry["exact_after"] = False
            entry["after"] = str(e)[:120]
        if not entry["exact_after"]:  # start the next damage from a whole store
            shutil.rmtree(out)
            scan(toy, GRID, SEEDS, out=out, chunk_size=1, progress=False)
        log.append(entry)
    return log


def _tally(log: list[dict]) -> dict:
    """Per kind: damages tried, detected (refused, left out, or a non-zero verify exit), wrong
    numbers and labels served, verify exit codes, exact after repair or rerun."""
    out = {}
    for e in log:
        t = out.setdefault(e["kind"], {"tried": 0, "detected": 0, "served_whole": 0,
                                       "wrong": 0, "exit_codes": {}, "exact_after": 0})  # fmt: skip
        t["tried"] += 1
        t["detected"] += int(e["outcome"] != "served whole" or e["verify_exit"] != 0)
        t["served_whole"] += int(e["outcome"] == "served whole")
        t["wrong"] += e["wrong_numbers"] + e["wrong_labels"]
        code = str(e["verify_exit"])
        t["exit_codes"][code] = t["exit_codes"].get(code, 0) + 1
        t["exact_after"] += int(e["exact_after"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=12)
    ap.add_argument("--damages", type=int, default=240)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import jax

    jax.config.update("jax_enable_x64", True)
    from scan_helpers.toy import GRID, toy

    from jaxfeat import scan
    from jaxfeat._scan import store as _store

    rng = random.Random(args.seed)
    ref = scan(toy, GRID, SEEDS, chunk_size=1, progress=False)
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

    pristine = _store.open_scan(out)  # the labels and numbers every read must match
    damages = damage_every_file_kind(out, pristine, rng, args.damages)
    shutil.rmtree(work)
    results = {
        "kills": sum(k["killed"] for k in kill_log),
        "reads_after_a_kill": opened,
        "wrong_numbers_served_after_kills": served_wrong,
        "store_complete_and_exact_after_rerun": kills_ok,
        "damages": len(damages),
        "by_kind": _tally(damages),
        "wrong_numbers_served": sum(d["wrong_numbers"] for d in damages),
        "wrong_labels_served": sum(d["wrong_labels"] for d in damages),
        "exact_after_repair_or_rerun": all(d["exact_after"] for d in damages),
        "kill_log": kill_log,
        "damage_log": damages,
    }
    with open(os.path.join(HERE, "results", "fault-injection.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(
        f"{results['kills']} kills: {served_wrong} wrong numbers served in {opened} reads, "
        f"complete and exact after the rerun: {kills_ok}"
    )
    for kind, t in results["by_kind"].items():
        print(f"  {kind}: {t}")
    print(
        f"{len(damages)} damages: {results['wrong_numbers_served']} wrong numbers and "
        f"{results['wrong_labels_served']} wrong labels served; exact after repair or rerun: "
        f"{results['exact_after_repair_or_rerun']}"
    )


if __name__ == "__main__":
    main()
