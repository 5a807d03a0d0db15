"""One vocabulary (DESIGN §8) and the shims that keep the 0.1 spellings working for one release.

Sizes in signatures are `width` (the paper's m, Moniri et al.'s N), `dim` (d) and `n`; output
scales are `"1"`, `"1/sqrt(width)"`, `"1/width"`; the first-layer init is `scheme=`. An old
spelling still works, gives bit-identical results, and warns with a `DeprecationWarning` that
names the new one.
"""

from __future__ import annotations

import warnings

from ._checks import InputError

OUTPUT_SCALES = ("1", "1/sqrt(width)", "1/width")
# 0.1 spellings: nets said "1/sqrt(m)", "1/m"; one_step said "1/sqrt(N)".
OLD_OUTPUT_SCALES = {"1/sqrt(m)": "1/sqrt(width)", "1/m": "1/width", "1/sqrt(N)": "1/sqrt(width)"}


def deprecated(where: str, old: str, new: str, stacklevel: int = 4) -> None:
    """Warn that `old` (a name or a value) of `where` is now spelled `new`. The default
    `stacklevel` points at the user's line when a public function calls a helper here that
    calls this; a public function that calls this directly passes 3."""
    warnings.warn(
        f"{where}: {old} is deprecated, use {new} (renamed in jaxfeat 0.2; the old spelling "
        "will be removed in jaxfeat 0.3)",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


def renamed(where: str, new_name: str, new, old_name: str, old, stacklevel: int = 4):
    """`(name, value)` of an argument renamed from `old_name` to `new_name` (None = not given).

    The old name warns; giving both raises. `name` is the spelling the caller used, so a later
    check's error message names the argument as it was typed. `stacklevel` as in `deprecated`
    (one more for each private frame between the public function and this call).
    """
    if old is None:
        return new_name, new
    if new is not None:
        raise InputError(f"{where}: give {new_name}= only ({old_name}= is its deprecated name)")
    deprecated(where, f"{old_name}=", f"{new_name}=", stacklevel)
    return old_name, old


def output_scale(where: str, spec, allowed=OUTPUT_SCALES):
    """The canonical spelling of an output-scale string (numbers pass through unchanged)."""
    if not isinstance(spec, str):
        return spec
    if spec in OLD_OUTPUT_SCALES:
        new = OLD_OUTPUT_SCALES[spec]
        deprecated(where, f"output_scale={spec!r}", f"output_scale={new!r}")
        spec = new
    if spec not in allowed:
        raise InputError(f"output_scale must be one of {allowed}, got {spec!r}")
    return spec
