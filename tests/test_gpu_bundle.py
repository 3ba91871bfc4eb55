"""The GPU check's bundle (scripts/gpu_bundle.py) and script (scripts/gpu_check.sh), without network or GPU:
what is carried covers what the package and the check need, wheels are chosen by tag, a missing package is
installed and a present one kept, and the files gpu_check.sh names exist."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import gpu_bundle  # noqa: E402

CHECK = (ROOT / "scripts" / "gpu_check.sh").read_text()


def _name(requirement: str) -> str:
    return gpu_bundle.canonical(re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0])


def test_every_runtime_dependency_is_carried_or_expected_on_the_host() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    carried = {gpu_bundle.canonical(d) for d, _, _ in gpu_bundle.PACKAGES}
    host = {gpu_bundle.canonical(d) for d in gpu_bundle.HOST}
    assert not carried & host
    assert "torch" in host and not any(n.startswith(("torch", "nvidia")) and n != "torchmetrics" for n in carried)
    for requirement in project["dependencies"]:
        assert _name(requirement) in carried | host, f"{requirement}: neither carried nor expected on the GPU machine"
    # the test tools gpu_check.sh runs: pytest with the timeout plugin it loads by name
    assert {"pytest", "pytest-timeout", "pluggy", "iniconfig"} <= carried
    assert "-p pytest_timeout" in CHECK and "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1" in CHECK


def test_the_files_gpu_check_names_exist() -> None:
    subprocess.run(["bash", "-n", str(ROOT / "scripts" / "gpu_check.sh")], check=True)
    for path in set(re.findall(r"(?:tests|scripts)/[\w/]+\.(?:py|sh)", CHECK)):
        assert (ROOT / path).is_file(), path
    for path, name in re.findall(r"(tests/\w+\.py)::(\w+)", CHECK):
        assert f"def {name}(" in (ROOT / path).read_text(), f"{path}::{name}"
    bench_fit = (ROOT / "scripts" / "bench_fit.py").read_text()
    for folder in re.findall(r'"(Ta_\w+)"', bench_fit):
        assert f"fitsnap/{folder}" in [rel for rel, _ in gpu_bundle.DATA], folder
    for log in ("environment.log", "tests.log", "bench_bispectrum.log", "bench_ace.log", "bench_fit.log", "summary.md"):
        assert log in CHECK
    assert len(set(re.findall(r"\b\w+\.(?:log|md)\b", CHECK.split("for f in ", 1)[1].split(";", 1)[0]))) <= 8


@pytest.mark.parametrize("filename, version, fits", [
    ("ase-3.29.0-py3-none-any.whl", (3, 11), True),
    ("vesin_torch-0.6.2-py3-none-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl", (3, 13), True),
    ("pyyaml-6.0.4-cp312-cp312-manylinux2014_x86_64.manylinux_2_17_x86_64.whl", (3, 12), True),
    ("pyyaml-6.0.4-cp312-cp312-manylinux2014_x86_64.manylinux_2_17_x86_64.whl", (3, 11), False),
    ("thing-1.0-cp311-abi3-manylinux_2_17_x86_64.whl", (3, 13), True),
    ("thing-1.0-cp311-abi3-manylinux_2_17_x86_64.whl", (3, 10), False),
    ("thing-1.0-cp312-cp312-manylinux_2_17_aarch64.whl", (3, 12), False),
])
def test_wheel_choice_by_tag(filename: str, version: tuple[int, int], fits: bool) -> None:
    assert gpu_bundle.wheel_fits(filename, version) is fits


def _fake_wheel(folder: Path, dist: str, module: str, version: str) -> Path:
    path = folder / f"{dist.replace('-', '_')}-{version}-py3-none-any.whl"
    info = f"{dist.replace('-', '_')}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{module}.py", "VALUE = 42\n")
        zf.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")
    return path


def test_install_keeps_what_the_host_has_and_installs_the_rest(tmp_path: Path, capsys) -> None:
    bundle = tmp_path / "bundle"
    (bundle / "wheels").mkdir(parents=True)
    missing = _fake_wheel(bundle / "wheels", "mliap-gpu-check-fake", "mliap_gpu_check_fake", "1.0")
    present = _fake_wheel(bundle / "wheels", "pytest", "pytest_fake_copy", "1.0")
    manifest = {"packages": [
        {"name": "mliap-gpu-check-fake", "import": "mliap_gpu_check_fake", "version": "1.0", "requirement": ">=1",
         "wheels": [{"file": missing.name}]},
        {"name": "pytest", "import": "pytest", "version": "1.0", "requirement": ">=7", "wheels": [{"file": present.name}]},
    ], "host": [{"name": "numpy", "import": "numpy"}], "data": [], "data_root": "data"}
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    target = tmp_path / "site"
    assert gpu_bundle.install(target, bundle) == 0
    printed = capsys.readouterr().out
    assert (target / "mliap_gpu_check_fake.py").is_file()
    assert not (target / "pytest_fake_copy.py").exists()          # the host's pytest (>= 7) is kept
    assert re.search(r"bundle mliap-gpu-check-fake\s+1.0 \(missing on the host\)", printed)
    assert re.search(r"host\s+pytest\s+\S+ \(meets >=7\)", printed)


@pytest.mark.slow
def test_a_built_bundle_has_a_wheel_for_each_python_and_its_data(tmp_path) -> None:
    """Builds the bundle (from PyPI; slow tier) unless ``gpu_bundle/`` is built already."""
    bundle = ROOT / "gpu_bundle"
    if not (bundle / "manifest.json").is_file():
        bundle = tmp_path / "gpu_bundle"
        subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_bundle.py"), "build", "--out", str(bundle)],
                       check=True, timeout=600)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert [p["name"] for p in manifest["packages"]] == [d for d, _, _ in gpu_bundle.PACKAGES]
    for entry in manifest["packages"]:
        for wheel in entry["wheels"]:
            assert (bundle / "wheels" / wheel["file"]).is_file(), wheel["file"]
        if entry["name"] in ("exceptiongroup", "tomli"):
            continue
        for minor in (11, 12, 13):
            assert any(gpu_bundle.wheel_fits(w["file"], (3, minor)) for w in entry["wheels"]), (entry["name"], minor)
    for item in manifest["data"]:
        assert (bundle / item["path"]).stat().st_size == item["bytes"]
    total = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())
    assert total < gpu_bundle.MAX_BUNDLE_BYTES
