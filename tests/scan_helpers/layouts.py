"""Run under 8 host devices: print max |difference| of the toy scan across chunk sizes and device
counts, against chunk 64 on 1 device (JSON on the last line)."""

import json

import jax
import numpy as np

from jaxfeat import scan
from scan_helpers.toy import GRID, toy

ref = scan(toy, GRID, 40, chunk_size=64, devices=jax.devices()[:1], progress=False)
diffs = {}
for devices in (1, 8):
    for chunk in (1, 7, 64):
        ds = scan(toy, GRID, 40, chunk_size=chunk, devices=jax.devices()[:devices], progress=False)
        diffs[f"{devices}x{chunk}"] = {
            k: float(np.max(np.abs(ds[k].values.astype(float) - ref[k].values.astype(float))))
            for k in ("v", "trace", "u", "count")
        }
print(json.dumps({"n_devices": len(jax.devices()), "diffs": diffs}))
