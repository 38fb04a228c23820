"""The notebooks' helpers — imported by the notebooks as ``nb`` (:mod:`.notebook`, which re-exports
:mod:`.loading`, :mod:`.figures`, :mod:`.claims` and :mod:`.boxes`) — the runner that executes
``notebooks/`` with papermill (:mod:`.run_notebooks`, ``diffstyle-lab notebooks``; its kernels:
:mod:`.kernel`) and the course site built from the executed notebooks (:mod:`.site`, ``diffstyle-lab site``)."""
