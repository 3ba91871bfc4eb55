#!/usr/bin/env python
"""Build (here) and install (on the GPU machine) the self-contained bundle of ``scripts/gpu_check.sh``.

A GPU machine lent for a check has a ``python3`` with a CUDA torch (and numpy, scipy, h5py, matplotlib,
pytest, lightning, ...) but no ase, vesin-torch or Hydra, no network and no ``../shared`` folder.
``build`` (run here, with network) writes ``gpu_bundle/``:

- ``wheels/``: the pure-Python wheels the package and the chosen tests need, vesin-torch (one
  ``py3-none-manylinux`` wheel holding builds for several torch versions), PyYAML for CPython
  3.10–3.13 (its only binary wheel), and antlr4-python3-runtime 4.9.3 (an sdist on PyPI, built
  into a wheel here). Never torch or nvidia packages; numpy, scipy, h5py and matplotlib are not
  carried either (tens of MB per Python version; the GPU image has them), the check reports them.
- ``data/fitsnap/Ta_Linear_JCP2014`` and ``Ta_Quadratic_JCP2018`` from ``../shared/data`` (1.7 MB: inputs,
  the JSON data and FitSNAP's coefficients and metrics, not its ``*.npy`` design-matrix dumps): the
  FitSNAP Ta examples that ``bench_fit.py`` reads there through ``MLIAP_TORCH_SHARED_DATA``.
- ``manifest.json``: every carried package with its version, wheel files, import name and the
  requirement the host's copy must meet to be used instead (the project's own requirement from
  ``pyproject.toml`` combined with those of the other carried wheels), plus the data files.

``install TARGET`` (run there by gpu_check.sh with the host's ``python3``) keeps every package the
host already has in a good enough version, installs the others from the bundle with
``pip install --no-index --no-deps --target TARGET`` (or unpacks the wheels when pip is missing)
and prints one line per package. TARGET then goes on ``PYTHONPATH``. A virtual environment with
``--system-site-packages`` is not used: the GPU image's ``python3`` is itself a venv
(``/opt/torch/.venv``), and a venv made from a venv sees the base interpreter's site-packages,
not the one holding torch.

Usage::

    python scripts/gpu_bundle.py build [--out gpu_bundle] [--shared ../shared/data]   # here, needs PyPI
    python3 scripts/gpu_bundle.py install /tmp/site [--bundle gpu_bundle]             # on the GPU machine
    python scripts/gpu_bundle.py list [--bundle gpu_bundle]                           # what the manifest holds
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BUNDLE = ROOT / "gpu_bundle"
PYTHON_VERSIONS = ("3.10", "3.11", "3.12", "3.13")
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_24_x86_64", "manylinux_2_28_x86_64")
MAX_BUNDLE_BYTES = 40 * 2**20
"""The bundle must stay well below the 64 MiB that travels to the GPU machine with the working tree."""

# (distribution, import name, fallback pin when the building environment lacks it). Versions are pinned to
# the ones installed where the bundle is built (the versions the test suite passes with), else the fallback.
PACKAGES: list[tuple[str, str, str]] = [
    ("ase", "ase", "3.29.0"),
    ("vesin-torch", "vesin_torch", "0.6.2"),
    ("hydra-core", "hydra", "1.3.2"),
    ("omegaconf", "omegaconf", "2.3.0"),
    ("antlr4-python3-runtime", "antlr4", "4.9.3"),
    ("PyYAML", "yaml", "6.0.2"),
    ("lightning", "lightning", "2.5.0"),
    ("lightning-utilities", "lightning_utilities", "0.14.0"),
    ("torchmetrics", "torchmetrics", "1.6.0"),
    ("fsspec", "fsspec", "2025.3.0"),
    ("tqdm", "tqdm", "4.67.1"),
    ("filelock", "filelock", "3.18.0"),
    ("packaging", "packaging", "24.2"),
    ("typing-extensions", "typing_extensions", "4.13.0"),
    ("pytest", "pytest", "8.3.5"),
    ("pytest-timeout", "pytest_timeout", "2.4.0"),
    ("pluggy", "pluggy", "1.5.0"),
    ("iniconfig", "iniconfig", "2.1.0"),
    ("Pygments", "pygments", "2.19.1"),
    ("exceptiongroup", "exceptiongroup", "1.3.0"),   # pytest on Python 3.10
    ("tomli", "tomli", "2.2.1"),                     # pytest on Python 3.10
]
DOWNLOAD_FOR = {"tomli": "3.10"}
"""Asked for as this CPython (its pure-Python wheel; the newer CPythons get mypyc builds, which tomli's users need not have)."""
SDIST_ONLY = {"antlr4-python3-runtime"}
"""Published as an sdist only: built into a (pure-Python) wheel here."""
HOST = {"torch": "torch", "numpy": "numpy", "scipy": "scipy", "h5py": "h5py", "matplotlib": "matplotlib",
        "sympy": "sympy", "mpmath": "mpmath", "tensorboard": "tensorboard"}  # mpmath: torch needs it through sympy
"""Distribution → import name of what the GPU machine must bring itself (reported, never installed)."""
DATA = [("fitsnap/Ta_Linear_JCP2014", "*.npy"), ("fitsnap/Ta_Quadratic_JCP2018", "*.npy")]
"""(folder under the shared data, files left out) carried for ``bench_fit.py``."""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _packaging():
    """``packaging`` (or the copy vendored in pip) for versions and specifiers, or None."""
    try:
        from packaging.requirements import Requirement
        from packaging.specifiers import SpecifierSet
        from packaging.version import Version
    except ImportError:
        try:
            from pip._vendor.packaging.requirements import Requirement
            from pip._vendor.packaging.specifiers import SpecifierSet
            from pip._vendor.packaging.version import Version
        except ImportError:
            return None
    return Requirement, SpecifierSet, Version


# ----------------------------------------------------------------------------------------------- build


def _pin(dist: str, fallback: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return fallback


def _pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", *args]
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def _wheel_metadata(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        text = zf.read(name).decode()
    return [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")]


def _project_requirements() -> list[str]:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        return []
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return list(project["dependencies"]) + list(project["optional-dependencies"].get("test", []))


def _combined_requirements(wheels: dict[str, list[Path]]) -> dict[str, str]:
    """Per carried package: the specifier a host copy must meet (the project's and the carried wheels' needs)."""
    Requirement, SpecifierSet, _ = _packaging()
    sources = list(_project_requirements())
    for files in wheels.values():
        sources += _wheel_metadata(files[0])
    combined: dict[str, object] = {canonical(d): SpecifierSet() for d in wheels}
    for text in sources:
        req = Requirement(text)
        if req.marker is not None and "extra" in str(req.marker):
            continue
        key = canonical(req.name)
        if key in combined:
            combined[key] = combined[key] & req.specifier
    return {key: str(spec) for key, spec in combined.items()}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(out: Path, shared: Path) -> int:
    if out.exists():
        shutil.rmtree(out)
    wheel_dir = out / "wheels"
    wheel_dir.mkdir(parents=True)
    pins = {dist: _pin(dist, fallback) for dist, _, fallback in PACKAGES}
    platform_args = [arg for p in PLATFORMS for arg in ("--platform", p)]
    common = ["download", "--no-deps", "--only-binary=:all:", "--implementation", "cp", *platform_args,
              "--disable-pip-version-check", "-q", "-d"]
    wheels: dict[str, list[Path]] = {}
    for dist, _, _ in PACKAGES:
        spec = f"{dist}=={pins[dist]}"
        before = set(wheel_dir.iterdir())
        if dist in SDIST_ONLY:
            with tempfile.TemporaryDirectory() as tmp:
                _pip("wheel", "--no-deps", "--no-binary", dist, "--disable-pip-version-check", "-q", "-w", tmp, spec)
                for whl in Path(tmp).glob("*.whl"):
                    shutil.copy2(whl, wheel_dir / whl.name)
        else:
            first = DOWNLOAD_FOR.get(dist, "3.12")
            _pip(*common, str(wheel_dir), "--python-version", first, spec)
            new = set(wheel_dir.iterdir()) - before
            if any("-none-any" not in p.name and "py3-none" not in p.name for p in new):
                for version in PYTHON_VERSIONS:   # a per-version binary wheel: fetch one for each CPython
                    if version != first:
                        _pip(*common, str(wheel_dir), "--python-version", version, spec)
        wheels[dist] = sorted(set(wheel_dir.iterdir()) - before)
        if not wheels[dist]:
            raise SystemExit(f"no wheel for {spec}")
    for path in wheel_dir.iterdir():
        if path.name.lower().startswith(("torch-", "nvidia")):
            raise SystemExit(f"{path.name}: torch and nvidia packages are never carried")
    requirements = _combined_requirements(wheels)
    _, SpecifierSet, Version = _packaging()
    for dist in wheels:
        if not SpecifierSet(requirements[canonical(dist)]).contains(Version(pins[dist]), prereleases=True):
            raise SystemExit(f"carried {dist} {pins[dist]} does not meet {requirements[canonical(dist)]}")

    data_files = []
    for rel, leave_out in DATA:
        src = shared / rel
        if not src.is_dir():
            raise SystemExit(f"{src} is missing: the bundle carries it for bench_fit.py")
        shutil.copytree(src, out / "data" / rel, ignore=shutil.ignore_patterns(leave_out) if leave_out else None)
    for path in sorted((out / "data").rglob("*")):
        if path.is_file():
            data_files.append({"path": str(path.relative_to(out)), "bytes": path.stat().st_size})

    manifest = {
        "built_with": f"Python {sys.version.split()[0]}",
        "python_versions": list(PYTHON_VERSIONS),
        "packages": [{"name": dist, "import": module, "version": pins[dist],
                      "requirement": requirements[canonical(dist)],
                      "wheels": [{"file": p.name, "sha256": _sha256(p)} for p in wheels[dist]]}
                     for dist, module, _ in PACKAGES],
        "host": [{"name": dist, "import": module} for dist, module in HOST.items()],
        "data": data_files,
        "data_root": "data",
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    (out / "README.md").write_text(
        "Built by `python scripts/gpu_bundle.py build`; installed by `scripts/gpu_check.sh` (docs/gpu.md).\n"
        "Ignored by git: name `gpu_bundle` in the device runner's `carry`.\n")
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{out}: {len(list(wheel_dir.iterdir()))} wheels, {len(data_files)} data files, {total / 2**20:.1f} MiB")
    if total > MAX_BUNDLE_BYTES:
        raise SystemExit(f"bundle is {total / 2**20:.1f} MiB, over the {MAX_BUNDLE_BYTES / 2**20:.0f} MiB limit")
    return 0


# --------------------------------------------------------------------------------------------- install


def _wheel_tags(filename: str) -> list[tuple[str, str, str]]:
    """(python, abi, platform) tags of a wheel file name."""
    parts = filename[:-4].split("-")
    pys, abis, plats = parts[-3], parts[-2], parts[-1]
    return [(p, a, pl) for p in pys.split(".") for a in abis.split(".") for pl in plats.split(".")]


def wheel_fits(filename: str, version: tuple[int, int] | None = None) -> bool:
    """Whether a carried wheel installs into this CPython on x86-64 Linux (the tags the bundle holds)."""
    major, minor = version or sys.version_info[:2]
    for py, abi, plat in _wheel_tags(filename):
        if plat != "any" and not plat.endswith("x86_64"):
            continue
        if py in ("py3", f"py{major}") and abi == "none":
            return True
        if py == f"cp{major}{minor}" and abi in (f"cp{major}{minor}", "abi3", "none"):
            return True
        if abi == "abi3" and py.startswith("cp3") and int(py[3:]) <= minor:
            return True
    return False


def host_version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def plan(manifest: dict) -> list[tuple[dict, str, str | None]]:
    """Per carried package: (entry, 'host' or 'bundle', the host's version or None)."""
    tools = _packaging()
    out = []
    for entry in manifest["packages"]:
        have = host_version(entry["name"])
        use = "bundle"
        if have is not None and tools is not None:
            _, SpecifierSet, Version = tools
            try:
                if SpecifierSet(entry["requirement"]).contains(Version(have), prereleases=True):
                    use = "host"
            except Exception:  # noqa: BLE001 - an unparsable host version: use the carried one
                use = "bundle"
        elif have is not None and have == entry["version"]:
            use = "host"
        out.append((entry, use, have))
    return out


def install(target: Path, bundle: Path) -> int:
    manifest = json.loads((bundle / "manifest.json").read_text())
    print(f"python {sys.version.split()[0]} at {sys.executable}")
    if sys.version_info < (3, 11):  # noqa: UP036 - this runs under the GPU machine's python, whatever its version
        print("WARNING: mliap_torch requires Python >= 3.11 (pyproject.toml); carrying on")
    for item in manifest["host"]:
        have = host_version(item["name"])
        print(f"  host   {item['name']:<24} {have or 'MISSING (not carried: the GPU machine must have it)'}")
    chosen: list[Path] = []
    problems = 0
    for entry, use, have in plan(manifest):
        if use == "host":
            print(f"  host   {entry['name']:<24} {have} (meets {entry['requirement'] or 'any'})")
            continue
        files = [w["file"] for w in entry["wheels"] if wheel_fits(w["file"])]
        if not files:
            print(f"  ERROR  {entry['name']:<24} no carried wheel fits Python {sys.version.split()[0]} "
                  f"(carried: {', '.join(w['file'] for w in entry['wheels'])})")
            problems += 1
            continue
        why = f"host has {have}, needs {entry['requirement']}" if have else "missing on the host"
        print(f"  bundle {entry['name']:<24} {entry['version']} ({why})")
        chosen.append(bundle / "wheels" / files[0])
    target.mkdir(parents=True, exist_ok=True)
    if chosen:
        command = [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--no-compile", "--no-cache-dir",
                   "--disable-pip-version-check", "-q", "--target", str(target), *map(str, chosen)]
        try:
            proc = subprocess.run(command, capture_output=True, text=True)
            ok = proc.returncode == 0
            if not ok:
                print(proc.stdout + proc.stderr)
        except OSError as exc:
            ok = False
            print(f"pip failed to start: {exc}")
        if not ok:
            print("pip install failed or pip is missing: unpacking the wheels instead")
            for whl in chosen:
                with zipfile.ZipFile(whl) as zf:
                    zf.extractall(target)
    print(f"installed {len(chosen)} carried wheels into {target}; {problems} problems")
    return 1 if problems else 0


def list_manifest(bundle: Path) -> int:
    manifest = json.loads((bundle / "manifest.json").read_text())
    for entry in manifest["packages"]:
        print(f"{entry['name']}=={entry['version']}  ({len(entry['wheels'])} wheels; host copy used if {entry['requirement'] or 'any'})")
    print(f"{len(manifest['data'])} data files under {bundle / manifest['data_root']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="download the wheels and copy the data (here, with network)")
    b.add_argument("--out", type=Path, default=DEFAULT_BUNDLE)
    b.add_argument("--shared", type=Path,
                   default=Path(os.environ.get("MLIAP_TORCH_SHARED_DATA", ROOT.parent / "shared" / "data")))
    i = sub.add_parser("install", help="install what the host lacks into TARGET (on the GPU machine)")
    i.add_argument("target", type=Path)
    i.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    sl = sub.add_parser("list", help="print the manifest")
    sl.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    args = parser.parse_args(argv)
    if args.command == "build":
        return build(args.out.resolve(), args.shared.resolve())
    if args.command == "install":
        return install(args.target.resolve(), args.bundle.resolve())
    return list_manifest(args.bundle.resolve())


if __name__ == "__main__":
    sys.exit(main())
