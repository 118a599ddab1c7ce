"""Lossless codec for nested Python state: arrays as safetensors tensors, the rest as JSON.

:func:`encode_tree` splits an object into ``tensors`` (name -> numpy array, for a safetensors
file) and a JSON ``skeleton``; :func:`decode_tree` rebuilds it exactly: the same types, the
same values bit for bit (NaN payloads and -0.0 included), dict key order, tuples vs lists.
It serves the coordinators' states (``LCState``, ``ADMMState``, ``JointADMMState``,
``SLRState``, ``APGDSSMState``), their history records, ``SolveResult``, every Θ of
:mod:`compressopt.projections` and the compressions themselves.

Supported: None, bool, int, float (NaN with its payload, ±inf), str, bytes, list, tuple,
dict and OrderedDict (any encodable keys), set/frozenset, range, numpy arrays and scalars,
other array libraries through a registered hook (:func:`register_array_hook`;
:mod:`compressopt.dnn` registers torch tensors), and the NamedTuple, dataclass and Enum
classes of the allow-list: every such class defined in :mod:`compressopt.projections` and
:mod:`compressopt.solvers`, plus those added with :func:`register_type`. Types are resolved
by name in the allow-list only; nothing is ever imported from a name read from a file.
Shared references are stored once per use (not aliased on decoding).

The skeleton is JSON: a plain JSON value stands for itself (a JSON list is a Python list);
every other node is an object ``{"t": kind, ...}``.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import importlib
import json
import math
import os
import pkgutil
import struct
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from compressopt.errors import CorruptFileError, FormatVersionError
from compressopt.storage.container import read_safetensors, to_array, write_safetensors

__all__ = [
    "FORMAT",
    "VERSION",
    "allowed_types",
    "decode_tree",
    "encode_tree",
    "load_tree",
    "register_array_hook",
    "register_type",
    "save_tree",
    "tree_from_bytes",
    "tree_to_bytes",
]

FORMAT = "compressopt.tree"
VERSION = 1
MAX_DEPTH = 200
#: numpy dtypes safetensors stores
ARRAY_DTYPES = frozenset({"bool", "uint8", "int8", "uint16", "int16", "uint32", "int32",
                          "uint64", "int64", "float16", "float32", "float64"})


class ArrayHook(NamedTuple):
    """How arrays of another library are stored: as a numpy array plus JSON metadata."""

    name: str
    matches: Callable[[Any], bool]
    encode: Callable[[Any], tuple[np.ndarray, dict]]
    decode: Callable[[np.ndarray, dict], Any]


_HOOKS: dict[str, ArrayHook] = {}
_EXTRA_TYPES: dict[str, type] = {}
_ALLOWED: dict[str, type] | None = None


def register_array_hook(name: str, matches: Callable[[Any], bool],
                        encode: Callable[[Any], tuple[np.ndarray, dict]],
                        decode: Callable[[np.ndarray, dict], Any]) -> None:
    """Store arrays for which ``matches(x)`` holds as ``encode(x) -> (numpy array, meta)``
    (meta JSON-serializable) and rebuild them with ``decode(array, meta)``; both must be
    bit-exact. Replaces a hook of the same name."""
    _HOOKS[name] = ArrayHook(name, matches, encode, decode)


def _type_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _storable(cls: type) -> bool:
    return (isinstance(cls, type) and (dataclasses.is_dataclass(cls) or issubclass(cls, enum.Enum)
            or (issubclass(cls, tuple) and hasattr(cls, "_fields"))))


def register_type(cls: type) -> type:
    """Add a NamedTuple, dataclass or Enum class to the allow-list (usable as a decorator).

    Raises
    ------
    TypeError
        `cls` is none of these.
    """
    if not _storable(cls):
        raise TypeError(f"{cls!r} is not a NamedTuple, dataclass or Enum class")
    _EXTRA_TYPES[_type_name(cls)] = cls
    return cls


def allowed_types() -> dict[str, type]:
    """The allow-list, name -> class: the NamedTuple, dataclass and Enum classes defined in
    :mod:`compressopt.projections` and :mod:`compressopt.solvers`, and the registered ones."""
    global _ALLOWED
    if _ALLOWED is None:
        found: dict[str, type] = {}
        for pkg_name in ("compressopt.projections", "compressopt.solvers"):
            pkg = importlib.import_module(pkg_name)
            mods = [pkg] + [importlib.import_module(f"{pkg_name}.{m.name}")
                            for m in pkgutil.iter_modules(pkg.__path__)]
            for mod in mods:
                for obj in vars(mod).values():
                    if _storable(obj) and obj.__module__.startswith("compressopt."):
                        found[_type_name(obj)] = obj
        _ALLOWED = found
    return {**_ALLOWED, **_EXTRA_TYPES}


# ------------------------------------------------------------------------------ encoding


class _Encoder:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.tensors: dict[str, np.ndarray] = {}
        self.allowed = allowed_types()

    def array(self, a: np.ndarray) -> str:
        if a.dtype.name not in ARRAY_DTYPES:
            raise TypeError(f"cannot store an array of dtype {a.dtype}")
        key = f"{self.prefix}{len(self.tensors)}"
        self.tensors[key] = a if a.flags.c_contiguous else a.copy(order="C")  # keeps 0-d
        return key

    def node(self, x: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise TypeError(f"nesting deeper than {MAX_DEPTH} levels (a cycle?)")
        d = depth + 1
        t = type(x)
        if x is None or t in (bool, int, str):
            return x
        if t is float:
            if math.isfinite(x):
                return x  # JSON keeps finite floats exactly (shortest repr)
            return {"t": "float", "bits": struct.unpack("<Q", struct.pack("<d", x))[0]}
        if isinstance(x, np.ndarray):
            return {"t": "ndarray", "r": self.array(x)}
        if isinstance(x, np.generic):
            return {"t": "npscalar", "r": self.array(np.asarray(x))}
        for hook in _HOOKS.values():
            if hook.matches(x):
                a, meta = hook.encode(x)
                return {"t": "hook", "h": hook.name, "r": self.array(a), "m": meta}
        if isinstance(x, enum.Enum):
            return {"t": "enum", "c": self._cls(t), "v": x.name}
        if isinstance(x, tuple) and hasattr(x, "_fields"):
            return {"t": "namedtuple", "c": self._cls(t), "v": [self.node(v, d) for v in x]}
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            fields = {f.name: self.node(getattr(x, f.name), d)
                      for f in dataclasses.fields(x) if f.init}
            return {"t": "dataclass", "c": self._cls(t), "v": fields}
        if t is list:
            return [self.node(v, d) for v in x]
        if t is tuple:
            return {"t": "tuple", "v": [self.node(v, d) for v in x]}
        if t in (dict, OrderedDict):  # e.g. a torch state_dict
            return {"t": "dict" if t is dict else "odict", "k": [self.node(k, d) for k in x],
                    "v": [self.node(v, d) for v in x.values()]}
        if t in (set, frozenset):
            return {"t": t.__name__, "v": [self.node(v, d) for v in x]}
        if t is range:
            return {"t": "range", "v": [x.start, x.stop, x.step]}
        if t in (bytes, bytearray):
            return {"t": t.__name__, "r": self.array(np.frombuffer(bytes(x), np.uint8))}
        raise TypeError(f"cannot store an object of type {t.__module__}.{t.__qualname__} "
                        "(not an array, a builtin container or an allow-listed class; see "
                        "compressopt.storage.tree.register_type)")

    def _cls(self, cls: type) -> str:
        name = _type_name(cls)
        if self.allowed.get(name) is not cls:
            raise TypeError(f"{name} is not in the allow-list of storable classes; "
                            "register it with compressopt.storage.tree.register_type")
        return name


def encode_tree(obj: Any, *, prefix: str = "") -> tuple[dict[str, np.ndarray], Any]:
    """Split `obj` into arrays and a JSON skeleton (see the module docstring).

    Parameters
    ----------
    obj : the object to store.
    prefix : prepended to the tensor names (``prefix + "0"``, ``prefix + "1"``, ...), so
        several trees can share one safetensors file.

    Returns
    -------
    (tensors, skeleton) : name -> C-contiguous numpy array, and a JSON-serializable value
        (``json.dumps(skeleton, allow_nan=False)`` works).

    Raises
    ------
    TypeError
        A value of a type the codec does not store (a function, a class outside the
        allow-list, a complex array, a tensor without a registered hook...).

    Examples
    --------
    >>> from compressopt.projections import Pruned
    >>> tensors, skel = encode_tree({"theta": Pruned(np.zeros(2)), "mu": 0.5, "k": (1, 2)})
    >>> decode_tree(tensors, skel)
    {'theta': Pruned(values=array([0., 0.])), 'mu': 0.5, 'k': (1, 2)}
    """
    enc = _Encoder(prefix)
    return enc.tensors, enc.node(obj)


# ------------------------------------------------------------------------------ decoding


class _Decoder:
    def __init__(self, tensors: Mapping[str, Any]) -> None:
        self.tensors = tensors
        self.allowed = allowed_types()

    def array(self, key: Any) -> np.ndarray:
        if not isinstance(key, str) or key not in self.tensors:
            raise CorruptFileError(f"the skeleton names a missing tensor {key!r}")
        return self.tensors[key]

    def cls(self, name: Any, check: Callable[[type], bool]) -> type:
        cls = self.allowed.get(name) if isinstance(name, str) else None
        if cls is None or not check(cls):
            raise CorruptFileError(f"unknown or disallowed type {name!r} in the skeleton")
        return cls

    def node(self, s: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise CorruptFileError(f"skeleton nested deeper than {MAX_DEPTH} levels")
        d = depth + 1
        if s is None or isinstance(s, bool | int | float | str):
            return s
        if isinstance(s, list):
            return [self.node(v, d) for v in s]
        if not isinstance(s, dict) or not isinstance(s.get("t"), str):
            raise CorruptFileError(f"malformed skeleton node {str(s)[:80]!r}")
        kind = s["t"]
        f = getattr(self, f"_{kind}", None)
        if f is None:
            raise CorruptFileError(f"unknown skeleton node kind {kind!r}")
        return f(s, d)

    def _items(self, s: dict, d: int, key: str = "v") -> list[Any]:
        v = s.get(key)
        if not isinstance(v, list):
            raise CorruptFileError(f"malformed {s['t']!r} node")
        return [self.node(x, d) for x in v]

    def _float(self, s: dict, d: int) -> float:
        bits = s.get("bits")
        if type(bits) is not int or not 0 <= bits < 1 << 64:
            raise CorruptFileError(f"bad float bits {bits!r}")
        return struct.unpack("<d", struct.pack("<Q", bits))[0]

    def _ndarray(self, s: dict, d: int) -> np.ndarray:
        return self.array(s.get("r"))

    def _npscalar(self, s: dict, d: int) -> np.generic:
        a = self.array(s.get("r"))
        if a.ndim:
            raise CorruptFileError("a numpy scalar must be a 0-d tensor")
        return a[()]

    def _hook(self, s: dict, d: int) -> Any:
        hook = _HOOKS.get(s.get("h"))
        if hook is None:
            raise CorruptFileError(f"the file holds {s.get('h')!r} arrays, which need their "
                                   "hook (for torch: import compressopt.dnn)")
        meta = s.get("m")
        if not isinstance(meta, dict):
            raise CorruptFileError("malformed array hook metadata")
        return hook.decode(self.array(s.get("r")), meta)

    def _enum(self, s: dict, d: int) -> enum.Enum:
        cls = self.cls(s.get("c"), lambda c: issubclass(c, enum.Enum))
        try:
            return cls[s.get("v")]
        except KeyError:
            raise CorruptFileError(f"{cls.__name__} has no member {s.get('v')!r}") from None

    def _namedtuple(self, s: dict, d: int) -> tuple:
        cls = self.cls(s.get("c"), lambda c: issubclass(c, tuple))
        vals = self._items(s, d)
        if len(vals) != len(cls._fields):
            raise CorruptFileError(f"{cls.__name__} has {len(cls._fields)} fields, the file "
                                   f"{len(vals)}")
        return cls(*vals)

    def _dataclass(self, s: dict, d: int) -> Any:
        cls = self.cls(s.get("c"), dataclasses.is_dataclass)
        v = s.get("v")
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        if not isinstance(v, dict) or set(v) != names:
            got = sorted(v) if isinstance(v, dict) else v
            raise CorruptFileError(f"{cls.__name__}: fields {got!r} do not match {sorted(names)}")
        try:
            return cls(**{k: self.node(x, d) for k, x in v.items()})
        except (TypeError, ValueError) as e:
            if isinstance(e, CorruptFileError):
                raise
            raise CorruptFileError(f"{cls.__name__} rejects the stored fields: {e}") from e

    def _tuple(self, s: dict, d: int) -> tuple:
        return tuple(self._items(s, d))

    def _dict(self, s: dict, d: int) -> dict:
        keys, vals = self._items(s, d, "k"), self._items(s, d, "v")
        if len(keys) != len(vals):
            raise CorruptFileError("a dict node has as many keys as values")
        try:
            return dict(zip(keys, vals, strict=True))
        except TypeError as e:
            raise CorruptFileError(f"unhashable dict key: {e}") from e

    def _odict(self, s: dict, d: int) -> OrderedDict:
        return OrderedDict(self._dict(s, d))

    def _set(self, s: dict, d: int) -> set:
        return set(self._items(s, d))

    def _frozenset(self, s: dict, d: int) -> frozenset:
        return frozenset(self._items(s, d))

    def _range(self, s: dict, d: int) -> range:
        v = s.get("v")
        if not (isinstance(v, list) and len(v) == 3 and all(type(i) is int for i in v)) or not v[2]:
            raise CorruptFileError(f"bad range {v!r}")
        return range(*v)

    def _bytes(self, s: dict, d: int) -> bytes:
        return self.array(s.get("r")).tobytes()

    def _bytearray(self, s: dict, d: int) -> bytearray:
        return bytearray(self._bytes(s, d))


def decode_tree(tensors: Mapping[str, Any], skeleton: Any) -> Any:
    """Inverse of :func:`encode_tree`.

    Raises
    ------
    CorruptFileError
        A malformed skeleton, a missing tensor, a type outside the allow-list, or an array
        hook that is not registered.
    """
    return _Decoder(tensors).node(skeleton)


# ------------------------------------------------------------------------------ files


def tree_to_bytes(obj: Any, metadata: Mapping[str, Any] | None = None) -> bytes:
    """`obj` as a safetensors file: its arrays as tensors, ``__metadata__["compressopt"]`` the
    JSON ``{"format": "compressopt.tree", "version": 1, "skeleton": ..., "metadata": ...}`` and
    ``__metadata__["sha256"]`` the SHA-256 of that JSON's UTF-8 bytes and the data section.

    Raises
    ------
    TypeError
        As :func:`encode_tree`, or `metadata` is not JSON-serializable.
    """
    tensors, skel = encode_tree(obj)
    head = {"format": FORMAT, "version": VERSION, "skeleton": skel,
            "metadata": dict(metadata or {})}
    try:
        text = json.dumps(head, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise TypeError(f"metadata must be JSON-serializable with finite numbers: {e}") from e
    body = b"".join(np.ascontiguousarray(a).tobytes() for a in tensors.values())
    digest = hashlib.sha256(text.encode() + body).hexdigest()
    return write_safetensors(tensors, {"compressopt": text, "sha256": digest})


def tree_from_bytes(data: bytes) -> tuple[Any, dict[str, Any]]:
    """Inverse of :func:`tree_to_bytes`: (the object, the metadata).

    Raises
    ------
    CorruptFileError
        Not a readable safetensors file of a tree, a checksum mismatch (truncated or modified),
        or as :func:`decode_tree`.
    FormatVersionError
        Another version of the tree format.
    """
    meta, entries = read_safetensors(data)
    if set(meta) != {"compressopt", "sha256"}:
        raise CorruptFileError("not a compressopt tree file")
    body = memoryview(data)[8 + int.from_bytes(data[:8], "little"):]
    if hashlib.sha256(meta["compressopt"].encode() + body).hexdigest() != meta["sha256"]:
        raise CorruptFileError("checksum mismatch: the file is corrupted")
    try:
        head = json.loads(meta["compressopt"])
    except json.JSONDecodeError as e:  # pragma: no cover - the checksum matched
        raise CorruptFileError(f"not a compressopt tree file: {e}") from e
    if not isinstance(head, dict) or head.get("format") != FORMAT:
        raise CorruptFileError("not a compressopt tree file")
    if head.get("version") != VERSION:
        raise FormatVersionError(f"tree format version {head.get('version')!r}; this "
                                 f"compressopt reads version {VERSION}")
    tensors = {name: to_array(e) for name, e in entries.items()}
    extra = head.get("metadata")
    return decode_tree(tensors, head.get("skeleton")), extra if isinstance(extra, dict) else {}


def save_tree(path: str | os.PathLike, obj: Any,
              metadata: Mapping[str, Any] | None = None) -> int:
    """Write :func:`tree_to_bytes` atomically to `path`; returns the bytes written."""
    from compressopt.storage.atomic import atomic_write

    data = tree_to_bytes(obj, metadata)
    atomic_write(path, data)
    return len(data)


def load_tree(path: str | os.PathLike) -> tuple[Any, dict[str, Any]]:
    """Read a file written by :func:`save_tree`: (the object, the metadata)."""
    with open(path, "rb") as f:
        return tree_from_bytes(f.read())
