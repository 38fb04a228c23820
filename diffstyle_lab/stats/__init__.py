"""Statistics of h along sampling trajectories: :mod:`.trajectory_norms` (per-sample norms collected by a
sampler callback), :mod:`.estimators` (r_homo, r_hetero, r_alt, r_inject with bootstrap intervals),
:mod:`.bootstrap` (seeded resampling shared by this package and :mod:`diffstyle_lab.evaluate`) and
:mod:`.probe` (how much the output depends on h at each t)."""
