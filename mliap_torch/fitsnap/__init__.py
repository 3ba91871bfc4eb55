"""FitSNAP compatibility: FitSNAP input files, their data, exact fits and FitSNAP's output files.

============  ===================================================================================
``input``     the ``.in`` parser (:func:`read_fitsnap_input`) and ``[PATH] dataPath`` resolution
``data``      the data of an input: ``[GROUPS]`` under ``dataPath``, ``[ESHIFT]``, weights, splits
``potential`` ``[BISPECTRUM]``/``[ACE]`` + ``[REFERENCE]`` → descriptor, head and ZBL reference
``ace``       FitSNAP's ``[ACE]`` section as an :class:`~mliap_torch.descriptors.ace.ACE` descriptor
``check``     what the exact fit reproduces: sections, keys and values (``strict`` setups)
``setup``     :func:`fitsnap_setup` → :class:`FitSNAPSetup` (``.fit()`` runs the generic exact fit)
``outputs``   ``.snapcoeff``/``.snapparam`` and the metrics table, named by ``[OUTFILE]``
``run``       :func:`run_fitsnap`: an input file end to end (``mliap_torch fitsnap INPUT.in``)
============  ===================================================================================

The solver itself is generic: :func:`mliap_torch.fitting.exact_fit.fit_exact`.
"""
from __future__ import annotations

from .data import read_fitsnap_data
from .input import read_fitsnap_input
from .run import FitSNAPRun, run_fitsnap
from .setup import FitSNAPSetup, fitsnap_setup

__all__ = ["FitSNAPRun", "FitSNAPSetup", "fitsnap_setup", "read_fitsnap_data", "read_fitsnap_input", "run_fitsnap"]
