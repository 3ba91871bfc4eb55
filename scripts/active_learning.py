"""Active learning on the built-in EMT Cu/Cu–Ni system: γ (MaxVol) selection against random selection, three
seeds, ``model=snap_quadratic`` (docs/uncertainty.md, "Active learning", quotes the output).

    python scripts/active_learning.py --seeds 0 1 2 --out outputs/active_learning
    cp outputs/active_learning/active_learning.png docs/active_learning.png

The same as ``mliap_torch active-learn`` (:mod:`mliap_torch.cli.active_learn`; ``--help`` lists the options).
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mliap_torch.cli.active_learn import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
