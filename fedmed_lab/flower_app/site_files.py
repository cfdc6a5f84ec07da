"""One file of records per hospital: what a SuperNode is pointed at.

A real hospital's Flower client reads its own records from its own disk.
The course draws all five cohorts from one seeded stream, so
:func:`write_site_files` splits the draw into one ``.npz`` file per
hospital, and each client process loads only the file named in its node
config with :func:`load_hospital`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fedmed_lab.data import SiteData
from fedmed_lab.sites import Hospital

_KEYS = ("site_id", "X_train", "y_train", "X_test", "y_test", "speed")


def write_site_files(cohorts: Sequence[SiteData], directory: Path) -> list[Path]:
    """Write each cohort to ``directory/<name>.npz`` and return the paths, in cohort order."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for cohort in cohorts:
        path = directory / f"{cohort.name}.npz"
        np.savez(path, site_id=np.array(cohort.name), X_train=cohort.X_train, y_train=cohort.y_train,
                 X_test=cohort.X_test, y_test=cohort.y_test, speed=np.array(cohort.speed))
        paths.append(path)
    return paths


def load_hospital(path: Path | str) -> Hospital:
    """Load one hospital written by :func:`write_site_files`.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file lacks one of the arrays a hospital needs.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"site file {path} not found; write it with write_site_files first")
    with np.load(path, allow_pickle=False) as data:
        missing = [key for key in _KEYS if key not in data.files]
        if missing:
            raise ValueError(f"site file {path} lacks arrays {missing}; rewrite it with write_site_files")
        return Hospital(str(data["site_id"]), data["X_train"], data["y_train"], data["X_test"], data["y_test"],
                        speed=float(data["speed"]))
