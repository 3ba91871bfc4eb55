"""Old import path of the FitSNAP ``.in`` parser, which lives in :mod:`mliap_torch.fitsnap.input`."""
from __future__ import annotations

from ...fitsnap.input import GROUP_SETTINGS, read_fitsnap_input, resolve_data_path, typed_value

__all__ = ["GROUP_SETTINGS", "read_fitsnap_input", "resolve_data_path", "typed_value"]
