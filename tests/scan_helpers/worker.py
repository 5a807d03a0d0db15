"""`python -m scan_helpers.worker OUT CHUNK [PROC NPROC PORT]`: run the toy scan into OUT."""

import sys

if __name__ == "__main__":
    out, chunk = sys.argv[1], int(sys.argv[2])
    if len(sys.argv) > 3:
        import jax

        proc, nproc, port = map(int, sys.argv[3:6])
        jax.distributed.initialize(f"localhost:{port}", num_processes=nproc, process_id=proc)
    from jaxfeat import scan
    from scan_helpers.toy import GRID, toy

    scan(toy, GRID, 40, out=out, chunk_size=chunk, progress=False)
    print("finished", flush=True)
