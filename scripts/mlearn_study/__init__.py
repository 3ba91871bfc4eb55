"""The mlearn benchmark study (Zuo et al., J. Phys. Chem. A 124, 731 (2020)): fits, rows, published
numbers and the Markdown blocks of ``docs/mlearn_benchmark.md``.

Study code, not part of the installed ``mliap_torch`` package (the wheel does not carry it). It is
imported as ``mlearn_study`` with ``scripts/`` on ``sys.path``: the scripts that use it
(``scripts/mlearn_benchmark.py``, ``scripts/mlearn_ablation.py``, ``scripts/learn_hyperparameters.py``)
put it there themselves, and ``tests/conftest.py`` does it for the tests.
"""
