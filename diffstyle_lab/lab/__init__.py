"""The notebooks' helpers: figures, widgets and cached inversions (:mod:`.notebook`) and the runner that
executes ``notebooks/`` with papermill (:mod:`.run_notebooks`, ``python -m diffstyle_lab.lab.run_notebooks``)."""
