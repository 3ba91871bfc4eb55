"""Run a FitSNAP input file as it is: read, fit exactly, write FitSNAP's output files (``mliap_torch fitsnap``)."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError, UserError
from ..fitting.exact_fit import FitResult
from .outputs import write_outputs
from .setup import FitSNAPSetup, fitsnap_setup


@dataclass
class FitSNAPRun:
    """Outcome of :func:`run_fitsnap`.

    Attributes:
        setup: what the input describes (potential with the fitted coefficients, data, solver).
        result: the fit (coefficients, metrics, per-stage ``timings`` in seconds).
        files: the written files.
        seconds: wall time of ``read`` (input and data), ``fit`` (descriptors, rows, solve, metrics),
            ``write`` and ``total``.
    """

    setup: FitSNAPSetup
    result: FitResult
    files: list[Path]
    seconds: dict[str, float]


def run_fitsnap(input_file: str | Path, output: str | Path = ".", *, data_path: str | Path | None = None,
                progress: bool | None = None) -> FitSNAPRun:
    """Fit what the FitSNAP input ``input_file`` describes and write its output files into ``output``.

    Args:
        input_file: the ``.in`` file (``[PATH] dataPath`` relative to its folder, as FitSNAP).
        output: folder of the output files (created; FitSNAP writes into the working directory).
        data_path: the folder of group folders instead of ``[PATH] dataPath``.
        progress: progress bar of the descriptor stage (None: when stderr is a terminal).

    Design rows are spilled to a temporary folder for the metrics pass (``keep_rows="disk"``), so memory
    stays at one chunk of rows plus the R factor however large the data set.

    Raises:
        DataError: a missing or unreadable input, an unknown or unsupported section, key or value, or
            bad data; the message names the file, the section and the key.
    """
    t0 = time.perf_counter()
    path = Path(input_file)
    if not path.is_file():
        raise DataError(f"{path}: no such FitSNAP input file")
    try:
        setup = fitsnap_setup(path, data_path=data_path, strict=True)
    except UserError:
        raise
    except (ValueError, OSError) as exc:
        raise DataError(str(exc)) from None
    t1 = time.perf_counter()
    result = setup.fit(progress=progress, keep_rows="disk")
    t2 = time.perf_counter()
    files = write_outputs(setup.potential, result.metrics, setup.settings, output)
    t3 = time.perf_counter()
    return FitSNAPRun(setup, result, files, {"read": t1 - t0, "fit": t2 - t1, "write": t3 - t2, "total": t3 - t0})
