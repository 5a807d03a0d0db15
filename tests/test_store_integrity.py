"""Stores verify what gives a number its meaning (issue "stores that verify labels"): coordinate
labels, array metadata, root attributes and flag arrays are checksummed; a store whose labels
changed is refused and repaired from its creation copies; `jaxfeat info --verify` exits 0/1/2;
plain `xarray.open_zarr` reads a finished store without warnings."""

import json
import os
import shutil
import signal
import warnings

import numpy as np
import pytest
import xarray as xr
import zarr
from scan_helpers.toy import GRID, toy, unfinish

from jaxfeat import open_scan, scan, verify_scan
from jaxfeat._checks import InputError
from jaxfeat._scan import store as _store
from jaxfeat.cli import main

SEEDS, CHUNK = 12, 4  # 2 static points (n) × 3 chunks


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("pristine") / "s.zarr")
    scan(toy, GRID, SEEDS, out=out, chunk_size=CHUNK, progress=False)
    return out


@pytest.fixture
def store(pristine, tmp_path):
    out = str(tmp_path / "s.zarr")
    shutil.copytree(pristine, out)
    return out


def _info(path, capsys) -> tuple[int, str]:
    rc = main(["info", path, "--verify"])
    return rc, capsys.readouterr().out.strip().splitlines()[-1]


def _marker(out, s, c):
    return json.load(open(os.path.join(out, "_done", f"s{s}-c{c}")))


def _reverse_scale(out):
    zarr.open_array(os.path.join(out, "scale"), mode="r+")[:] = GRID["scale"][::-1]


def _shift_seeds(out):
    zarr.open_array(os.path.join(out, "seed"), mode="r+")[:] = np.arange(SEEDS) + 100


def _edit_root_attrs(out):
    meta = json.load(open(os.path.join(out, "zarr.json")))
    meta["attributes"]["description"] = "something else"
    json.dump(meta, open(os.path.join(out, "zarr.json"), "w"))


def _delete_array_metadata(out):
    os.remove(os.path.join(out, "count", "zarr.json"))


def _edit_array_attrs(out):
    path = os.path.join(out, "v", "zarr.json")
    meta = json.load(open(path))
    meta["dimension_names"] = ["n", "scale", "seed", "j"]  # labels swapped: a valid array still
    json.dump(meta, open(path, "w"))


LABEL_DAMAGES = {
    "coordinate values reversed": (_reverse_scale, "scale/c/0"),
    "seed coordinate shifted": (_shift_seeds, "seed/c/0"),
    "root attributes edited": (_edit_root_attrs, "zarr.json"),
    "an array's metadata deleted": (_delete_array_metadata, "count/zarr.json"),
    "an array's dimension names swapped": (_edit_array_attrs, "v/zarr.json"),
}


@pytest.mark.parametrize("damage", sorted(LABEL_DAMAGES))
def test_changed_labels_are_refused_named_and_repaired(store, pristine, damage, capsys):
    do, file = LABEL_DAMAGES[damage]
    do(store)
    assert file in verify_scan(store).layout
    with pytest.raises(InputError, match=f"labels or metadata changed.*{file}.*jaxfeat repair"):
        open_scan(store)
    rc, last = _info(store, capsys)
    assert rc == 1 and last.startswith("damaged: 1 label/metadata files")
    assert main(["plot", store, "--out", store + ".png"]) == 2  # refused in one line
    assert "labels or metadata changed" in capsys.readouterr().err
    assert main(["repair", store]) == 0
    assert f"restored: {file}" in capsys.readouterr().out
    assert _info(store, capsys) == (0, f"intact: {2 * 3}/{2 * 3} chunks finished")
    got, ref = open_scan(store), open_scan(pristine)
    xr.testing.assert_identical(got, ref)


def test_repair_refuses_a_damaged_copy(store, capsys):
    _reverse_scale(store)
    zarr.open_array(os.path.join(store, "_done", "layout", "scale"), mode="r+")[:] = [9, 9, 9]
    assert main(["repair", store]) == 1
    assert "not restored: scale/c/0: its copy is damaged too" in capsys.readouterr().out
    with pytest.raises(InputError, match="labels or metadata changed"):
        open_scan(store)


def test_a_deleted_label_record_refuses_the_store(store, capsys):
    os.remove(os.path.join(store, "_done", "layout.json"))
    with pytest.raises(InputError, match="label record _done/layout.json is missing"):
        open_scan(store)
    assert _info(store, capsys)[0] == 1
    assert main(["repair", store]) == 0  # from the record's own copy
    assert "restored: _done/layout.json" in capsys.readouterr().out
    assert _info(store, capsys)[0] == 0


def test_a_damaged_copy_is_reported_and_restored_while_the_labels_are_served(store, capsys):
    with open(os.path.join(store, "_done", "layout", "zarr.json"), "a") as f:
        f.write(" ")
    assert open_scan(store)["finished"].all()  # the labels themselves are intact
    rc, last = _info(store, capsys)
    assert rc == 1 and last.startswith("damaged: 1 repair copies")
    assert main(["repair", store]) == 0
    assert _info(store, capsys)[0] == 0


def test_a_flag_written_where_the_marker_recorded_none_is_damage(store, capsys):
    """`diverged` is all False in a healthy chunk, so zarr writes no file for it; setting it
    for two seeds writes one: the chunk is damaged, its seeds left out, never served masked."""
    assert _marker(store, 0, 0)["files"]["diverged"]["absent"]
    zarr.open_array(os.path.join(store, "diverged"), mode="r+")[:, 0, :2] = True
    v = verify_scan(store)
    assert "diverged: file" in v.damaged[(0, 0)] and "appeared" in v.damaged[(0, 0)]
    said = []
    ds = open_scan(store, warn=said.append)
    assert len(said) == 1 and "chunk s0-c0" in said[0] and "damaged" in said[0]
    assert not ds["finished"].isel(n=0, seed=slice(0, CHUNK)).any()
    assert not ds["diverged"].any()
    assert _info(store, capsys) == (
        1,
        "damaged: 1 chunks (rerun the scan to recompute them); 5/6 chunks finished",
    )
    scan(toy, GRID, SEEDS, out=store, chunk_size=CHUNK, progress=False)  # recomputed
    assert _info(store, capsys)[0] == 0


def test_swapped_chunks_and_a_deleted_variable_exit_1(store, capsys):
    a = os.path.join(store, _marker(store, 0, 0)["files"]["v"]["path"])
    b = os.path.join(store, _marker(store, 0, 1)["files"]["v"]["path"])
    tmp = a + ".x"
    os.rename(a, tmp), os.rename(b, a), os.rename(tmp, b)
    rc, last = _info(store, capsys)
    assert rc == 1 and last.startswith("damaged: 2 chunks")
    shutil.rmtree(os.path.join(store, "trace"))
    assert _info(store, capsys)[0] == 1


def test_info_exit_status_0_intact_2_not_a_store(store, tmp_path, capsys):
    assert _info(store, capsys) == (0, "intact: 6/6 chunks finished")
    assert main(["info", str(tmp_path / "nothing"), "--verify"]) == 2
    os.makedirs(tmp_path / "plain.zarr")
    zarr.open_group(str(tmp_path / "plain.zarr"), mode="w")
    assert main(["info", str(tmp_path / "plain.zarr"), "--verify"]) == 2
    (tmp_path / "bad.zarr").mkdir()
    (tmp_path / "bad.zarr" / "zarr.json").write_text("{not json")
    assert main(["info", str(tmp_path / "bad.zarr"), "--verify"]) == 2
    assert "unreadable" in capsys.readouterr().err


def test_plain_xarray_reads_a_finished_store_quietly(store):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain = xr.open_zarr(store)
        ours = open_scan(store)
    for name in ("v", "trace", "u", "count"):
        np.testing.assert_array_equal(plain[name].values, ours[name].values)
    assert plain["scale"].values.tolist() == GRID["scale"]


def test_runs_say_resuming_already_complete_and_finish_an_interrupt_after_the_last_chunk(
    tmp_path, capsys, monkeypatch
):
    out = str(tmp_path / "r.zarr")
    scan(toy, GRID, SEEDS, out=out, chunk_size=CHUNK, progress=True)
    unfinish(out, "s1-c1", "s1-c2")
    capsys.readouterr()
    scan(toy, GRID, SEEDS, out=out, chunk_size=CHUNK, progress=True)
    assert "jaxfeat: resuming: 4/6 chunks already done" in capsys.readouterr().err
    scan(toy, GRID, SEEDS, out=out, chunk_size=CHUNK, progress=True)
    err = capsys.readouterr().err
    assert "already complete: 6/6 chunks, nothing to compute" in err and "0/0" not in err
    # Ctrl-C while the last chunk is being written: the run finishes, nothing is left to redo
    unfinish(out, "s0-c2")
    write = _store.ZarrStore.write

    def write_then_interrupt(self, s, c, res):
        write(self, s, c, res)
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(_store.ZarrStore, "write", write_then_interrupt)
    ds = scan(toy, GRID, SEEDS, out=out, chunk_size=CHUNK, progress=True)
    err = capsys.readouterr().err
    assert "stopping (no chunk in flight)" in err and "interrupted" not in err
    assert bool(ds["finished"].all()) and verify_scan(out).complete


def test_the_stop_message_counts_the_chunks_in_flight(tmp_path, capsys, monkeypatch):
    out, write, writes = str(tmp_path / "i.zarr"), _store.ZarrStore.write, []

    def write_then_interrupt(self, s, c, res):
        write(self, s, c, res)
        writes.append((s, c))
        if len(writes) == 1:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(_store.ZarrStore, "write", write_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        scan(toy, GRID, SEEDS, out=out, chunk_size=CHUNK, workers=2, progress=True)
    err = capsys.readouterr().err
    assert "stopping after the chunk in flight" in err
    assert f"interrupted; {len(writes)}/6 chunks of this run are saved" in err
    assert len(writes) == 2 and len(verify_scan(out).ok) == 2


def test_a_deleted_marker_of_a_journalled_chunk_is_damage(store, capsys):
    os.remove(os.path.join(store, "_done", "s1-c0"))
    v = verify_scan(store)
    assert v.damaged == {(1, 0): "its marker is missing (the journal lists it as finished)"}
    assert _info(store, capsys)[0] == 1
    unfinish(store, "s1-c1")  # a chunk that never finished is not damage
    assert (1, 1) in verify_scan(store).unfinished


def test_a_marker_edited_in_a_field_no_file_check_reads_is_damage(store, capsys):
    path = os.path.join(store, "_done", "s0-c1")
    rec = json.load(open(path))
    rec["time"] += 1.0  # still valid JSON, every recorded file still matches
    with open(path, "w") as f:
        json.dump(rec, f)
    assert verify_scan(store).damaged == {(0, 1): "its marker was altered (checksum differs)"}
    assert _info(store, capsys)[0] == 1
