"""One-off probes whose results are recorded in the model cards (``diffstyle_lab/data/models/faces32/README.md``,
``data/models/*/README.md``) and ``docs/``: kept so that those numbers can be re-measured, not maintained as
product. Not installed; run from the repository root, e.g. ``python -m research.probe_skip_scaling``.
"""
