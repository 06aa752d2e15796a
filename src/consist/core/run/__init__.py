"""Running one step: begin/end and persistence (``lifecycle``), function-shaped
and traced runs (``runner``), parameter binding, the cache lookup and
hydration (``cache``), artifact records (``artifacts``), the active run and
the current-tracker context (``context``)."""
