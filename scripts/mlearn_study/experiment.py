"""The Hydra experiment of a benchmark cell, and the network cells, which are trained by running it.

A cell's experiment (``mliap_torch/configs/experiment/mlearn_<el>_<model>.yaml``) holds the sections
``data``, ``descriptor``, ``model`` and ``trainer`` on top of ``data=mlearn`` and the model's base config.
The network heads (SNAP+NN, ACE+NN) are not trained by a loop of the study: :func:`fit_nn_cell` composes
their experiment and runs :func:`mliap_torch.training.run.run` on it, the run ``python train.py
experiment=mlearn_<el>_<model>`` makes (Lightning, on stored descriptors and pair Jacobians), so the
table's numbers are that command's.
"""
from __future__ import annotations

import csv
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

import mliap_torch
from mliap_torch.data.configuration import Configuration
from mliap_torch.errors import TrainingDivergedError
from mliap_torch.models.potential import Potential

from .mlearn import EV_PER_A3_IN_GPA, CellResult, score_on_test

CONFIG_DIR = Path(mliap_torch.__file__).resolve().parent / "configs"
"""The package's Hydra configs (``python train.py``)."""

GROUPS = ("AIMD-NVT", "Elastic", "Surface", "Vacancy")
"""The configuration groups of the mlearn data."""

BASE_MODEL = {"snap": "snap_linear", "qsnap": "snap_quadratic", "snap_nn": "snap_nn", "ace": "ace_linear",
              "ace_nn": "ace_nn", "ace_td": "ace_linear", "ace_qsnap": "ace_qsnap"}
"""The ``model`` config group each benchmark form overrides."""

LINEAR_OF = {"snap_nn": "snap", "ace_nn": "ace"}
"""The linear form whose descriptor and row weights each network form takes (and whose fit it starts from)."""

NN_LR = 3e-4
"""Adam's initial learning rate of the networks (small steps: they start at the linear fit)."""
NN_MIN_LR = 1e-6
"""Learning rate at the end of the cosine decay."""
NN_EPOCHS = 300
"""Epochs of the cosine decay; the epoch with the lowest validation loss is kept."""
NN_BATCH_CONFIGS = 4
"""Configurations per minibatch."""
NN_VAL_FRACTION = 0.1
"""Fraction of training.json held out to choose the epoch (never the test set)."""
NN_GRADIENT_CLIP = 1.0
"""Gradient-norm clip of a network trained again after its first run diverged (``trainer.gradient_clip_val``)."""


def group_weights(entry: dict) -> dict[str, list[float]]:
    """Row weights ``{group: [energy eV/atom, force eV/Å, stress GPa]}`` of an exact-fit result: its
    cross-validated per-group weights, or its single weights for every group."""
    chosen = entry["settings"].get("group_weights")
    return {g: list(chosen[g]) if chosen and g in chosen else list(entry["weights"]) for g in GROUPS}


def config_group_weights(entry: dict) -> dict[str, list[float]]:
    """:func:`group_weights` as ``data.group_weights`` takes them (stress weights per eV/Å³)."""
    return {g: [we, wf, ws * EV_PER_A3_IN_GPA] for g, (we, wf, ws) in group_weights(entry).items()}


def descriptor_section(entry: dict) -> dict[str, Any]:
    """The ``descriptor`` section of a result's experiment: ACE's basis and cutoff, or the bispectrum's
    2Jmax, cutoff and the study's conventions (radelem 0.5, so rcutfac is the cutoff), or for ACE+qSNAP both as the
    ``parts`` of a concatenated descriptor."""
    s = entry["settings"]
    if entry["model"] == "ace_qsnap":
        return {"parts": [{"type": "ace", **s["basis"], "rcut": s["ace_rcut"]},
                          {"type": "bispectrum", "twojmax": s["twojmax"], "rcutfac": s["qsnap_rcut"], "radelem": s["radelem"],
                           "rfac0": s["rfac0"], "rmin0": s["rmin0"], "bzeroflag": False}]}
    if "basis" in s:
        return {**s["basis"], "rcut": s["rcut"]}
    return {"twojmax": s["twojmax"], "rcutfac": s["rcut"], "radelem": s["radelem"], "rfac0": s["rfac0"],
            "rmin0": s["rmin0"], "bzeroflag": False}


def solver_section(entry: dict) -> dict[str, Any]:
    """``model.solver`` of an exact-fit result: QR or the ridge it was solved with (relative to unit-norm
    columns), the smoothness prior's power; the large ACE's rows in chunks of 500 atoms (~3.4 MB per atom)."""
    s = entry["settings"]
    alpha = s.get("ridge_alpha", 0.0)
    out: dict[str, Any] = {"solver": "ridge", "alpha": alpha} if alpha else {"solver": "qr"}
    if alpha and s.get("prior_power"):
        out["prior_power"] = s["prior_power"]
    if alpha and entry["model"] in ("ace_td", "ace_qsnap"):
        out["chunk_atoms"] = 500
    if s.get("scale_columns"):
        out["scale_columns"] = True
    return out


def _flow(value: Any) -> str:
    """``value`` in YAML flow style on one line (``5.2``, ``[1, 2]``, ``{a: 1}``, ``null``)."""
    return yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10**6).removesuffix("\n...\n").strip()


def yaml_lines(sections: dict[str, Any], indent: int = 0) -> list[str]:
    """``sections`` as YAML lines in their order: mappings as blocks down to the values that hold no
    mapping (sections of scalars included), which are written in flow style (``rcut: 5.2``, ``hidden: [64, 64]``);
    lists of mappings as block sequences (a concatenated descriptor's ``parts``)."""
    pad = "  " * indent
    lines = []
    for key, value in sections.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            lines.append(f"{pad}{key}:")
            for item in value:            # a block sequence: "- " in place of the item's first indent
                first, *rest = yaml_lines(item, indent + 2)
                lines += [f"{pad}  - {first.lstrip()}", *rest]
        elif isinstance(value, dict) and (indent == 0 or any(isinstance(v, dict) or isinstance(v, list)
                                                            for v in value.values())):
            lines += [f"{pad}{key}:", *yaml_lines(value, indent + 1)]
        else:
            lines.append(f"{pad}{key}: {_flow(value)}")
    return lines


def nn_experiment(element: str, model: str, linear: dict, energy_weight: float, hidden: Sequence[int] = (64, 64),
                  epochs: int = NN_EPOCHS) -> dict[str, Any]:
    """The experiment sections of a network head (``model``: snap_nn or ace_nn) for ``element``.

    ``linear`` is the element's result of :data:`LINEAR_OF` ``[model]``: the network takes its descriptor,
    and its cross-validated row weights (``data.group_weights``) make the exact fit the network's linear
    term starts from, solved as that fit was (``model.solver``); the loss itself weighs every configuration
    alike, energies by ``energy_weight``. That start competes with every epoch for the lowest validation loss.
    Adam from :data:`NN_LR` with a cosine decay to :data:`NN_MIN_LR` over ``epochs``, minibatches of
    :data:`NN_BATCH_CONFIGS` configurations; the epoch of the lowest loss on :data:`NN_VAL_FRACTION` of
    training.json is kept.
    """
    if linear["model"] != LINEAR_OF[model] or linear["element"] != element:
        raise ValueError(f"{element}/{model} starts from {element}/{LINEAR_OF[model]}, "
                         f"not {linear['element']}/{linear['model']}")
    return {"data": {"element": element, "val_fraction": NN_VAL_FRACTION, "batch_size": NN_BATCH_CONFIGS,
                     "group_weights": config_group_weights(linear)},
            "descriptor": descriptor_section(linear),
            "model": {"name": f"mlearn_{element.lower()}_{model}", "hidden": [int(h) for h in hidden],
                      "activation": "silu", "linear_term": True, "solver": solver_section(linear),
                      "use_config_weights": False,
                      "loss": {"energy": float(energy_weight), "forces": 1.0, "stress": 0.0},
                      "optimizer": {"name": "adam", "lr": NN_LR, "weight_decay": 0.0},
                      "scheduler": {"name": "cosine", "min_lr": NN_MIN_LR}},
            "trainer": {"max_epochs": int(epochs), "early_stopping_patience": None}}


def compose_experiment(model: str, sections: dict[str, Any], overrides: Sequence[str] = ()) -> tuple[Any, dict]:
    """The validated config (:class:`~mliap_torch.cli.schema.TrainConfig`) and its plain-dict form of
    ``train.yaml`` + ``data=mlearn`` + the base of ``model`` + ``sections`` + dotted ``overrides``: what
    Hydra composes for an experiment file holding ``sections``."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from mliap_torch.cli.schema import validate

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["data=mlearn", f"model={BASE_MODEL[model]}"])
    OmegaConf.set_struct(cfg, False)           # as while Hydra merges an experiment file: new keys allowed
    cfg = OmegaConf.merge(cfg, sections, OmegaConf.from_dotlist(list(overrides)))
    return validate(cfg), OmegaConf.to_container(cfg, resolve=True)


def validation_history(run_dir: Path) -> list[tuple[int, float]]:
    """(epoch, validation loss) of every epoch of a run (its ``logs/metrics.csv``)."""
    with open(run_dir / "logs" / "metrics.csv", newline="") as fh:
        return [(int(r["epoch"]), float(r["val/loss"])) for r in csv.DictReader(fh) if r.get("val/loss")]


def fit_nn_cell(element: str, model: str, sections: dict[str, Any], test: Sequence[Configuration], run_dir: Path,
                data: Path, max_configs: int | None = None) -> tuple[CellResult, Potential]:
    """Train the network of the experiment ``sections`` (:func:`nn_experiment`) by the package's run in
    ``run_dir`` (mlearn files under ``data``; the first ``max_configs`` of each set when given; no LAMMPS
    step, plots or active set, which do not change the model), and score it on ``test``. A run that
    diverges (the package's divergence guard) is trained again from the start with gradients clipped at
    :data:`NN_GRADIENT_CLIP`; the cell's experiment then records that setting."""
    from mliap_torch.training.run import run

    t0 = time.perf_counter()
    overrides = [f"data.path={Path(data).resolve()}", "export.lammps=false", "plots=false",
                 "active_set.enabled=false", "trainer.enable_progress_bar=false"]
    if max_configs:
        overrides.append(f"data.max_configs={max_configs}")

    def train_run(sections: dict[str, Any], folder: Path):
        cfg, resolved = compose_experiment(model, sections, overrides)
        return run(cfg, folder, resolved)

    notes = []
    try:
        result = train_run(sections, run_dir)
    except TrainingDivergedError as exc:
        # a minibatch loss far above the best epoch's: train again from the start with clipped gradients
        sections = {**sections, "trainer": {**sections["trainer"], "gradient_clip_val": NN_GRADIENT_CLIP}}
        notes.append(f"the first run diverged ({str(exc).split(':')[0]}); trained again with "
                     f"trainer.gradient_clip_val={NN_GRADIENT_CLIP}")
        run_dir = run_dir.with_name(run_dir.name + "_clipped")
        result = train_run(sections, run_dir)
    if result is None:
        raise RuntimeError(f"{element}/{model}: the training run in {run_dir} returned no model")
    potential = result.potential.to(torch.float64)
    fit_seconds = time.perf_counter() - t0
    history = validation_history(run_dir)
    # no checkpoint: no epoch beat the start (the linear fit) on validation, and the run kept the start
    best_epoch = min(history, key=lambda h: h[1])[0] if history and result.checkpoint is not None else -1
    train_errors = result.metrics["train"]["all"]
    settings = {"experiment": sections, "rcut": float(potential.cutoff), "num_functions": potential.descriptor.num_descriptors,
                "epochs": len(history), "best_epoch": best_epoch, "timings": result.timings}
    if "twojmax" in sections["descriptor"]:
        settings["twojmax"] = sections["descriptor"]["twojmax"]
    cell = CellResult(element=element, model=model, **score_on_test(potential, test),
                      train_energy_mae=1000 * float(train_errors["energy_mae"]),
                      train_force_mae=float(train_errors["force_mae"]),
                      settings=settings, fit_seconds=fit_seconds,
                      notes=[*notes, f"trained {len(history)} epochs, kept "
                             + (f"epoch {best_epoch}" if best_epoch >= 0 else "the linear start") + " (lowest val/loss)"],
                      num_parameters=sum(p.numel() for p in potential.head.parameters()))
    return cell, potential

