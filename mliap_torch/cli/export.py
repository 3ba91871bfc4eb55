"""``mliap_torch export <run folder or model.pt>``: write the LAMMPS files of a saved model."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..export.lammps_export import export_lammps
from ..models.io import load


def find_model(path: Path) -> Path:
    """The model file: ``path`` itself, or ``model.pt`` inside a run folder."""
    if path.is_file():
        return path
    candidate = path / "model.pt"
    if candidate.is_file():
        return candidate
    raise FileNotFoundError(f"{path}: neither a model file nor a run folder containing model.pt")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="a model .pt written by mliap_torch, or a run folder")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: <run folder>/lammps)")
    parser.add_argument("--name", default="model", help="file name stem of the written files")
    parser.add_argument("--routes", nargs="+", default=["unified", "snap", "mliap"],
                        choices=["unified", "snap", "mliap"], help="LAMMPS routes to write")


def run(args: argparse.Namespace) -> int:
    model_path = find_model(args.model)
    out = args.out or model_path.parent / "lammps"
    potential = load(model_path)
    result = export_lammps(potential, out, name=args.name, routes=tuple(args.routes))
    print(f"Exported {model_path} ({', '.join(potential.elements)}) to {out}:")
    for route in result.routes.values():
        print(f"  {route.name:8s} include {route.include_file.name}: {'; '.join(route.pair_commands)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mliap_torch export", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))
