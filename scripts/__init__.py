"""The product's scripts (run from the repository root: ``python scripts/NAME.py`` or ``python -m scripts.NAME``).
A package only so that tests can import them (``from scripts import mutation_run``); not installed."""
