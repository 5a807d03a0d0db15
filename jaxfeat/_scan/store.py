"""Scan stores: where `jaxfeat.scan` writes its results, and how a store is read back safely.

A store is a Zarr v3 group (DESIGN §4): one array per output, chunked exactly like the scan, so
each (static grid point, seed chunk) of the scan is one Zarr chunk file per output. Beside the
arrays, `_done/` holds one marker per finished chunk. Its guarantees:

- **Nothing finished is lost.** A chunk's marker is written atomically after its data, so a
  killed scan loses at most the chunks in flight; a rerun computes only unfinished chunks.
  Only `overwrite=True` (`--overwrite`) discards finished work.
- **Nothing damaged or partial is served.** Each marker records the size and SHA-256 of every
  chunk file it covers (and which files zarr left unwritten because they held only the fill
  value), plus the code that computed it. `open_scan` and `verify_scan` check them: a missing,
  truncated or altered file is named and its chunk is treated as unfinished (`jf.scan` recomputes
  it). Unfinished seeds read as missing values (NaN), never as zeros; the `finished` variable
  says which seeds a dataset holds. Every array also carries zarr's own CRC32C checksum, so a
  damaged file fails loudly even when read without jaxfeat.
- **Labels and metadata are verified too.** At creation every file that gives a number its
  meaning (the root attributes with the config, every array's metadata, the coordinate arrays,
  the consolidated metadata) is recorded with its size and SHA-256 in `_done/layout.json`, and
  a copy of each is kept under `_done/layout/`. A store whose labels or metadata no longer match
  is refused by `open_scan` with one line naming the file (labels cannot be recomputed);
  `repair_scan` (`jaxfeat repair`) restores them from the copies, checked against the record.
- **Atomic creation.** A new store is built under a temporary name and renamed into place, so a
  store either exists whole or not at all. Its metadata is consolidated, so plain
  `xarray.open_zarr(path)` reads it without warnings.
- **Several writers.** A writer claims a chunk with an exclusive lock file (`O_CREAT|O_EXCL`)
  before computing it; writers on one store (separate processes, with or without
  `jax.distributed`) never compute a chunk twice, and each waits for the others' chunks. A lock
  whose process died on this host is taken over; a lock of a dead process on another host must
  be removed by hand (`jaxfeat info` lists held locks).
- **Provenance.** The store records the jaxfeat version and a fingerprint of the code that
  computes results; resuming with different code is refused unless explicitly allowed, and each
  chunk's marker names the code that computed it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import inspect
import json
import os
import shutil
import socket
import sys
import threading
import time
import uuid
import warnings

import numpy as np

from .._checks import InputError
from .._version import __version__

DONE = "_done"
MARKER_VERSION = 4  # 3: fill-value chunks record their path; 4: the marker's own SHA-256
LAYOUT = "layout.json"  # in DONE: size and SHA-256 of every file written at creation
LAYOUT_COPY = "layout"  # in DONE: a copy of those files, for `repair_scan`
# modules that draw or parse but never compute a stored number: editing them keeps stores valid
_PRESENTATION = {"plotting", "cli.py", "_demo.py", "analysis.py"}  # plotting: a package


# --------------------------------------------------------------------------- provenance


def code_fingerprint(experiment) -> str:
    """SHA-256 (16 hex digits) of the code that computes `experiment`'s results: every jaxfeat
    module except the presentation ones, plus the experiment function's own source when it lives
    outside the package (a user's module or notebook cell)."""
    h = hashlib.sha256()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the jaxfeat package
    for dirpath, dirnames, files in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _PRESENTATION)
        for f in sorted(files):
            if f.endswith(".py") and f not in _PRESENTATION:
                path = os.path.join(dirpath, f)
                h.update(os.path.relpath(path, root).encode())
                with open(path, "rb") as fh:
                    h.update(fh.read())
    fn = experiment.fn
    module = getattr(inspect.getmodule(fn), "__file__", None) or ""
    if not os.path.abspath(module).startswith(root + os.sep):
        try:
            h.update(inspect.getsource(fn).encode())
        except (OSError, TypeError):  # no source (a lambda in a REPL): its bytecode
            code = getattr(fn, "__code__", None)
            h.update(code.co_code if code is not None else repr(fn).encode())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- files


def atomic_write(path: str, text: str) -> None:
    tmp = f"{path}.tmp-{os.getpid()}-{threading.get_ident()}"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def wait_for(path: str, what: str, timeout: float = 3600.0) -> None:
    t0 = time.monotonic()
    while not os.path.exists(path):
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.2)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def chunk_name(s: int, c: int) -> str:
    return f"s{s}-c{c}"


# --------------------------------------------------------------------------- verification


@dataclasses.dataclass
class Verification:
    """What `verify_scan` found.

    **Fields:** `ok`: finished chunks (s, c) that check out; `damaged`: {(s, c): reason};
    `unfinished`: chunks without a marker; `locked`: {(s, c): the lock's writer};
    `unverifiable`: chunks written before markers recorded checksums (counted as finished);
    `codes`: {code fingerprint: chunks it computed}; `layout`: {file: reason} for the labels
    and metadata that no longer match their record at creation (`None`: a store from before
    they were recorded); `copies`: {file: reason} for damaged creation copies (the labels are
    still right, but `repair_scan` could not restore them).

    **Properties:** `intact` (nothing damaged), `complete` (intact and every chunk finished).
    """

    ok: list
    damaged: dict
    unfinished: list
    locked: dict
    unverifiable: list
    codes: dict
    layout: dict | None = None
    copies: dict = dataclasses.field(default_factory=dict)

    @property
    def intact(self) -> bool:
        return not self.damaged and not self.layout and not self.copies

    @property
    def complete(self) -> bool:
        return self.intact and not self.unfinished

    def summary(self) -> str:
        """One line: 'intact: 8/8 chunks finished' or what is damaged and what to do."""
        total = len(self.ok) + len(self.unverifiable) + len(self.damaged) + len(self.unfinished)
        finished = f"{len(self.ok) + len(self.unverifiable)}/{total} chunks finished"
        if self.intact and self.layout is None:
            return f"intact: {finished} (labels unrecorded: `jaxfeat repair` records them)"
        if self.intact:
            return f"intact: {finished}"
        parts = []
        if self.layout:
            parts.append(f"{len(self.layout)} label/metadata files (`jaxfeat repair`)")
        if self.copies:
            parts.append(f"{len(self.copies)} repair copies (`jaxfeat repair`)")
        if self.damaged:
            parts.append(f"{len(self.damaged)} chunks (rerun the scan to recompute them)")
        return f"damaged: {'; '.join(parts)}; {finished}"


def layout(path: str) -> dict:
    """The scan layout recorded in a store's attributes: static axes, chunk size, counts."""
    try:
        with open(os.path.join(path, "zarr.json")) as f:
            attrs = json.load(f).get("attributes", {})
    except FileNotFoundError:
        raise InputError(f"{path!r} is not a Zarr store written by `jaxfeat run`") from None
    except (OSError, ValueError, AttributeError):
        raise InputError(f"{path!r}: its zarr.json is unreadable") from None
    if "jaxfeat_config" not in attrs:
        raise InputError(f"{path!r} is a Zarr store but not a jaxfeat scan")
    return attrs


def verify_scan(path: str, *, full: bool = True) -> Verification:
    """Check the store at `path`: its labels and metadata against their record at creation
    (always by SHA-256: they are small), the copies `repair_scan` restores them from, and
    every chunk against its marker: the files it recorded exist with the recorded sizes and,
    with `full=True`, the recorded SHA-256; files zarr left unwritten (fill-value chunks) are
    still absent. Returns a `Verification`; raises `InputError` when `path` is not a readable
    jaxfeat store (a damaged root whose copy is intact is reported, not raised).

    Read-only: nothing is repaired or recomputed (`repair_scan` restores labels, and rerunning
    the scan recomputes damaged chunks). A chunk whose marker is missing although the store's
    journal lists it as finished is damaged; held locks are listed.

    **Arguments:**

    - `path`: the store's directory, as written by `jaxfeat.scan(..., out=path)` or
      `jaxfeat run`.
    - `full`: also compare every chunk file's SHA-256 with its marker (default True); False
      checks only that the files exist with their recorded sizes (fast).

    **Returns:** a `Verification` (its fields: `ok`, `damaged`, `unfinished`, `locked`,
    `unverifiable`, `codes`, `layout`, `copies`; its properties `intact` and `complete`; and
    `summary()`), chunks named by (static point s, seed chunk c).
    """
    return _verify(path, full, check_layout(path))


def _verify(path: str, full: bool, changed: dict | None) -> Verification:
    """`verify_scan` with the labels already checked (`changed`: `check_layout(path)`)."""
    attrs = _attrs_to_verify(path, changed)
    n_static = int(attrs["static_points"])
    n_chunks = int(attrs["chunks_total"]) // max(n_static, 1)
    done = os.path.join(path, DONE)
    v = Verification([], {}, [], {}, [], {}, changed, check_copies(path))
    present = set(_listdir(done))
    journal = set(_read(os.path.join(done, "journal")).split()) if "journal" in present else set()
    for name in sorted(f for f in present if f.endswith(".lock")):
        with contextlib.suppress(OSError, ValueError):
            s, c = (int(x) for x in name[1 : -len(".lock")].split("-c"))
            v.locked[(s, c)] = json.loads(_read(os.path.join(done, name)) or "{}")
    for s in range(n_static):
        for c in range(n_chunks):
            if chunk_name(s, c) in present:
                _verify_chunk(path, s, c, full, v)
            elif chunk_name(s, c) in journal and (s, c) not in v.locked:
                v.damaged[(s, c)] = "its marker is missing (the journal lists it as finished)"
            else:
                v.unfinished.append((s, c))
    return v


def _attrs_to_verify(path: str, changed: dict | None) -> dict:
    """The root attributes, from the creation copy when the root itself is damaged."""
    if changed and "zarr.json" in changed:
        with contextlib.suppress(InputError):
            return layout(os.path.join(path, DONE, LAYOUT_COPY))
    return layout(path)


def _verify_chunk(path: str, s: int, c: int, full: bool, v: Verification) -> None:
    """Chunk (s, c)'s marker against its files, into `v`."""
    name = chunk_name(s, c)
    try:
        rec = json.loads(_read(os.path.join(path, DONE, name)))
    except (OSError, ValueError):
        v.damaged[(s, c)] = "its marker is unreadable"
        return
    if not isinstance(rec, dict) or "files" not in rec:
        v.unverifiable.append((s, c))
        return
    if "sha256" in rec and rec["sha256"] != _json_sha(
        {k: x for k, x in rec.items() if k != "sha256"}
    ):
        v.damaged[(s, c)] = "its marker was altered (checksum differs)"
        return
    if rec.get("chunk", name) != name:
        v.damaged[(s, c)] = f"its marker belongs to chunk {rec.get('chunk')}"
        return
    v.codes[rec.get("code")] = v.codes.get(rec.get("code"), 0) + 1
    reason = _check_files(path, rec["files"], full)
    if reason:
        v.damaged[(s, c)] = reason
    else:
        v.ok.append((s, c))


def _check_files(path: str, files: dict, full: bool) -> str | None:
    for output, rec in files.items():
        if rec is None:  # a fill-value chunk recorded by a marker before version 3
            continue
        f = os.path.join(path, rec["path"])
        if rec.get("absent"):
            if os.path.exists(f):
                return f"{output}: file {rec['path']} appeared (the chunk was all fill value)"
            continue
        if not os.path.exists(f):
            return f"{output}: file {rec['path']} is missing"
        size = os.path.getsize(f)
        if size != rec["size"]:
            return f"{output}: file {rec['path']} has {size} bytes, {rec['size']} were written"
        if full and _sha256(f) != rec["sha256"]:
            return f"{output}: file {rec['path']} was altered (checksum differs)"
    return None


RECORD_COPY = "_record.json"  # in DONE/LAYOUT_COPY: a copy of the record itself


def seal_layout(root: str) -> None:
    """Consolidate the metadata of the store at `root` (a new one, or one written before the
    record: `repair_scan`), then record the size and SHA-256 of every label and metadata file
    (`_layout_files`) in `_done/layout.json` (with the record's own SHA-256) and copy each
    file, and the record, to `_done/layout/` (module docstring)."""
    import zarr

    with warnings.catch_warnings():  # zarr: consolidated metadata is not in the v3 spec yet
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata")
        warnings.filterwarnings("ignore", message=".*not recognized as a component")
        warnings.filterwarnings("ignore", message=".*does not have a Zarr V3 specification")
        zarr.consolidate_metadata(root)
    files = {}
    for rel in _layout_files(root):
        full = os.path.join(root, rel)
        files[rel] = {"size": os.path.getsize(full), "sha256": _sha256(full)}
        copy = os.path.join(root, DONE, LAYOUT_COPY, rel)
        os.makedirs(os.path.dirname(copy), exist_ok=True)
        shutil.copyfile(full, copy)
    record = {"version": 1, "files": files}
    text = json.dumps(record | {"sha256": _json_sha(record)})
    atomic_write(os.path.join(root, DONE, LAYOUT_COPY, RECORD_COPY), text)
    atomic_write(os.path.join(root, DONE, LAYOUT), text)


def _layout_files(root: str) -> list[str]:
    """The files that give the store's numbers their meaning: every zarr.json, and the chunks
    of the coordinate arrays (an array named after its one dimension); not the outputs' data
    chunks (a new store has none; an older one sealed by `repair_scan` has them)."""
    files = ["zarr.json"]
    for name in sorted(os.listdir(root)):
        meta = os.path.join(root, name, "zarr.json")
        if name == DONE or not os.path.isfile(meta):
            continue
        files.append(os.path.join(name, "zarr.json"))
        with open(meta) as f:
            if json.load(f).get("dimension_names") != [name]:
                continue
        for dirpath, dirnames, names in os.walk(os.path.join(root, name)):
            dirnames.sort()
            files += [os.path.relpath(os.path.join(dirpath, f), root)
                      for f in sorted(names) if f != "zarr.json"]  # fmt: skip
    return files


def _json_sha(record: dict) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def _read_record(f: str) -> dict:
    """A layout record's files, or `ValueError` when it is unreadable or fails its own
    checksum."""
    try:
        rec = json.loads(_read(f))
        body = {k: v for k, v in rec.items() if k != "sha256"}
        if rec["sha256"] != _json_sha(body):
            raise ValueError("altered")
        return rec["files"]
    except (OSError, KeyError, TypeError, AttributeError) as e:
        raise ValueError("unreadable") from e


def _layout_record(path: str) -> dict | None:
    """`_done/layout.json`'s files, None for a store from before it existed; raises
    `InputError` when it is missing from a store that has creation copies, unreadable or
    altered."""
    f = os.path.join(path, DONE, LAYOUT)
    if not os.path.exists(f):
        if os.path.isdir(os.path.join(path, DONE, LAYOUT_COPY)):
            raise InputError(f"{path}: its label record {DONE}/{LAYOUT} is missing")
        return None
    try:
        return _read_record(f)
    except ValueError as e:
        raise InputError(f"{path}: its label record {DONE}/{LAYOUT} is {e}") from None


def check_layout(path: str) -> dict | None:
    """{file: what changed} for the files recorded at creation that no longer match (empty:
    all match; None: a store from before the record)."""
    try:
        record = _layout_record(path)
    except InputError as e:
        return {f"{DONE}/{LAYOUT}": str(e).split(": ", 1)[1]}
    if record is None:
        return None
    return {rel: why for rel, rec in record.items() if (why := _file_differs(path, rel, rec))}


def check_copies(path: str) -> dict:
    """{copy: what changed} for the creation copies (and the record's copy) that no longer
    match the record."""
    copies = os.path.join(path, DONE, LAYOUT_COPY)
    try:
        record = _layout_record(path)
    except InputError:
        return {}  # the record itself is reported by `check_layout`
    if record is None:
        return {}
    out = {
        f"{DONE}/{LAYOUT_COPY}/{rel}": why
        for rel, rec in record.items()
        if (why := _file_differs(copies, rel, rec))
    }
    try:
        _read_record(os.path.join(copies, RECORD_COPY))
    except ValueError as e:
        out[f"{DONE}/{LAYOUT_COPY}/{RECORD_COPY}"] = str(e)
    return out


def _file_differs(root: str, rel: str, rec: dict) -> str | None:
    f = os.path.join(root, rel)
    if not os.path.exists(f):
        return "missing"
    if os.path.getsize(f) != rec["size"] or _sha256(f) != rec["sha256"]:
        return "changed since the store was created"
    return None


def repair_scan(path) -> tuple[list, dict]:
    """Restore the labels and metadata of the store at `path` that no longer match their record
    (`verify_scan(path).layout`) from the copies made at creation, each checked against the
    record first; restore damaged copies from intact files the same way, and either copy of
    the record from the other. Data chunks are not touched (a rerun recomputes damaged ones).
    A store from before labels were recorded gets its record now (consolidated metadata, the
    labels as they are: nothing could check them before).

    **Returns:** `(restored files, {file: why it could not be restored})`."""
    path = os.fspath(path)
    done, copies = os.path.join(path, DONE), os.path.join(path, DONE, LAYOUT_COPY)
    restored, failed = _repair_record(done, copies)
    record = _layout_record(path) if not failed else None
    if record is None:
        if failed:
            return restored, failed
        layout(path)  # not a jaxfeat store: say so
        seal_layout(path)  # a store from before the record: record its labels as they are now
        return [f"{DONE}/{LAYOUT} (labels recorded as they are now: not verified before)"], {}
    for rel, rec in record.items():
        live_bad = _file_differs(path, rel, rec) is not None
        copy_bad = _file_differs(copies, rel, rec) is not None
        if live_bad and copy_bad:
            failed[rel] = "its copy is damaged too"
        elif live_bad:
            _replace(os.path.join(copies, rel), os.path.join(path, rel))
            restored.append(rel)
        elif copy_bad:
            _replace(os.path.join(path, rel), os.path.join(copies, rel))
            restored.append(f"{DONE}/{LAYOUT_COPY}/{rel}")
    return restored, failed


def _repair_record(done: str, copies: str) -> tuple[list, dict]:
    """Either copy of the layout record from the other when one fails its own checksum."""
    primary, backup = os.path.join(done, LAYOUT), os.path.join(copies, RECORD_COPY)
    if not os.path.exists(primary) and not os.path.isdir(copies):
        return [], {}  # a store from before the record
    ok = {}
    for f in (primary, backup):
        try:
            _read_record(f)
            ok[f] = True
        except ValueError:
            ok[f] = False
    if ok[primary] and not ok[backup]:
        _replace(primary, backup)
        return [f"{DONE}/{LAYOUT_COPY}/{RECORD_COPY}"], {}
    if ok[backup] and not ok[primary]:
        _replace(backup, primary)
        return [f"{DONE}/{LAYOUT}"], {}
    if not ok[primary]:
        return [], {f"{DONE}/{LAYOUT}": "both copies of the label record are damaged"}
    return [], {}


def _replace(src: str, dst: str) -> None:
    """dst becomes a copy of src, atomically."""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    tmp = f"{dst}.repair-{os.getpid()}"
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def describe_chunk(attrs: dict, s: int, c: int) -> str:
    """'chunk s0-c3 (seeds 24–31 at activation='tanh')' for messages."""
    cfg = json.loads(attrs["jaxfeat_config"])
    static = json.loads(attrs.get("static_axes", "[]"))
    seeds, size = cfg["seeds"], int(attrs["chunk_size"])
    lo, hi = c * size, min((c + 1) * size, seeds) - 1
    point = ""
    if static:
        import itertools

        combos = list(itertools.product(*(cfg["grid"][a] for a in static)))
        point = " at " + ", ".join(f"{a}={v!r}" for a, v in zip(static, combos[s]))
    return f"chunk {chunk_name(s, c)} (seeds {lo}–{hi}{point})"


# --------------------------------------------------------------------------- reading


def open_scan(path, *, verify: bool = True, warn=None):
    """Open a scan store for reading: an `xarray.Dataset` holding only finished, intact seeds.

    Every chunk is checked against its marker (`verify_scan`); a damaged chunk is named in a
    warning and treated like an unfinished one. If some seeds are not finished, every output at
    those seeds is set missing (NaN; integer outputs become floats) and `diverged` is False there;
    the boolean variable `finished` (grid axes…, seed) says which seeds the dataset holds, and
    `attrs["seeds_finished"]` how many (point, seed) pairs. `jaxfeat.summarize` and every figure
    count only finished seeds. `warn(msg)` receives each warning (default: stderr).

    A store whose labels or metadata changed after creation is refused with `InputError`
    (`jaxfeat repair` restores them); so is a path that is not a jaxfeat store, and a partial
    store written before markers held checksums (a complete one is served, with a warning).

    **Arguments:**

    - `path`: the store's directory (a str or `os.PathLike`).
    - `verify`: passed to `verify_scan` as `full`: True (default) checks every chunk file's
      SHA-256 against its marker; False checks only that the files exist with their recorded
      sizes. Chunks are checked against their markers either way.
    - `warn`: a callable `warn(msg: str)` that receives each warning (damaged chunks, chunks or
      labels that predate checksums); default: print to stderr.

    **Returns:** an `xarray.Dataset` with dims (grid axes…, seed, output dims…), every output
    of the scan, the boolean `finished` (grid axes…, seed) (all True for a complete store) and
    `attrs["seeds_finished"]`; unfinished or damaged seeds are NaN (`diverged` False).
    """
    import xarray as xr

    path = os.fspath(path)
    if not os.path.exists(os.path.join(path, "zarr.json")):
        raise InputError(f"{path!r} is not a Zarr store written by `jaxfeat run`")
    attrs = layout(path)
    warn = warn or (lambda m: print(f"jaxfeat: warning: {m}", file=sys.stderr))
    changed = check_layout(path)
    _refuse_changed_labels(path, changed)
    with warnings.catch_warnings():  # `_done/` is ours, not a zarr node
        warnings.filterwarnings("ignore", message=".*not recognized as a component")
        # the consolidated metadata was verified with the labels (it is in the root zarr.json)
        ds = _plain_strings(xr.open_zarr(path, consolidated=changed is not None))
    if "static_points" not in attrs:  # a store from before markers held checksums
        warn(f"{path} was written by jaxfeat {attrs.get('jaxfeat_version')} without checksums")
        return _without_checksums(path, ds, attrs)
    v = _verify(path, verify, changed)
    if v.layout is None:
        warn(f"{path} was written by jaxfeat {attrs.get('jaxfeat_version')} before labels and "
             "metadata were checksummed: they are not verified")  # fmt: skip
    for (s, c), why in sorted(v.damaged.items()):
        warn(
            f"{describe_chunk(attrs, s, c)} of {path} is damaged ({why}); its seeds are left "
            "out; rerun the same `jaxfeat run` command to recompute it"
        )
    if v.unverifiable:
        warn(f"{len(v.unverifiable)} chunks of {path} predate checksums and are not verified")
    good = set(v.ok) | set(v.unverifiable)
    n_static, n_chunks = int(attrs["static_points"]), int(attrs["chunks_total"])
    n_chunks //= max(n_static, 1)
    if len(good) == n_static * n_chunks:
        return _with_finished(ds, None)
    mask = _finished_mask(ds, attrs, good)
    return _with_finished(_read_good_chunks(path, ds, mask), mask)


def _without_checksums(path: str, ds, attrs: dict):
    """A store from before markers held checksums: served only when every chunk finished."""
    done = {
        tuple(int(x) for x in f[1:].split("-c"))
        for f in _listdir(os.path.join(path, DONE))
        if _is_marker_name(f)
    }
    n = int(attrs["chunks_total"])
    if len(done) == n:
        return _with_finished(ds, None)
    raise InputError(
        f"{path!r} is a partial store written before jaxfeat recorded which seeds are "
        f"finished ({len(done)}/{n} chunks); rerun it with the current jaxfeat"
    )


def _refuse_changed_labels(path: str, changed: dict | None) -> None:
    """One line naming the first label or metadata file that changed (`check_layout`)."""
    if changed:
        first, *rest = sorted(changed.items())
        more = f" (and {len(rest)} more)" if rest else ""
        raise InputError(
            f"{path}: its labels or metadata changed after it was written: {first[0]} "
            f"{first[1]}{more}; nothing is served under labels that may be wrong: "
            f"`jaxfeat repair {path}` restores them from the copies made at creation"
        )


def _read_good_chunks(path, ds, mask):
    """The outputs read chunk by chunk where `mask` holds, NaN (False for `diverged`) elsewhere:
    the files of unfinished or damaged chunks are never decoded (they may be half written)."""
    import zarr

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not recognized as a component")
        group = zarr.open_group(path, mode="r")
    grid = mask.ndim - 1
    out = ds.copy()
    for name in ds.data_vars:
        arr = group[name]
        assert isinstance(arr, zarr.Array)  # data variables are arrays, never groups
        empty = name == "diverged"
        data = np.zeros(arr.shape, bool) if empty else np.full(arr.shape, np.nan)
        chunk = arr.chunks
        blocks = [range(0, n, k) for n, k in zip(arr.shape[: grid + 1], chunk[: grid + 1])]
        import itertools

        for lo in itertools.product(*blocks):
            region = tuple(slice(a, a + k) for a, k in zip(lo, chunk[: grid + 1]))
            if mask[region].all():
                data[region] = arr[region]
        out[name] = (ds[name].dims, data, ds[name].attrs)
    return out


def _finished_mask(ds, attrs, good):
    """(grid axes…, seed) boolean: True where the seed's chunk is finished and intact."""
    import itertools

    cfg = json.loads(attrs["jaxfeat_config"])
    axes = [d for d in ds["diverged"].dims if d != "seed"]  # the config's JSON sorts its keys
    static = json.loads(attrs.get("static_axes", "[]"))
    size = int(attrs["chunk_size"])
    shape = tuple(len(cfg["grid"][a]) for a in axes) + (cfg["seeds"],)
    mask = np.zeros(shape, bool)
    combos = list(itertools.product(*(range(len(cfg["grid"][a])) for a in static)))
    for s, c in good:
        point = dict(zip(static, combos[s]))
        idx = tuple(point.get(a, slice(None)) for a in axes)
        mask[idx + (slice(c * size, (c + 1) * size),)] = True
    return mask


def _plain_strings(ds):
    """String coordinates as NumPy '<U' arrays: zarr 3 reads them as NumPy's StringDType, on
    whose pandas index `ds.sel(method="network")` silently selects nothing and keeps the axis."""
    fix = {
        name: np.array([str(v) for v in c.values.ravel()]).reshape(c.shape)
        for name, c in ds.coords.items()
        if c.dtype.kind == "T" or c.dtype == object
    }
    return ds.assign_coords(fix) if fix else ds


def _with_finished(ds, mask):
    import xarray as xr

    dims = [d for d in ds["diverged"].dims]
    if mask is None:
        ds["finished"] = xr.DataArray(np.ones([ds.sizes[d] for d in dims], bool), dims=dims)
        ds.attrs["seeds_finished"] = int(np.prod([ds.sizes[d] for d in dims]))
        return ds
    fin = xr.DataArray(mask, dims=dims)
    for name in list(ds.data_vars):
        if name == "diverged":
            ds[name] = ds[name] & fin
        else:
            ds[name] = ds[name].where(fin)
    ds["finished"] = fin
    ds.attrs["seeds_finished"] = int(mask.sum())
    return ds


# --------------------------------------------------------------------------- writing


class BaseStore:
    """Layout shared by the in-memory and the Zarr store: dims, shapes and the region of each
    (static point s, seed chunk c). `plan` and `runner` are the scan engine's (`jaxfeat._scan`)."""

    chunk_size: int | None = None
    n_chunks: int = 0
    code: str | None = None

    def __init__(self, plan):
        self.plan = plan

    def ensure(self, runner):
        self.runner = runner
        self.chunk_size = runner.chunk_size
        self.n_chunks = -(-self.plan.seeds // self.chunk_size)

    def claim(self, s, c) -> bool:
        return True

    def release(self, s, c):
        pass

    def unmark(self, s, c):
        pass

    def dims(self, name: str) -> tuple[str, ...]:
        shape, _ = self.runner.outputs[name]
        named = tuple(self.plan.exp.dims.get(name, ()))
        extra = (
            named if len(named) == len(shape) else tuple(f"{name}_{i}" for i in range(len(shape)))
        )
        return tuple(self.plan.axes) + ("seed",) + extra

    def shape(self, name: str) -> tuple[int, ...]:
        shape, _ = self.runner.outputs[name]
        return tuple(len(self.plan.grid[a]) for a in self.plan.axes) + (self.plan.seeds,) + shape

    def region(self, s: int, c: int) -> tuple:
        point = dict(zip(self.plan.static, self.plan.static_points[s]))
        size = self.chunk_size
        assert size is not None  # set by ensure(), before any region
        lo = c * size
        seeds = slice(lo, min(lo + size, self.plan.seeds))
        return tuple(point.get(a, slice(None)) for a in self.plan.axes) + (seeds,)

    def attrs(self) -> dict:
        import jax

        return {
            "experiment": self.plan.exp.name,
            "description": self.plan.exp.description,
            "jaxfeat_config": json.dumps(self.plan.config, sort_keys=True),
            "jaxfeat_version": __version__,
            "jaxfeat_code": self.code,
            "jax_version": jax.__version__,
            "devices": ", ".join(str(d) for d in self.plan.devices),
            "chunk_size": self.chunk_size,
            "static_axes": json.dumps(list(self.plan.static)),
            "static_points": len(self.plan.static_points),
            "chunks_total": len(self.plan.static_points) * self.n_chunks,
        }

    def output_attrs(self, name: str) -> dict:
        fill = self.plan.exp.not_applicable.get(name)
        return {} if fill is None else {"not_applicable": _json_float(fill)}

    def coords(self) -> dict:
        c = {a: np.asarray(v) for a, v in self.plan.grid.items()}
        params = self.plan.static_params(0)
        extra = {d: np.asarray(fn(params)) for d, fn in self.plan.exp.coords.items()}
        return c | {"seed": np.arange(self.plan.seeds)} | extra


def _json_float(x):
    x = float(x)
    return "NaN" if np.isnan(x) else x


class MemoryStore(BaseStore):
    def ensure(self, runner):
        super().ensure(runner)
        self.data = {
            k: np.full(self.shape(k), np.nan if dt.kind == "f" else 0, dt)
            for k, (_, dt) in runner.outputs.items()
        }
        self.done = set()

    def is_done(self, s, c):
        return (s, c) in self.done

    def write(self, s, c, res):
        for k, v in res.items():
            self.data[k][self.region(s, c)] = v
        self.done.add((s, c))

    def dataset(self):
        import xarray as xr

        vars_ = {k: (self.dims(k), v, self.output_attrs(k)) for k, v in self.data.items()}
        ds = xr.Dataset(vars_, coords=self.coords(), attrs=self.attrs())
        return _with_finished(ds, None)


class ZarrStore(BaseStore):
    """A store on disk (see the module docstring)."""

    def __init__(self, plan, path: str, existing_chunk, code: str, allow_code_change: bool):
        super().__init__(plan)
        self.path = path
        self.chunk_size = existing_chunk
        self.code = code
        self.allow_code_change = allow_code_change

    def ensure(self, runner):
        import jax

        super().ensure(runner)
        if os.path.exists(os.path.join(self.path, "zarr.json")):
            return self._open_existing(runner)
        if jax.process_index() != 0:  # process 0 creates the store; the others wait for it
            wait_for(os.path.join(self.path, DONE), "the store to be created by process 0")
            return self._open_existing(runner)
        self._create(runner)

    def _open_existing(self, runner):
        import zarr

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*not recognized as a component")
            self.group = zarr.open_group(self.path, mode="r+")
        stored = int(self.group.attrs["chunk_size"])  # pyright: ignore[reportArgumentType] - an int
        if stored != self.chunk_size:  # another writer created it first, with its chunk size
            self.chunk_size = runner.chunk_size = stored
            self.n_chunks = -(-self.plan.seeds // stored)

    def _create(self, runner):
        """Build the whole store under a temporary name, then rename it into place."""
        import zarr

        parent = os.path.dirname(os.path.abspath(self.path))
        base = os.path.basename(os.path.normpath(self.path))
        _remove_dead_builds(parent, base)
        tmp = os.path.join(parent, f".{base}.creating-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        try:
            g = zarr.open_group(tmp, mode="w", zarr_format=3)
            self._write_layout(g, runner)
            seal_layout(tmp)
            if os.path.isdir(self.path) and not os.listdir(self.path):
                os.rmdir(self.path)  # an empty directory made for it
            os.rename(tmp, self.path)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if not os.path.exists(os.path.join(self.path, "zarr.json")):
                raise
            # another writer created it first: use theirs if it holds this very scan
            assert self.code is not None  # set in __init__
            check_existing(self.path, self.plan, self.code, self.allow_code_change)
        self._open_existing(runner)

    def _write_layout(self, g, runner) -> None:
        """Coordinates, one empty checksummed array per output, and the scan's attributes."""
        from zarr.codecs import Crc32cCodec, ZstdCodec

        for name, values in self.coords().items():
            a = g.create_array(  # strings as zarr's (specified) variable-length UTF-8
                name,
                shape=values.shape,
                dtype=str if values.dtype.kind == "U" else values.dtype,
                dimension_names=(name,),
            )
            a[:] = values
        for name, (_, dt) in runner.outputs.items():
            g.create_array(
                name,
                shape=self.shape(name),
                dtype=dt,
                chunks=self.chunk_shape(name),
                dimension_names=self.dims(name),
                fill_value=np.nan if dt.kind == "f" else 0,
                compressors=[ZstdCodec(checksum=True), Crc32cCodec()],
                attributes=self.output_attrs(name),
            )
        g.attrs.update(self.attrs())

    def chunk_shape(self, name):
        shape = self.shape(name)
        axes, static = self.plan.axes, self.plan.static
        return (
            tuple(1 if a in static else len(self.plan.grid[a]) for a in axes)
            + (self.chunk_size,)
            + shape[len(axes) + 1 :]
        )

    def _marker(self, s, c):
        return os.path.join(self.path, DONE, chunk_name(s, c))

    def is_done(self, s, c):
        return os.path.exists(self._marker(s, c))

    def claim(self, s, c) -> bool:
        """Take chunk (s, c) for this process: True if its lock is ours now."""
        lock = self._marker(s, c) + ".lock"
        me = {"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}
        for _ in range(2):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not _stale(lock):
                    return False
                with contextlib.suppress(FileNotFoundError):
                    os.remove(lock)
                continue
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(me))
            return True
        return False

    def release(self, s, c):
        with contextlib.suppress(FileNotFoundError):
            os.remove(self._marker(s, c) + ".lock")

    def unmark(self, s, c):
        with contextlib.suppress(FileNotFoundError):
            os.remove(self._marker(s, c))

    def write(self, s, c, res):
        import zarr

        region = self.region(s, c)
        files = {}
        for k, v in res.items():
            arr = self.group[k]
            assert isinstance(arr, zarr.Array)  # outputs are arrays, never groups
            arr[region] = v
            idx = tuple(
                (r.start or 0) // size if isinstance(r, slice) else r // size
                for r, size in zip(region, arr.chunks)
            ) + (0,) * (arr.ndim - len(region))
            rel = os.path.join(k, *arr.metadata.encode_chunk_key(idx).split("/"))
            f = os.path.join(self.path, rel)
            files[k] = (
                {"path": rel, "size": os.path.getsize(f), "sha256": _sha256(f)}
                if os.path.exists(f)
                else {"path": rel, "absent": True}  # zarr writes no all-fill-value chunk
            )
        record = {
            "version": MARKER_VERSION,
            "chunk": chunk_name(s, c),
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "time": time.time(),
            "code": self.code,
            "files": files,
        }
        record["sha256"] = _json_sha(record)  # a marker verifies itself too
        atomic_write(self._marker(s, c), json.dumps(record))
        with open(os.path.join(self.path, DONE, "journal"), "a") as f:  # one line per chunk
            f.write(f"{chunk_name(s, c)}\n")

    def dataset(self):
        return open_scan(self.path)


def _stale(lock: str) -> bool:
    """A lock whose process is gone: dead on this host, or never written for a minute."""
    try:
        held = json.loads(_read(lock) or "{}")
    except FileNotFoundError:
        return True
    except (OSError, ValueError):  # being written right now
        return False
    if not held:
        return time.time() - os.path.getmtime(lock) > 60
    return held.get("host") == socket.gethostname() and not _pid_alive(int(held["pid"]))


def _remove_dead_builds(parent: str, base: str) -> None:
    """Temporary builds of this store left by a killed process (`kill -9` during creation)."""
    prefix = f".{base}.creating-"
    with contextlib.suppress(OSError):
        for f in os.listdir(parent):
            if f.startswith(prefix):
                with contextlib.suppress(ValueError, IndexError):
                    pid = int(f[len(prefix) :].split("-")[0])
                    if not _pid_alive(pid):
                        shutil.rmtree(os.path.join(parent, f), ignore_errors=True)


# --------------------------------------------------------------------------- opening to write

IDENTITY = ("experiment", "grid", "params", "seeds", "key", "x64")


def open_for_writing(out, plan, *, overwrite: bool, allow_code_change: bool, code: str):
    """The store at `out` for this plan: new, resumed (same scan, same code), refused (another
    scan, or other code unless `allow_code_change`), or discarded (`overwrite`)."""
    import jax

    path = os.path.normpath(os.fspath(out))
    if os.path.exists(path) and not os.path.isdir(path):
        raise InputError(f"out {path!r} exists and is not a directory")
    existing_chunk = None
    if os.path.exists(os.path.join(path, "zarr.json")):
        if overwrite:
            if jax.process_index() == 0:
                n = len([f for f in _listdir(os.path.join(path, DONE)) if _is_marker_name(f)])
                print(
                    f"jaxfeat: --overwrite: discarding {path} ({n} finished chunks)",
                    file=sys.stderr,
                )
                shutil.rmtree(path)
        else:
            existing_chunk = check_existing(path, plan, code, allow_code_change)
    elif os.path.isdir(path) and os.listdir(path):
        if not overwrite:
            raise InputError(f"out {path!r} is a non-empty directory that is not a jaxfeat store")
        if jax.process_index() == 0:
            shutil.rmtree(path)
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        probe = os.path.abspath(path) + f".probe-{os.getpid()}"
        atomic_write(probe, "")
        os.remove(probe)
    except OSError as e:
        raise InputError(f"out {path!r} is not writable: {e.strerror or e}") from None
    return ZarrStore(plan, path, existing_chunk, code, allow_code_change)


def _is_marker_name(f: str) -> bool:
    return f.startswith("s") and "-c" in f and "." not in f


def _listdir(path):
    try:
        return os.listdir(path)
    except OSError:
        return []


def check_existing(path: str, plan, code: str, allow_code_change: bool) -> int:
    """Refuse a store that holds another scan or results of other code; return its chunk size."""
    with open(os.path.join(path, "zarr.json")) as f:
        attrs = json.load(f).get("attributes", {})
    if "jaxfeat_config" not in attrs:
        raise InputError(
            f"out {path!r} is a Zarr store not written by jaxfeat.scan; choose another --out "
            "or pass --overwrite"
        )
    stored = json.loads(attrs["jaxfeat_config"])
    diff = [
        k
        for k in IDENTITY
        if json.dumps(stored.get(k), sort_keys=True)
        != json.dumps(plan.config.get(k), sort_keys=True)
    ]
    if diff:
        raise InputError(
            f"out {path!r} holds a different scan (differs in: {', '.join(diff)}); "
            "choose another --out or pass --overwrite"
        )
    if attrs.get("jaxfeat_code") != code and not allow_code_change:
        was = attrs.get("jaxfeat_code") or "not recorded"
        raise InputError(
            f"out {path!r} was computed by other code (jaxfeat "
            f"{attrs.get('jaxfeat_version')}, code {was}; now {code}): its results would mix "
            "with this code's; pass --allow-code-change to continue it anyway, or --overwrite "
            "to recompute it"
        )
    if "static_points" not in attrs:
        raise InputError(
            f"out {path!r} was written by jaxfeat {attrs.get('jaxfeat_version')}, which did not "
            "record checksums; pass --overwrite to recompute it with this version"
        )
    return int(attrs["chunk_size"])
