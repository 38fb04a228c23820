import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(1)  # robust on a loaded 2-core machine; OMP oversubscription is catastrophic


def cli_workspace(root, image_shape=(16, 16, 3)):
    """A model folder (tiny random U-Net) and content/style folders of two random images each, under ``root``."""
    import numpy as np
    from PIL import Image
    from diffstyle_lab.models import tiny_unet
    from diffstyle_lab.faces.architecture import export
    export(tiny_unet(seed=0), root / "model")
    rng = np.random.RandomState(0)
    for d in ("content", "style"):
        (root / d).mkdir()
        for i in range(2):
            Image.fromarray((rng.rand(*image_shape) * 255).astype(np.uint8)).save(root / d / f"{d[0]}{i}.png")
    return root


@pytest.fixture
def tiny():
    from diffstyle_lab import tiny_model
    return tiny_model(seed=0)


@pytest.fixture
def images():
    g = torch.Generator().manual_seed(0)
    return torch.rand(2, 3, 16, 16, generator=g) * 2 - 1


class CallCounter:
    """Counts U-Net sub-module calls: full stock forwards, down paths and up paths."""

    def __init__(self, unet):
        self.unet = unet
        self.counts = {"conv_in": 0, "mid": 0, "up0": 0}
        self.handles = [unet.conv_in.register_forward_hook(self._inc("conv_in")),
                        unet.mid_block.register_forward_hook(self._inc("mid")),
                        unet.up_blocks[0].register_forward_hook(self._inc("up0"))]

    def _inc(self, k):
        def fn(m, a, o):
            self.counts[k] += 1
        return fn

    def close(self):
        for h in self.handles:
            h.remove()


@pytest.fixture
def counter():
    made = []

    def make(unet):
        c = CallCounter(unet)
        made.append(c)
        return c
    yield make
    for c in made:
        c.close()


# hypothesis profiles for tests/test_properties.py: "ci" (the default, bounded) and "long"
# (pytest tests/test_properties.py --hypothesis-profile=long: ≥ 10,000 generated cases in all)
try:
    from hypothesis import HealthCheck, settings as _hyp

    _quiet = [HealthCheck.too_slow, HealthCheck.data_too_large]
    _hyp.register_profile("ci", max_examples=25, deadline=None, derandomize=True, database=None, print_blob=True,
                          suppress_health_check=_quiet)
    _hyp.register_profile("long", max_examples=1000, deadline=None, database=None, print_blob=True,
                          suppress_health_check=_quiet)
    _hyp.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
except ImportError:            # hypothesis is a dev dependency; test_properties.py fails loudly without it
    pass


def pytest_terminal_summary(terminalreporter):
    """The number of generated cases test_properties.py ran (the long run's figure)."""
    import sys
    cases = getattr(sys.modules.get("test_properties"), "CASES", None)
    if cases:
        terminalreporter.write_line(f"property cases run: {sum(cases.values())} {dict(sorted(cases.items()))}")
