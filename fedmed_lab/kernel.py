"""The course kernel: one Jupyter kernel registered from the course's environment.

Every notebook run (papermill, nbval, the grader) names this kernel
explicitly, never the kernel a notebook's metadata happens to name.
"""

from __future__ import annotations

import sys

KERNEL_NAME = "fedmed-lab"
KERNEL_DISPLAY_NAME = "Python 3 (fedmed-lab)"

# Environment of every course kernel. One BLAS thread keeps floating-point
# sums in the same order on every machine, so stored outputs reproduce. The
# inline backend keeps figures in the notebook. The last three variables stop
# telemetry and update checks of Flower and Ray when a notebook starts them.
KERNEL_ENV = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "PYTHONHASHSEED": "0",
    "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
}


def install_kernel(prefix: str | None = None) -> str:
    """Register the course kernel under ``prefix`` (default: the running environment).

    Returns the directory the kernel spec was written to.
    """
    from ipykernel.kernelspec import install

    return install(
        kernel_name=KERNEL_NAME,
        display_name=KERNEL_DISPLAY_NAME,
        prefix=prefix or sys.prefix,
        env=dict(KERNEL_ENV),
    )
