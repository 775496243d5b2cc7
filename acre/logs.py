"""What the command-line tools print besides their own output: acre's progress, and of the libraries
below it only their errors (torchao lists the optional CUDA kernels it cannot load, torch's exporter
its deprecations: neither is something an acre user can act on)."""

from __future__ import annotations

import logging
import warnings

QUIET = ("torchao", "torch.utils._pytree", "torch._export", "coremltools")


def quiet_libraries() -> None:
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
