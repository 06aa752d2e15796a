"""Step name templates (``scenario(name_template=...)``, ``sc.run(name_template=...)``,
``define_step(name_template=...)``).

Placeholders: ``{scenario}``, ``{name}`` (the ``define_step`` name, else the
function's ``__name__``), ``{year}``, ``{iteration}``, ``{stage}``,
``{phase}``. A placeholder whose value is None renders empty, and separators
(``_ - .`` and spaces) left at either end are stripped. Outside a scenario
``{scenario}`` renders empty. Precedence: an explicit ``name``, then the
call's template, then the function's ``define_step`` template, then the
scenario's.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from typing import Any

TEMPLATE_FIELDS = ("scenario", "name", "year", "iteration", "stage", "phase")
_STRIP = "_-. "


def check_name_template(template: Any, param: str = "name_template") -> str | None:
    """Validate a step name template (None passes through).

    Raises
    ------
    TypeError
        If it is not a non-empty string.
    ValueError
        If it is not a valid format string or uses an unknown placeholder.
    """
    if template is None:
        return None
    if not isinstance(template, str) or not template.strip():
        raise TypeError(f"{param} must be a non-empty string, e.g. '{{name}}_{{year}}'")
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise ValueError(f"{param}={template!r} is not a valid format string: {exc}") from exc
    for name in fields:
        base = name.split(".")[0].split("[")[0]
        if base not in TEMPLATE_FIELDS:
            raise ValueError(
                f"{param}={template!r} uses placeholder {{{name}}}; available placeholders: "
                + ", ".join("{" + f + "}" for f in TEMPLATE_FIELDS)
            )
    return template


def render_step_name(
    template: str,
    fn: Callable[..., Any] | None,
    defaults: Mapping[str, Any],
    values: Mapping[str, Any],
    *,
    scenario: str | None = None,
) -> str:
    """Render ``template`` for a call of ``fn``.

    Parameters
    ----------
    template:
        A template accepted by :func:`check_name_template`.
    fn:
        The step function (``{name}`` is its ``define_step`` name, else its
        ``__name__``).
    defaults:
        The function's ``define_step`` metadata.
    values:
        The call's arguments (``year``, ``iteration``, ``stage``, ``phase``;
        a missing or None value falls back to ``defaults``).
    scenario:
        The scenario name, or None outside a scenario.

    Raises
    ------
    ValueError
        If the rendered name is empty.
    """
    base = defaults.get("name") or getattr(fn, "__name__", None) or "step"
    fields: dict[str, Any] = {"scenario": scenario or "", "name": base}
    for name in ("year", "iteration", "stage", "phase"):
        value = values.get(name)
        if value is None:
            value = defaults.get(name)
        fields[name] = "" if value is None else value
    rendered = template.format(**fields).strip(_STRIP)
    if not rendered:
        raise ValueError(f"name_template {template!r} rendered an empty step name")
    return rendered
