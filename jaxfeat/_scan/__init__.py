"""The grid × seeds engine (`jaxfeat.scan`): one compiled program per static configuration,
seeds chunked to a memory budget and sharded over devices, results written chunk by chunk to a
resumable Zarr store.

Layout of a scan (DESIGN §4):

- grid axes whose parameter the experiment declares dynamic (α, c, λ, η, padded widths) are
  flattened into one vmapped axis; the other axes are static and loop in Python, one compile each;
- seed i always gets `fold_in(PRNGKey(key), i)`, so every grid point sees the same seeds (common
  random numbers across the diagram) and a seed's draw never depends on chunking or devices;
- the seed axis is cut into chunks of `chunk_size` seeds; a chunk's batch is padded to a multiple
  of the device count and sharded over the devices; one chunk is one Zarr chunk of every output;
- the store (`store`) records each finished chunk with checksums; a rerun skips finished,
  intact chunks and recomputes unfinished or damaged ones, so a killed scan loses at most the
  chunks in flight, and writers on one store claim chunks with lock files.

Parts, each below the next: `plan` (experiment, grid and config, validated) → `program` (the
compiled per-chunk program, output shapes, chunk size) → `store` (Zarr store, chunk markers,
locks) → `loop` (chunks computed, written, claimed, interrupted) → `api` (`scan`,
`plan_summary`); `map_seeds` is the chunker as a function (a per-seed function over many keys,
a batch at a time) for notebooks. Statistics of a finished scan live in `jaxfeat.analysis`.
"""

from .api import plan_summary as plan_summary, scan as scan
from .seed_batches import map_seeds as map_seeds, seed_batch_for as seed_batch_for
from .store import open_scan as open_scan, repair_scan as repair_scan, verify_scan as verify_scan
