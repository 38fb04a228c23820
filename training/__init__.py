"""How the shipped default model is made: training, the prepared GPU run, scoring on ground-truth pairs, contact
sheets, sample checks and the emergence curves behind its model card.

Release tooling, kept apart from the product as diffusers keeps ``examples/`` apart from ``src/``: it is not
installed with ``diffstyle_lab`` (a checkout has it) and nothing in the package imports it. Run its modules from
the repository root, e.g. ``python -m training.train --help`` or ``python -m training.groundtruth_eval MODEL``.
"""
