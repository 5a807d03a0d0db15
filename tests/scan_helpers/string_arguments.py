"""`python -m scan_helpers.string_arguments`: call every experiment with each numeric default
replaced by its string (traced only: nothing compiles) and print, as JSON, the ones that are
not refused with an `InputError`/`InputTypeError` naming the argument. Run without pytest's
jaxtyping import hook, which would refuse annotated arguments first (users have no hook)."""

import json

import jax

from jaxfeat import experiments
from jaxfeat._checks import InputError, InputTypeError

KEY = jax.random.key(0)


def _outcome(exp, param, value) -> str | None:
    try:
        jax.eval_shape(lambda k: exp.fn(k, **(dict(exp.defaults) | {param: str(value)})), KEY)
    except (InputError, InputTypeError) as e:
        return None if param in str(e) else f"message does not name it: {e}"
    except Exception as e:  # noqa: BLE001 - the point: anything else is reported
        return f"{type(e).__name__}: {str(e)[:150]}"
    return "accepted"


if __name__ == "__main__":
    bad = {}
    for name in experiments.names():
        exp = experiments.get(name)
        for param, value in sorted(exp.defaults.items()):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                if (why := _outcome(exp, param, value)) is not None:
                    bad[f"{name}.{param}"] = why
    print(json.dumps(bad))
