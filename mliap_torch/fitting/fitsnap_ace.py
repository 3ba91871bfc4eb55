"""Old import path of FitSNAP's ``[ACE]`` sections, which live in :mod:`mliap_torch.fitsnap.ace`."""
from __future__ import annotations

from ..fitsnap.ace import (
    ENUMERATION_KEYS,
    FITSNAP_ACE_DCUT,
    MODEL_KEYS,
    ace_from_fitsnap,
    fitsnap_ace_functions,
    fitsnap_basis_from_potential,
)

__all__ = ["ENUMERATION_KEYS", "FITSNAP_ACE_DCUT", "MODEL_KEYS", "ace_from_fitsnap", "fitsnap_ace_functions",
           "fitsnap_basis_from_potential"]
