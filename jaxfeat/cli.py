"""Command line: `jaxfeat list | run NAME | plot PATH | info PATH | repair PATH | bench | demo |
hermite ACT`."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from ._checks import InputError, InputTypeError
from ._compile_cache import default_cache_dir, enable_compile_cache
from ._version import __version__


def _demo(args) -> int:
    import jax

    from . import _demo, plotting

    widths = _int_list("--widths", args.widths)
    _check_figure_path("--out", args.out)
    print("Hermite coefficients c_k = E[σ(z) He_k(z)/√(k!)], z ~ N(0,1):")
    print(_demo.coefficient_table(degree=args.degree))
    t0 = time.perf_counter()
    res = _demo.random_features_demo(jax.random.key(args.seed), widths, args.seeds)
    print(
        f"\nrandom-features ensemble: widths {widths} × {args.seeds} seeds, one compiled program "
        f"({time.perf_counter() - t0:.1f} s incl. compile)"
    )
    for w, mse in zip(widths, res["test_mse"]):
        print(
            f"  width {w:5d}: excess test MSE {mse.mean():.4f} ± {mse.std() / len(mse) ** 0.5:.4f}"
        )
    print(f"figure: {plotting.ensemble_predictions(res, widths, args.out)}")
    return 0


def _int_list(flag: str, text: str) -> list[int]:
    try:
        values = [int(w) for w in text.split(",")]
    except ValueError:
        raise InputError(f"{flag} must be comma-separated integers, got {text!r}") from None
    if not values or min(values) <= 0:
        raise InputError(f"{flag} must be positive integers, got {text!r}")
    return values


_FIGURE_FORMATS = (".png", ".pdf", ".svg")


def _check_figure_path(flag: str, path: str) -> str:
    """A figure path that can be written: known extension, directory created, writable; checked
    before any computing."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in _FIGURE_FORMATS:
        raise InputError(f"{flag} must end in {', '.join(_FIGURE_FORMATS)}, got {path!r}")
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        probe = os.path.join(folder, f".jaxfeat-probe-{os.getpid()}")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as e:
        raise InputError(f"{flag} {path!r} cannot be written: {e.strerror or e}") from None
    return path


def _hermite(args) -> int:
    from . import activations

    act = activations.get(args.activation)
    c = act.hermite_coefficients(args.degree, args.scale)
    for k, v in enumerate(c):
        print(f"{k:3d} {v: .15e}")
    return 0


def _list(args) -> int:
    from . import experiments

    if args.experiment is not None:
        print(_parameters(experiments.get(args.experiment)))
        return 0
    for name in experiments.names():
        e = experiments.get(name)
        presets = ", ".join(f"{p} ({_preset_size(e.presets[p])})" for p in e.presets)
        print(f"{name:16s} {e.description}\n{'':16s} presets: {presets}")
    return 0


def _parameters(e) -> str:
    """An experiment's parameters with their defaults (which grid axes it vmaps, which are
    dynamic sizes) and what each preset sets beyond them."""
    show = lambda v: json.dumps(v, ensure_ascii=False, default=repr)  # noqa: E731
    defaults = dict(e.defaults or {})
    lines = [f"{e.name}: {e.description}", "parameters (default):"]
    pad = max(map(len, defaults), default=0)
    for k, v in defaults.items():
        tags = [
            t for t, on in (("vmapped", k in e.dynamic), ("a dynamic size", k in e.capacity)) if on
        ]
        lines.append(f"  {k:{pad}s} = {show(v)}" + (f"  ({', '.join(tags)})" if tags else ""))
    for name, preset in e.presets.items():
        sets = [f"{k}={show(v)}" for k, v in e.non_defaults(preset.get("set", {})).items()]
        lines.append(f"preset {name}: grid {show(preset['grid'])}, {preset['seeds']} seeds; "
                     f"sets {', '.join(sets) or 'nothing else'}")  # fmt: skip
    return "\n".join(lines)


def _preset_size(preset) -> str:
    points = 1
    for v in preset["grid"].values():
        points *= len(v)
    return f"{points} points × {preset['seeds']} seeds"


def _parse_set(items) -> tuple[dict, dict]:
    """`key=value` pairs: a comma-separated value is a grid axis, a single value a fixed parameter;
    values are JSON when they parse (numbers, lists, null), strings otherwise."""
    fixed, grid = {}, {}
    for item in items or []:
        if "=" not in item:
            raise InputError(f"--set expects key=value, got {item!r}")
        k, v = item.split("=", 1)
        if not v.strip():
            raise InputError(f"--set {item!r} has no value")
        parts = [_value(x) for x in v.split(",")] if "," in v and not v.startswith("[") else None
        if parts is not None:
            grid[k.strip()] = parts
        else:
            fixed[k.strip()] = _value(v)
    return fixed, grid


def _value(text: str):
    import json

    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text.strip()


def _run(args) -> int:
    from . import experiments

    exp = experiments.get(args.experiment)
    grid, params, seeds = _preset_plan(exp, args)
    out = os.path.normpath(args.out or os.path.join("out", f"{exp.name}-{args.preset}.zarr"))
    figure = os.path.splitext(out)[0] + ".png"
    width = _figure_width(args.width)
    if not args.no_plot and not args.dry_run:
        _check_figure_path("--out", figure)
    _configure_jax(args)
    from ._scan import plan_summary, scan

    common: dict[str, Any] = dict(out=out, params=params, seed=args.seed, workers=args.workers)
    common |= dict(chunk_size=args.chunk_size, memory_budget=args.memory_budget)
    common["buckets"] = args.buckets
    common["devices"] = _devices(args.devices)
    if args.dry_run:
        print(plan_summary(exp, grid, seeds, **common))
        return 0
    t0 = time.perf_counter()
    ds = scan(
        exp,
        grid,
        seeds,
        **common,
        overwrite=args.overwrite,
        allow_code_change=args.allow_code_change,
        progress=not args.quiet,
        cache_dir=None,  # set by --cache-dir in _configure_jax
    )
    print(f"{exp.name}: {_timing_line(ds, time.perf_counter() - t0)}; dataset: {out}")
    if not args.no_plot:
        from . import plotting

        print(f"figure: {plotting.draw(ds, figure, exp, width=width)}")
    return 0


def _figure_width(text: str | None):
    """`--width` ("column", "page" or inches) as `jaxfeat.plotting.draw` takes it, checked
    before anything is computed; None when not given."""
    if text is None:
        return None
    from . import plotting

    try:
        value: str | float = float(text)
    except ValueError:
        value = text
    try:
        plotting.figure_width(value)
    except InputError as e:  # "width must be …": the flag's name
        raise InputError(f"--{e}") from None
    return value


def _timing_line(ds, wall: float) -> str:
    """ "S seeds × P grid points in T s (tracing, compiling, computing)"."""
    a = ds.attrs
    return (
        f"{ds.sizes['seed']} seeds × {_npoints(ds)} grid points in {wall:.1f} s (tracing "
        f"{a['trace_seconds']:.1f} s, compiling {a['compile_seconds']:.1f} s, computing "
        f"{a['compute_seconds']:.1f} s)"
    )


def _preset_plan(exp, args) -> tuple[dict, dict, int]:
    """(grid, fixed parameters, seeds) of `--preset` overridden by `--set` and `--seeds`; one
    `--set` value for one of the preset's axes keeps the axis, with that value."""
    if args.preset not in exp.presets:
        raise InputError(
            f"unknown preset {args.preset!r} for {exp.name}; known: {', '.join(exp.presets)}"
        )
    preset = exp.presets[args.preset]
    fixed, grid_over = _parse_set(args.set)
    for k in list(fixed):
        if k in preset["grid"]:
            grid_over[k] = [fixed.pop(k)]
    grid = {**preset["grid"], **grid_over}
    params = {k: v for k, v in preset.get("set", {}).items() if k not in grid} | fixed
    seeds = args.seeds if args.seeds is not None else preset["seeds"]
    return grid, params, seeds


def _configure_jax(args) -> None:
    pin_cpus(args.cpus)
    import jax

    if args.x64:
        jax.config.update("jax_enable_x64", True)
    enable_compile_cache(compilation_cache_dir(args.cache_dir))
    if args.distributed:
        jax.distributed.initialize()


def pin_cpus(value: str | int | None) -> list[int] | None:
    """`--cpus`: `auto` (jaxfeat's default, already applied at import: the CPUs free at start),
    `all` (unpinned) or a number of CPUs to pin to (`jaxfeat.config`). Must run before JAX
    starts its CPU backend, whose thread pools are sized from the affinity mask. Measured in
    `benchmarks/results/busy_machine-cpu.json`. None: leave the import's choice."""
    if value is None:
        return None
    from . import _cpus

    try:
        return _cpus.config(value)
    except InputError as e:
        raise InputError(f"--{e}") from None


def compilation_cache_dir(flag: str | None) -> str | None:
    """Where `jaxfeat run` keeps JAX's persistent compilation cache, so that rerunning a command
    loads its programs instead of compiling them: `--cache-dir`, else `default_cache_dir()`
    (`$JAXFEAT_CACHE_DIR`, else `$XDG_CACHE_HOME/jaxfeat/xla`, `~/.cache/jaxfeat/xla`); "off"
    disables it. JAX keys entries by program, backend, versions and CPU target, so a stale
    entry is never used."""
    if flag:
        return None if flag == "off" else flag
    return default_cache_dir()


def _npoints(ds) -> int:
    n = 1
    for d in ds.dims:
        if d in ds.coords and d != "seed" and d in ds["diverged"].dims:
            n *= ds.sizes[d]
    return n


def _devices(spec):
    if spec is None:
        return None
    import jax

    local = jax.local_devices()
    try:
        count = int(spec)
    except ValueError:
        raise InputError(f"--devices must be a device count, got {spec!r}") from None
    if not 1 <= count <= len(local):
        raise InputError(
            f"--devices must be between 1 and {len(local)} (local devices), got {count}"
        )
    return local[:count]


def _open(path, verify=True):
    from ._scan.store import open_scan

    return open_scan(path, verify=verify)


def _plot(args) -> int:
    from . import experiments, plotting

    path = os.path.normpath(args.path)
    out = args.out or os.path.splitext(path)[0] + ".png"
    _check_figure_path("--out", out)
    width = _figure_width(args.width)
    ds = _open(path)
    name = ds.attrs.get("experiment")
    exp = experiments.get(name) if name in experiments.names() else None
    print(f"figure: {plotting.draw(ds, out, exp, width=width)}")
    return 0


def _info(args) -> int:
    """Configuration, progress and integrity; exit status 0 intact, 1 damaged (the summary
    line last), 2 not a readable jaxfeat store (`main`'s InputError)."""
    from ._scan.store import verify_scan

    path = os.path.normpath(args.path)
    v = verify_scan(path, full=args.verify)
    if v.layout:  # labels may be wrong: report, serve nothing
        for rel, why in sorted(v.layout.items()):
            print(f"  damaged label/metadata file: {rel}: {why}")
        print(v.summary())
        return 1
    ds = _open(path, verify=args.verify)
    _describe(ds)
    _chunk_report(path, v, args.verify)
    print(ds)
    print(v.summary())
    return 0 if v.intact else 1


def _describe(ds) -> None:
    import json

    cfg = json.loads(ds.attrs["jaxfeat_config"])
    print(f"experiment: {cfg['experiment']} — {ds.attrs.get('description', '')}")
    print(f"grid: {json.dumps(cfg['grid'])}")
    print(f"fixed: {json.dumps(cfg['params'])}")
    derived = _derived_sizes(cfg)
    if derived:
        print(f"derived: {derived}")
    print(f"seeds: {cfg['seeds']} (base key {cfg['key']}), chunks of {ds.attrs.get('chunk_size')}")
    runs, diverged = int(ds["finished"].size), int(ds["diverged"].sum())
    print(
        f"runs (grid point × seed): {ds.attrs['seeds_finished']}/{runs} finished; "
        f"diverged: {diverged}"
    )
    print(
        f"written by jaxfeat {ds.attrs.get('jaxfeat_version')} (code "
        f"{ds.attrs.get('jaxfeat_code')}), jax {ds.attrs.get('jax_version')} "
        f"on {ds.attrs.get('devices')}"
    )


def _derived_sizes(cfg: dict) -> str | None:
    """'dim = width = round(ratio·n) = 62, 125, 250 at n = 250, 500, 1000' for a scan whose
    `dim`/`width` are None in the config and follow `ratio` (spikes, equivalence)."""
    params, grid = cfg.get("params", {}), cfg.get("grid", {})
    ratio = params.get("ratio")
    sizes = [k for k in ("dim", "width") if k in params and params[k] is None]
    ns = grid.get("n", [params.get("n")])
    if not isinstance(ratio, (int, float)) or not sizes or not all(isinstance(n, int) for n in ns):
        return None
    from .experiments.spikes import ratio_size

    values = ", ".join(str(ratio_size(ratio, n)) for n in ns)
    return f"{' = '.join(sizes)} = round(ratio·n) = {values} at n = {', '.join(map(str, ns))}"


def _chunk_report(path, v, verify) -> None:
    """Finished, damaged, unfinished and held chunks of the store at `path` (`v`: its
    `verify_scan`), and the code that computed them."""
    from ._scan.store import describe_chunk, layout

    attrs = layout(path)
    if "static_points" not in attrs:
        return
    total = int(attrs["chunks_total"])
    checked = "verified by checksum" if verify else "sizes checked (--verify: checksums)"
    print(
        f"chunks finished: {len(v.ok) + len(v.unverifiable)}/{total} ({checked}); "
        f"damaged: {len(v.damaged)}; unfinished: {len(v.unfinished)}"
    )
    for (s, c), why in sorted(v.damaged.items()):
        print(f"  damaged: {describe_chunk(attrs, s, c)}: {why}")
    for (s, c), who in sorted(v.locked.items()):
        print(f"  held: {describe_chunk(attrs, s, c)} by {who.get('host')} pid {who.get('pid')}")
    codes = ", ".join(f"{k} ({n} chunks)" for k, n in v.codes.items())
    print(f"computed by code: {codes or '-'}")


def _repair(args) -> int:
    """Restore damaged labels and metadata from the copies made at creation: exit 0 when the
    store's layout is intact afterwards, 1 when some file could not be restored."""
    from ._scan.store import repair_scan

    path = os.path.normpath(args.path)
    restored, failed = repair_scan(path)
    for rel in restored:
        print(f"restored: {rel}")
    for rel, why in sorted(failed.items()):
        print(f"not restored: {rel}: {why}")
    if not restored and not failed:
        print(f"{path}: labels and metadata intact, nothing to repair")
    return 1 if failed else 0


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.fn(args)
    except (InputError, InputTypeError) as e:  # our validation; anything else is a bug
        print(f"jaxfeat: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `jaxfeat info X | head`: the reader left; not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("jaxfeat: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jaxfeat", description=__doc__)
    parser.add_argument("--version", action="version", version=f"jaxfeat {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "list",
        help="experiments with one-line descriptions and their presets; with a NAME, its "
        "parameters, their defaults and what each preset sets",
    )
    p.add_argument("experiment", nargs="?", help="an experiment: list its parameters")
    p.set_defaults(fn=_list)
    _add_run(sub)
    _add_store_tools(sub)
    _add_bench(sub)
    _add_demos(sub)
    return parser


def _add_run(sub) -> None:
    p = sub.add_parser(
        "run", help="run (or resume) an experiment's scan; writes a Zarr store and a figure"
    )
    p.add_argument("experiment")
    p.add_argument(
        "--preset", default="quick", help="quick (default); `jaxfeat list` shows each one's"
    )
    p.add_argument("--seeds", type=int, help="number of seeds (default: the preset's)")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="fixed parameter (alpha=0.3) or grid axis (alpha=0.1,0.2,0.3); repeatable",
    )
    p.add_argument("--out", help="Zarr store (default out/NAME-PRESET.zarr); rerun to resume")
    p.add_argument("--overwrite", action="store_true", help="replace a store holding another scan")
    p.add_argument("--seed", type=int, default=0, help="base PRNG key; seed i uses fold_in(key, i)")
    p.add_argument("--chunk-size", type=int, help="seeds per chunk (default: from --memory-budget)")
    p.add_argument(
        "--memory-budget", default="2GiB", help="device memory of the chunks in flight (2GiB)"
    )
    p.add_argument(
        "--workers", type=int, help="chunks computed at once (default: 2 on a CPU, else 1)"
    )
    p.add_argument("--devices", help="number of local devices to shard over (default: all)")
    p.add_argument(
        "--buckets",
        default="auto",
        help="sample sizes sharing a compiled program: auto (a cost model weighs a compile "
        "against the padded compute), off (one program per value) or K (K programs)",
    )
    p.add_argument(
        "--distributed",
        action="store_true",
        help="call jax.distributed.initialize() (several hosts share one store)",
    )
    _add_run_options(p)


def _add_run_options(p) -> None:
    """`run`'s compute and store options (the plan itself is set by the arguments above)."""
    p.add_argument(
        "--x64",
        action="store_true",
        help="compute in float64 (float32 by default); part of the store's identity",
    )
    p.add_argument(
        "--allow-code-change",
        action="store_true",
        help="continue a store computed by other jaxfeat code (its results will mix)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan (points, seeds, chunks, programs, memory, ETA) and exit",
    )
    p.add_argument(
        "--cache-dir",
        help="persistent compilation cache (default $JAXFEAT_CACHE_DIR or ~/.cache/jaxfeat/xla; "
        "'off' disables it)",
    )
    p.add_argument("--no-plot", action="store_true")
    _add_width(p)
    _add_cpus(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(fn=_run)


def _add_store_tools(sub) -> None:
    p = sub.add_parser("plot", help="figure of a finished (or partial) scan")
    p.add_argument("path")
    p.add_argument("--out", help="figure path (.png or .pdf)")
    _add_width(p)
    p.set_defaults(fn=_plot)
    p = sub.add_parser("info", help="configuration, progress and integrity of a scan store")
    p.add_argument("path")
    p.add_argument(
        "--verify",
        action="store_true",
        help="check every chunk's checksum (default: sizes); exit status 0 intact, 1 damaged, "
        "2 not a readable jaxfeat store",
    )
    p.set_defaults(fn=_info)
    p = sub.add_parser(
        "repair", help="restore a store's damaged labels and metadata from its creation copies"
    )
    p.add_argument("path")
    p.set_defaults(fn=_repair)


def _add_width(p) -> None:
    p.add_argument(
        "--width",
        metavar="column|page|INCHES",
        help="figure width: column (3.5 in, one column of a two-column paper), page (7.0 in) or "
        "inches; the height follows (default: the figure's own size)",
    )


def _bench(args) -> int:
    from . import bench

    # no persistent compilation cache here: compile times are what is measured
    pin_cpus(args.cpus)
    if args.x64:
        import jax

        jax.config.update("jax_enable_x64", True)
    sizes = None
    if args.sizes is not None:
        values = _int_list("--sizes", args.sizes)
        sizes = {name: values for name in (args.names or list(bench.CASES))}
    bench.run_bench(
        args.names, quick=args.quick, sizes=sizes, repeats=args.repeats, out=args.out,
        presets=args.presets,
    )  # fmt: skip
    return 0


def _add_bench(sub) -> None:
    p = sub.add_parser(
        "bench", help="time the kernels against width, seeds and n on this machine (JSON + figure)"
    )
    p.add_argument(
        "names",
        nargs="*",
        help="benchmarks (default: all): population_gradient, population_gradient_seeds, "
        "population_loss, one_step_spikes, one_step_spikes_matrix_free, feature_spectrum, train",
    )
    p.add_argument("--quick", action="store_true", help="small sizes (under 2 minutes on 2 cores)")
    p.add_argument("--sizes", help="comma-separated sizes along each benchmark's axis")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per size (median)")
    p.add_argument("--out", default="out/bench", help="directory for bench-PLATFORM.json/.png")
    p.add_argument("--x64", action="store_true", help="compute in float64 (float32 by default)")
    p.add_argument(
        "--presets",
        metavar="all|none|NAMES",
        help="compile budget: run these experiments' quick presets cold and record compile "
        "seconds per program (default: all for a full run of every benchmark, else none)",
    )
    _add_cpus(p)
    p.set_defaults(fn=_bench)


def _add_cpus(p) -> None:
    p.add_argument(
        "--cpus",
        metavar="auto|all|K",
        help="CPUs to compute on: auto (default: every CPU on a quiet machine, only the free ones "
        "on a busy one, where unpinned XLA threads stall), all (unpinned), or K pinned CPUs",
    )


def _add_demos(sub) -> None:
    p = sub.add_parser("demo", help="print Hermite coefficients; fit and plot a width ensemble")
    p.add_argument("--out", default="out/demo.png", help="figure path (PNG/PDF)")
    p.add_argument("--widths", default="16,64,256", help="comma-separated widths")
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--degree", type=int, default=6)
    p.set_defaults(fn=_demo)
    p = sub.add_parser("hermite", help="Hermite coefficients of a named activation")
    p.add_argument("activation")
    p.add_argument("--degree", type=int, default=10)
    p.add_argument("--scale", type=float, default=1.0)
    p.set_defaults(fn=_hermite)


if __name__ == "__main__":
    sys.exit(main())
