"""Notebooks are small, executed, and must still run: execute each one top to bottom."""

import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

from jaxfeat import verify_scan

NOTEBOOKS = sorted((pathlib.Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
@pytest.mark.notebook
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


def test_stored_scans_are_complete_and_intact():
    """The shipped scans are whole: every chunk finished, every file matching its checksum."""
    stores = sorted((pathlib.Path(__file__).parent.parent / "notebooks" / "data").glob("*.zarr"))
    assert stores
    for store in stores:
        v = verify_scan(str(store))
        assert v.complete and not v.unverifiable and len(v.ok) > 0, (store.name, v.damaged)


def test_notebooks_are_stored_executed():
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code and all(c.get("execution_count") for c in code), path.name
