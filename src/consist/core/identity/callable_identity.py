"""Code identity of a callable: what defines it and digests of its code.

Used by the ``callable_module`` and ``callable_source`` modes of
:class:`~consist.core.identity.code_identity.CodeIdentityResolver` (see that
module's docstring for what each mode hashes). This module unwraps the callable
to the object whose code defines it, finds its defining file or source text,
and digests its loaded bytecode (code objects, constants and names; never line
numbers or file paths).
"""

from __future__ import annotations

import functools
import inspect
import json
import linecache
import os
import sys
import textwrap
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from consist.core.identity.code_identity_fingerprint import _Fingerprint, _Key, _stat_key
from consist.core.identity.code_identity_records import CodeIdentity, CodeIdentityError
from consist.core.identity.hashing import hash_bytes, hash_file

# Versioned, NUL-terminated domain tag (see code_identity for the others).
_BYTECODE_DOMAIN = b"consist-bytecode-v1\0"
_MAX_UNWRAP = 100

_NATIVE_CALLABLES = (
    types.FunctionType,
    types.BuiltinFunctionType,
    types.BuiltinMethodType,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
    types.MethodWrapperType,
    types.ClassMethodDescriptorType,
)


def _unwrap_callable(fn: Callable[..., Any]) -> Any:
    """The object whose code defines ``fn``.

    Unwraps ``functools.partial`` / ``partialmethod`` (bound arguments are not
    code), decorators that set ``__wrapped__``, bound methods, static and class
    methods, and callable instances (their type's ``__call__``). Stops at a
    class, a native callable, or after a cycle or ``_MAX_UNWRAP`` steps.

    Parameters
    ----------
    fn : callable
        The callable being run.

    Returns
    -------
    object
        Usually a plain function; otherwise a class, a built-in, or the last
        object reached.
    """
    chain: list[Any] = []
    obj: Any = fn
    for _ in range(_MAX_UNWRAP):
        if any(seen is obj for seen in chain):
            break
        chain.append(obj)
        if isinstance(obj, functools.partial | functools.partialmethod):
            obj = obj.func
            continue
        if isinstance(obj, types.MethodType | staticmethod | classmethod):
            obj = obj.__func__
            continue
        if isinstance(obj, type):
            return obj
        try:
            wrapped = obj.__dict__.get("__wrapped__") if hasattr(obj, "__dict__") else None
        except Exception:
            wrapped = None
        if wrapped is not None and callable(wrapped):
            obj = wrapped
            continue
        if isinstance(obj, _NATIVE_CALLABLES):
            return obj
        call = inspect.getattr_static(type(obj), "__call__", None)
        if isinstance(call, types.FunctionType):
            obj = call
            continue
        return obj
    return obj


def _functions_of(value: Any) -> list[types.FunctionType]:
    """Plain functions behind a class attribute (method, static/class method, property)."""
    if isinstance(value, staticmethod | classmethod):
        value = value.__func__
    if isinstance(value, types.FunctionType):
        return [value]
    if isinstance(value, property):
        return [
            f for f in (value.fget, value.fset, value.fdel) if isinstance(f, types.FunctionType)
        ]
    return []


def _code_objects(target: Any) -> tuple[types.CodeType, ...]:
    """The code objects that define ``target`` (a function's, or a class's methods')."""
    if isinstance(target, types.FunctionType):
        return (target.__code__,)
    if isinstance(target, type):
        codes: list[types.CodeType] = []
        for _name, value in sorted(vars(target).items()):
            codes.extend(f.__code__ for f in _functions_of(value))
        return tuple(codes)
    return ()


def _normalize_const(obj: Any) -> Any:
    """JSON-able, hash-seed independent form of a code object constant."""
    if isinstance(obj, types.CodeType):
        return _normalize_code(obj)
    if isinstance(obj, tuple):
        return ["tuple", [_normalize_const(x) for x in obj]]
    if isinstance(obj, frozenset):  # iteration order depends on hash seeds: sort
        return ["frozenset", sorted((_normalize_const(x) for x in obj), key=repr)]
    return [type(obj).__name__, repr(obj)]


def _normalize_code(code: types.CodeType) -> list[Any]:
    """Everything about a code object that affects behaviour; no lines, no file names."""
    return [
        "code",
        code.co_name,
        getattr(code, "co_qualname", code.co_name),
        code.co_argcount,
        code.co_posonlyargcount,
        code.co_kwonlyargcount,
        code.co_flags,
        code.co_code.hex(),
        [_normalize_const(c) for c in code.co_consts],
        list(code.co_names),
        list(code.co_varnames),
        list(code.co_freevars),
        list(code.co_cellvars),
        getattr(code, "co_exceptiontable", b"").hex(),
    ]


def _bytecode_digest(codes: tuple[types.CodeType, ...]) -> str | None:
    """Digest of the loaded bytecode of ``codes``; None when there is none (built-ins)."""
    if not codes:
        return None
    payload = json.dumps([_normalize_code(c) for c in codes], separators=(",", ":"))
    return hash_bytes(_BYTECODE_DOMAIN + payload.encode("ascii"))


def _label(target: Any) -> tuple[str | None, str]:
    """(module name, qualified name) of an unwrapped callable."""
    module = getattr(target, "__module__", None)
    if not isinstance(module, str):
        module = getattr(type(target), "__module__", None)
    qualname = getattr(target, "__qualname__", None)
    if not isinstance(qualname, str):
        qualname = getattr(target, "__name__", None)
    if not isinstance(qualname, str):
        qualname = type(target).__qualname__
    return (module if isinstance(module, str) else None), qualname


def _defining_file(
    target: Any, codes: tuple[types.CodeType, ...], module: str | None, label: str
) -> str:
    """The file whose content defines ``target`` (callable_module)."""
    if codes:
        filename = codes[0].co_filename
        if os.path.isfile(filename):
            return os.path.abspath(filename)
        raise CodeIdentityError(
            f"code_identity='callable_module': {label} was defined in {filename!r}, "
            "which is not a file on disk (an interactive session, a notebook cell or "
            "exec'd code). Use code_identity='callable_source' (needs retrievable "
            "source) or 'repo_git', or move the function into a module file."
        )
    mod = sys.modules.get(module) if module else None
    filename = getattr(mod, "__file__", None)
    if isinstance(filename, str) and os.path.isfile(filename):
        return os.path.abspath(filename)
    raise CodeIdentityError(
        f"code_identity='callable_module': cannot locate the file that defines {label} "
        "(a built-in, or defined interactively). Use code_identity='repo_git', or "
        "wrap the call in a function defined in a module file."
    )


@dataclass(eq=False)
class _CallableEntry:
    """What was hashed for one callable, behind its fingerprint.

    ``last_key`` / ``last_result`` memoise the resolver's last identity built
    from this entry (keyed by the extra dependency digests).
    """

    target: Any
    codes: tuple[types.CodeType, ...]
    fingerprint: _Fingerprint
    payload: dict[str, Any]
    details: dict[str, Any]
    last_key: tuple[tuple[str, str], ...] | None = None
    last_result: CodeIdentity | None = None


def _describe_callable(
    mode: str, target: Any, codes: tuple[types.CodeType, ...], window_ns: int
) -> _CallableEntry:
    """Hash what defines ``target`` under a callable mode.

    Parameters
    ----------
    mode : {"callable_module", "callable_source"}
        ``callable_module`` hashes the defining file, ``callable_source`` the
        dedented source text; both fold in the bytecode digest of ``codes``.
    target : object
        The unwrapped callable (``_unwrap_callable``).
    codes : tuple of code objects
        ``_code_objects(target)``.
    window_ns : int
        Racy window of the fingerprint.

    Returns
    -------
    _CallableEntry
        The digest pre-image (``payload``), the ``details`` (payload plus the
        file path) and a fingerprint of the file that was read.

    Raises
    ------
    CodeIdentityError
        If the defining file (``callable_module``) or the source
        (``callable_source``) cannot be found.
    """
    t0 = time.time_ns()
    fp = _Fingerprint(window_ns)
    module, qualname = _label(target)
    label = f"{module}.{qualname}" if module else qualname
    code_digest = _bytecode_digest(codes)
    if mode == "callable_module":
        path = _defining_file(target, codes, module, label)
        before = _stat_key(path)
        file_digest = hash_file(path)
        fp.add_read_stat(path, before, t0)
        payload = {
            "module": module,
            "qualname": qualname,
            "file_digest": file_digest,
            "code_digest": code_digest,
        }
        details = {**payload, "file": path}
        return _CallableEntry(target, codes, fp, payload, details)

    # callable_source
    try:
        given = codes[0].co_filename if codes else inspect.getsourcefile(target)
    except TypeError:
        given = None
    source_file: str | None = None
    before: _Key = None
    if given and os.path.isfile(given):
        source_file = os.path.abspath(given)
        before = _stat_key(source_file)
        # linecache trusts (size, mtime) only: force a re-read of the real file.
        linecache.cache.pop(given, None)
        linecache.cache.pop(source_file, None)
    else:
        fp.trusted = False  # the source lives in memory only: not cacheable
    try:
        source = inspect.getsource(target)
    except (OSError, TypeError) as exc:
        raise CodeIdentityError(
            f"code_identity='callable_source': cannot retrieve the source of {label} "
            f"({exc}). Built-ins and code typed into an interactive session have no "
            "source, and a module file edited since import no longer matches the "
            "loaded function (reload it); otherwise use code_identity='repo_git' or "
            "define the function in a file."
        ) from None
    if source_file is not None:
        fp.add_read_stat(source_file, before, t0)
    text = textwrap.dedent(source)
    payload = {
        "module": module,
        "qualname": qualname,
        "source_digest": hash_bytes(text.encode("utf-8", "surrogatepass")),
        "code_digest": code_digest,
    }
    details = {**payload, "file": source_file}
    return _CallableEntry(target, codes, fp, payload, details)
