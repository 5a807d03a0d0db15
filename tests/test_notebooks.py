"""Notebooks are small, executed, and must still run: execute each one top to bottom."""

import json
import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((pathlib.Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes(path, tmp_path, monkeypatch):
    # runs in tmp_path; stored scans are read from notebooks/data (complete, so never rewritten)
    monkeypatch.setenv("JAXFEAT_NOTEBOOK_DIR", str(path.parent))
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any(o.get("output_type") == "display_data" for o in outputs)  # the figures


def test_stored_scans_are_complete():
    """A notebook opens its stored scan through jf.scan, which would recompute missing chunks."""
    for store in (pathlib.Path(__file__).parent.parent / "notebooks" / "data").glob("*.zarr"):
        attrs = json.loads((store / "zarr.json").read_text())["attributes"]
        markers = [p for p in (store / "_done").glob("s*-c*")]
        assert len(markers) == attrs["chunks_total"], store.name


def test_notebooks_are_stored_executed():
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code and all(c.get("execution_count") for c in code), path.name
