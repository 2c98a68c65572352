"""A pickle reader that can only build numpy arrays and plain containers.

Third-party checkpoints (Flax .ckpt, Caffe2 .pkl) are pickles, and unpickling an arbitrary pickle
runs arbitrary code. `restricted_load` admits only the globals a pickled tree of numpy arrays needs;
any other global (os.system, builtins.eval, a class with a malicious __reduce__...) is refused before
it is imported, so nothing it names ever runs.
"""
from __future__ import annotations

import codecs
import collections
import pickle
from typing import IO, Any

import numpy as np

from vad.errors import VadError

_CONTAINERS = {"dict": dict, "list": list, "tuple": tuple, "set": set, "frozenset": frozenset}

# (module, name) -> the object. Resolved here rather than by importing the named module, so that
# numpy 1.x pickles (`numpy.core.multiarray`) load on numpy 2 (`numpy._core`) without the
# deprecated-module warning, and Python-2 pickles (`__builtin__`, Caffe2) need no import mapping.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    **{(module, "_reconstruct"): np._core.multiarray._reconstruct for module in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(module, "scalar"): np._core.multiarray.scalar for module in ("numpy.core.multiarray", "numpy._core.multiarray")},
    # protocol 5 pickles rebuild arrays from an out-of-band buffer
    **{(module, "_frombuffer"): np._core.numeric._frombuffer for module in ("numpy.core.numeric", "numpy._core.numeric")},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    **{(module, name): obj for module in ("builtins", "__builtin__") for name, obj in _CONTAINERS.items()},
    ("collections", "OrderedDict"): collections.OrderedDict,
    # Python 3 writes a numpy array's raw buffer as _codecs.encode(str, "latin1") under protocols
    # 0-2; it only turns text into bytes.
    ("_codecs", "encode"): codecs.encode,
}


class RefusedGlobal(VadError, pickle.UnpicklingError):
    """The pickle references a global outside ALLOWED_GLOBALS."""


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise RefusedGlobal(
                f"refused to load global {module}.{name}: this pickle may only contain numpy arrays "
                f"and plain containers (dict, list, tuple, set, OrderedDict)"
            ) from None


def restricted_load(fileobj: IO[bytes], encoding: str = "ASCII") -> Any:
    """Unpickle `fileobj` admitting only numpy arrays and builtin containers.

    `encoding="latin1"` reads Python-2 pickles whose numpy buffers are byte strings.
    Raises RefusedGlobal (a pickle.UnpicklingError) naming the first refused global.
    """
    return RestrictedUnpickler(fileobj, encoding=encoding).load()
