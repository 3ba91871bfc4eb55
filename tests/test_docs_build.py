"""The documentation site (``mkdocs.yml``: the guides in docs/ and the API reference from the docstrings) builds
with ``mkdocs build --strict``: any warning (a broken link, a docstring parameter that is not in the signature, a
page missing from the nav) fails.

mkdocs, mkdocstrings and the theme are in the ``docs`` extra, which the ``test`` extra includes, so
``scripts/setup_env.sh`` installs them. The API pages read the source statically (griffe), importing nothing.
"""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

from conftest import ROOT


def _public_modules() -> set[str]:
    names = set()
    for path in (ROOT / "mliap_torch").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if not any(p.startswith("_") for p in parts):
            names.add(".".join(parts))
    return names


def test_every_public_module_is_in_the_api_reference() -> None:
    documented = set()
    for page in (ROOT / "docs" / "api").glob("*.md"):
        documented |= set(re.findall(r"^::: ([\w.]+)\s*$", page.read_text(encoding="utf-8"), flags=re.M))
    # Packages whose __init__ is empty need no page of their own: their modules are listed.
    missing = {m for m in _public_modules() - documented
               if not (ROOT / m.replace(".", "/") / "__init__.py").is_file()
               or (ROOT / m.replace(".", "/") / "__init__.py").read_text().strip()}
    assert not missing, f"modules without a `::: module` block in docs/api/*.md: {sorted(missing)}"


def test_docs_build_strict(tmp_path) -> None:
    assert importlib.util.find_spec("mkdocs") is not None, \
        "mkdocs is not installed: it is in the docs extra, included in the test extra (bash scripts/setup_env.sh)"
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}       # mkdocs-material's banner about MkDocs 2.0
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{log[-6000:]}"
    assert "WARNING" not in log, log[-6000:]
    models = (site / "api" / "models" / "index.html").read_text(encoding="utf-8")
    assert 'id="mliap_torch.models.potential.Potential"' in models      # the class's own section, from its docstring
    assert 'id="mliap_torch.models.potential.Potential.forward"' in models
    home = (site / "index.html").read_text(encoding="utf-8")
    assert "Differentiable machine-learned interatomic potentials" in home   # README.md is the home page
    assert 'href="docs/' not in home, "README links into docs/ must be rewritten for the site (docs/hooks.py)"
