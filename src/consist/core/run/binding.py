"""Binding a step's arguments: which parameter of the function receives what.

``Tracker.run`` (and everything built on it: scenario steps, sweeps, steps
fed by the coupler) calls the step function with keyword arguments only.
Each parameter is filled from the first source that supplies it:

1. ``runtime_kwargs[name]`` (passed, never hashed). When it shadows a named
   input or a config key, the run records the parameter in
   ``run.meta["runtime_overrides"]``, because the hashed value did not
   reach the function.
2. The injected :class:`~consist.core.run.runner.RunContext` when ``name`` is the
   context parameter (``inject_context``); an input or runtime kwarg of the
   same name is refused.
3. The named input ``inputs[name]`` (unless ``input_binding="none"``): a
   ``Path`` or the loaded table (see ``ExecutionOptions.input_binding``).
   If the config also has a key ``name``, the input is passed and a
   ``UserWarning`` says so (the config value stays recorded and hashed).
4. The parameter named ``config`` receives the whole config: the pydantic
   model itself when the run's config is a model *and* the parameter is
   annotated with its class (or a base class, also inside ``Optional`` /
   a union), otherwise the recorded config as a dict (``{}`` without one).
5. ``config[name]``: the config key of the same name. A pydantic config
   binds by field (the model's attribute, whose JSON form is what the run
   records; a field whose serializer changes the value binds the recorded,
   serialized value instead).
6. The parameter's default.

A required parameter that no source supplies raises ``TypeError`` when the
step is declared, before anything is written. Positional-only parameters are
never bound by name (a required one is refused the same way). A function
with ``**kwargs`` receives every config key that no named parameter takes
(named inputs still bind to named parameters only).

Every config value passed is a deep copy of what the run recorded, so a step
that mutates its arguments can never change the record (provenance never
lies: what executed is what was recorded).
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import os
import sys
import typing
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

CONFIG_PARAM = "config"
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass(frozen=True)
class InputBinding:
    """One named input passed to a parameter."""

    param: str
    key: str
    load: bool


@dataclass(frozen=True)
class BindingPlan:
    """Which parameter receives what, decided when the step is declared.

    Attributes
    ----------
    fn_name:
        The function's name (for messages).
    inputs:
        Named inputs passed to parameters.
    config_keys:
        ``(keyword, config key)`` pairs; the keyword is a named parameter or,
        for a function with ``**kwargs``, any key that no parameter takes.
    whole_config:
        The parameter receiving the whole config (``None`` if there is none).
    whole_config_model:
        Whether that parameter receives the pydantic model instead of the dict.
    model:
        The pydantic config object as passed (``None`` for a dict config).
    model_attrs:
        Config key -> attribute of ``model`` that holds its typed value.
    context:
        The parameter receiving the ``RunContext`` (``None`` if none).
    runtime:
        Names of the runtime kwargs (all of them are passed).
    runtime_overrides:
        Parameters where a runtime kwarg shadows a named input or a config key.
    input_shadows:
        Config keys not passed because an input of the same name was.
    """

    fn_name: str
    inputs: tuple[InputBinding, ...] = ()
    config_keys: tuple[tuple[str, str], ...] = ()
    whole_config: str | None = None
    whole_config_model: bool = False
    model: Any = None
    model_attrs: Mapping[str, str] | None = None
    context: str | None = None
    runtime: tuple[str, ...] = ()
    runtime_overrides: tuple[str, ...] = ()
    input_shadows: tuple[str, ...] = ()

    def call_kwargs(
        self,
        recorded_config: Mapping[str, Any],
        *,
        input_value: Callable[[InputBinding], Any],
        runtime_kwargs: Mapping[str, Any],
        context: Callable[[], Any] | None = None,
    ) -> dict[str, Any]:
        """The keyword arguments of the call.

        Parameters
        ----------
        recorded_config:
            The config exactly as the run recorded it (``record.config``).
        input_value:
            Returns the value of one input binding (a path or loaded data).
        runtime_kwargs:
            The step's runtime kwargs.
        context:
            Builds the ``RunContext`` (called only when the plan injects one).

        Returns
        -------
        dict
            Parameter name -> value.
        """
        kwargs: dict[str, Any] = {}
        model = None
        if self.model is not None and (self.whole_config_model or self.model_attrs):
            model = self.model.model_copy(deep=True)
        attrs = self.model_attrs or {}
        for keyword, key in self.config_keys:
            attr = attrs.get(key)
            if model is not None and attr is not None:
                kwargs[keyword] = getattr(model, attr)
            else:
                kwargs[keyword] = _copy(recorded_config[key])
        if self.whole_config is not None:
            if self.whole_config_model and model is not None:
                kwargs[self.whole_config] = model
            else:
                kwargs[self.whole_config] = _copy(dict(recorded_config))
        for binding in self.inputs:
            kwargs[binding.param] = input_value(binding)
        for name in self.runtime:
            kwargs[name] = runtime_kwargs[name]
        if self.context is not None:
            if context is None:
                raise RuntimeError(f"{self.fn_name}() asks for a run context but none was given")
            kwargs[self.context] = context()
        return kwargs


class BindingPlanner:
    """Plans bindings for step functions (caching their signatures)."""

    def __init__(self) -> None:
        self._signatures: dict[Any, inspect.Signature] = {}

    def signature(self, fn: Callable[..., Any]) -> inspect.Signature:
        """``inspect.signature(fn)``, cached per callable."""
        try:
            sig = self._signatures.get(fn)
        except TypeError:  # unhashable callable
            return inspect.signature(fn)
        if sig is None:
            sig = inspect.signature(fn)
            self._signatures[fn] = sig
        return sig

    def plan(
        self,
        fn: Callable[..., Any],
        *,
        config: Any,
        input_keys: Iterable[str],
        input_binding: str,
        runtime_kwargs: Mapping[str, Any],
        inject_context: bool | str,
    ) -> BindingPlan:
        """Decide which parameter of ``fn`` receives what (see the module docs).

        Parameters
        ----------
        fn:
            The step function.
        config:
            The run's config as given (dict, pydantic model or None).
        input_keys:
            Keys of the named inputs (``inputs={name: ...}``).
        input_binding:
            ``ExecutionOptions.binding`` (``"auto"``, ``"paths"``,
            ``"loaded"`` or ``"none"``).
        runtime_kwargs:
            The step's runtime kwargs.
        inject_context:
            ``ExecutionOptions.inject_context``.

        Returns
        -------
        BindingPlan

        Raises
        ------
        TypeError
            When a required parameter has no source, a required parameter is
            positional-only, a runtime kwarg or the context has no parameter
            to go to.
        ValueError
            When the context parameter is also given as an input or a
            runtime kwarg.

        Warns
        -----
        UserWarning
            When a named input and a config key share a parameter (the input
            is passed).
        """
        params = self.signature(fn).parameters
        fn_name = getattr(fn, "__name__", None) or type(fn).__name__
        named = {
            n: p for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        }
        var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
        positional_only = [n for n, p in params.items() if p.kind is p.POSITIONAL_ONLY]
        runtime = tuple(runtime_kwargs)
        inputs = set(input_keys) if input_binding != "none" else set()
        model, config_keys, model_attrs = _config_keys(config)
        config_set = set(config_keys)
        ctx = _ctx_name(inject_context)

        for key in runtime:
            if key not in named and not var_kw:
                raise TypeError(
                    f"runtime_kwargs passes {key!r} but {fn_name}() has no such parameter "
                    f"(parameters: {list(named)})"
                )
        if ctx is not None:
            if ctx not in named and not var_kw:
                raise TypeError(
                    f"inject_context asks to pass {ctx!r} but {fn_name}() has no such parameter; "
                    f"add a parameter {ctx!r} or set inject_context to the name of one"
                )
            for source, names in (("runtime_kwargs", runtime), ("inputs", inputs)):
                if ctx in names:
                    raise ValueError(
                        f"{source} has {ctx!r}, the parameter that receives the run context "
                        "(inject_context); rename one of them"
                    )

        bound_inputs: list[InputBinding] = []
        bound_config: list[tuple[str, str]] = []
        whole: str | None = None
        overrides: list[str] = []
        shadows: list[str] = []
        missing: list[str] = []
        for name, p in named.items():
            in_config = name in config_set and name != CONFIG_PARAM
            if name in runtime:
                if name in inputs or in_config:
                    overrides.append(name)
            elif name == ctx:
                pass
            elif name in inputs:
                bound_inputs.append(InputBinding(name, name, _load(input_binding, p)))
                if in_config:
                    shadows.append(name)
            elif name == CONFIG_PARAM:
                whole = name
            elif in_config:
                bound_config.append((name, name))
            elif p.default is p.empty:
                missing.append(name)
        if var_kw:
            taken = set(named) | {ctx}
            for key in config_keys:
                if key in taken:
                    continue
                if key in runtime:
                    overrides.append(key)
                    continue
                bound_config.append((key, key))

        required_positional = [
            n for n in positional_only if params[n].default is inspect.Parameter.empty
        ]
        if required_positional:
            raise TypeError(
                f"{fn_name}() has required positional-only parameter(s) {required_positional} "
                "(before '/' in its signature); Consist passes arguments by name only, so make "
                "them regular parameters or give them defaults"
            )
        if missing:
            raise TypeError(_missing_message(fn_name, missing, config_keys, inputs, ctx))
        if shadows:
            warnings.warn(
                f"{fn_name}(): {shadows} are both named inputs and config keys; each such "
                "parameter receives the input, not the config value (which stays recorded "
                "in the run's config and identity). Rename the input or the config key.",
                UserWarning,
                stacklevel=_user_stacklevel(),
            )
        whole_model = (
            whole is not None and model is not None and _accepts(fn, named[whole], type(model))
        )
        used_attrs = {key: model_attrs[key] for _, key in bound_config if key in model_attrs}
        return BindingPlan(
            fn_name=fn_name,
            inputs=tuple(bound_inputs),
            config_keys=tuple(bound_config),
            whole_config=whole,
            whole_config_model=whole_model,
            model=model if (whole_model or used_attrs) else None,
            model_attrs=used_attrs or None,
            context=ctx,
            runtime=runtime,
            runtime_overrides=tuple(sorted(set(overrides))),
            input_shadows=tuple(shadows),
        )


def _config_keys(config: Any) -> tuple[Any, list[str], dict[str, str]]:
    """(pydantic model or None, the keys the run will record, key -> model attribute).

    Anything that is neither a mapping nor a model yields no keys; the
    config's own validation rejects it with a clearer message.
    """
    if config is None:
        return None, [], {}
    if hasattr(config, "model_dump") and callable(config.model_dump):
        dumped = config.model_dump(mode="json")
        if not isinstance(dumped, Mapping):
            return None, [], {}
        return config, [k for k in dumped if isinstance(k, str)], _model_attrs(config, dumped)
    if isinstance(config, Mapping):
        return None, [k for k in config if isinstance(k, str)], {}
    return None, [], {}


def _model_attrs(model: Any, dumped: Mapping[str, Any]) -> dict[str, str]:
    """Recorded key -> attribute name, for keys whose attribute serializes to the recorded value."""
    from pydantic_core import to_jsonable_python

    cls = type(model)
    names: dict[str, str] = {}
    fields = dict(getattr(cls, "model_fields", {}) or {})
    fields.update(getattr(cls, "model_computed_fields", {}) or {})
    for name, info in fields.items():
        names.setdefault(name, name)
        alias = getattr(info, "serialization_alias", None) or getattr(info, "alias", None)
        if isinstance(alias, str):
            names.setdefault(alias, name)
    for name in getattr(model, "__pydantic_extra__", None) or {}:
        names.setdefault(name, name)
    attrs: dict[str, str] = {}
    for key, recorded in dumped.items():
        attr = names.get(key)
        if attr is None:
            continue
        try:
            value = getattr(model, attr)
            same = to_jsonable_python(value) == recorded
        except Exception:  # a value pydantic cannot serialize alone: use the recorded one
            same = False
        if same:
            attrs[key] = attr
    return attrs


def _accepts(fn: Callable[..., Any], param: inspect.Parameter, model_cls: type) -> bool:
    """Whether ``param``'s annotation accepts an instance of ``model_cls``."""
    annotation = param.annotation
    if annotation is param.empty:
        return False
    if isinstance(annotation, str):
        # An unresolvable forward reference stays a string, compared by name below.
        with contextlib.suppress(Exception):
            annotation = typing.get_type_hints(fn).get(param.name, annotation)
    if isinstance(annotation, str):
        words = annotation.replace("[", " ").replace("]", " ").replace("|", " ").replace(",", " ")
        names = {w.strip("'\" ").rsplit(".", 1)[-1] for w in words.split()}
        return any(c.__name__ in names for c in model_cls.__mro__ if c is not object)
    for candidate in _flatten(annotation):
        if isinstance(candidate, type) and candidate is not object:
            try:
                if issubclass(model_cls, candidate):
                    return True
            except TypeError:
                continue
    return False


def _flatten(annotation: Any) -> list[Any]:
    """The members of a union / Optional / Annotated annotation (itself otherwise)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _flatten(typing.get_args(annotation)[0])
    args = typing.get_args(annotation)
    if origin is typing.Union or (args and type(annotation).__name__ == "UnionType"):
        out: list[Any] = []
        for arg in args:
            out.extend(_flatten(arg))
        return out
    return [annotation]


def _load(input_binding: str, param: inspect.Parameter) -> bool:
    return input_binding == "loaded" or (input_binding == "auto" and wants_table(param))


def wants_table(param: inspect.Parameter | None) -> bool:
    """Whether a parameter is annotated as a DataFrame (also ``DataFrame | None``)."""
    if param is None or param.annotation is param.empty:
        return False
    annotation = param.annotation
    if isinstance(annotation, str):
        return "DataFrame" in annotation
    candidates = [annotation, *typing.get_args(annotation)]
    return any(getattr(c, "__name__", "") == "DataFrame" for c in candidates)


def _ctx_name(inject: bool | str) -> str | None:
    if inject is True:
        return "ctx"
    if isinstance(inject, str) and inject:
        return inject
    return None


def _copy(value: Any) -> Any:
    """A deep copy, so the step cannot change what the run recorded."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    try:
        return copy.deepcopy(value)
    except Exception:  # an uncopyable value: pass it as recorded
        return value


def _missing_message(
    fn_name: str, missing: list[str], config_keys: list[str], inputs: set[str], ctx: str | None
) -> str:
    first = missing[0]
    sources = [
        f"config keys {sorted(config_keys)[:20]}" if config_keys else "config (none given)",
        f"named inputs {sorted(inputs)}" if inputs else "named inputs (none bound)",
        "runtime_kwargs",
    ]
    if ctx is not None:
        sources.append(f"the injected context {ctx!r}")
    return (
        f"{fn_name}() needs {missing}, which no source supplies (looked in "
        f"{', '.join(sources)}). Add config={{{first!r}: ...}}, inputs={{{first!r}: path}} "
        f"or runtime_kwargs={{{first!r}: ...}}, or give the parameter a default"
    )


def _user_stacklevel() -> int:
    """The stacklevel of the first frame outside the consist package (for warnings)."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR + os.sep):
        frame = frame.f_back
        level += 1
    return level
