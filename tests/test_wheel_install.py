"""A built wheel carries the configs: installed outside the repository, ``mliap_torch train`` trains the
default model from another folder."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from cli_helpers import ROOT

TRAIN = ["train", "export.lammps=false", "plots=false", "descriptor.twojmax=2", "data.max_configs=40"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    source = tmp_path_factory.mktemp("source") / "mliap_torch"   # setuptools writes build/ into the source
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "outputs", "multirun", "build",
                                                                 "__pycache__", "*.egg-info"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(out),
                           str(source)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = out.glob("mliap_torch-*.whl")
    names = zipfile.ZipFile(path).namelist()
    assert "mliap_torch/configs/train.yaml" in names and "mliap_torch/configs/model/snap_nn.yaml" in names
    assert not [n for n in names if n.startswith(("mliap_torch/benchmarks/", "mlearn_study/"))]   # study code stays out
    return path


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MLIAP_TORCH_CONFIGS")}
    return {**env, "OMP_NUM_THREADS": "1", **extra}


def assert_trained_here(proc: subprocess.CompletedProcess, folder: Path) -> None:
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| test |" in proc.stdout
    (model,) = (folder / "outputs" / "snap_linear").glob("*/model.pt")
    assert (model.parent / "metrics.json").is_file()


def test_wheel_installed_elsewhere_trains_from_another_folder(wheel: Path, tmp_path: Path) -> None:
    """The wheel installed into its own folder (dependencies from this environment) shadows the
    repository's editable install; its console script trains from an unrelated folder."""
    target, work = tmp_path / "site", tmp_path / "work"
    work.mkdir()
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), str(wheel)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    env = clean_env(PYTHONPATH=str(target))
    where = subprocess.run([sys.executable, "-c", "import mliap_torch; print(mliap_torch.__file__)"], env=env,
                           cwd=work, capture_output=True, text=True, timeout=120)
    assert where.stdout.strip().startswith(str(target)), where.stdout + where.stderr
    proc = subprocess.run([sys.executable, str(target / "bin" / "mliap_torch"), *TRAIN], env=env, cwd=work,
                          capture_output=True, text=True, timeout=600)
    assert_trained_here(proc, work)


@pytest.mark.slow
def test_wheel_in_a_fresh_virtual_environment_trains(wheel: Path, tmp_path: Path) -> None:
    """``pip install <wheel>`` into a new virtual environment (dependencies from the package index), then
    ``mliap_torch train`` from another folder."""
    venv, work = tmp_path / "venv", tmp_path / "work"
    work.mkdir()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    proc = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "torch==2.13.0",
                           str(wheel)], capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = subprocess.run([str(venv / "bin" / "mliap_torch"), *TRAIN], env=clean_env(), cwd=work,
                          capture_output=True, text=True, timeout=600)
    assert_trained_here(proc, work)
