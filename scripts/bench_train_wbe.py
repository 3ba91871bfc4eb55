"""Seconds per epoch and peak memory of ``experiment=wbe_snap_nn`` (a network SNAP on FitSNAP's W–Be set).

Usage:
    .venv/bin/python scripts/bench_train_wbe.py [--devices N] [override ...]
    .venv/bin/python scripts/bench_train_wbe.py data.max_configs=500 model.max_stored_gb=0   # a quick run

Composes ``experiment=wbe_snap_nn`` with ``trainer.max_epochs=1`` (no plots, checkpoints or LAMMPS step; further
Hydra overrides are passed on), then runs what ``train.py`` runs up to the end of gradient training, timing
each stage: reading and splitting the data (531 642 atoms), the network's initialisation (descriptor scaling
and the exact weighted linear fit its linear part starts from, ``initialize_mlp``), the data module's neighbor
lists, the training epoch (descriptors and pair Jacobians computed per batch, since their store would exceed
``model.max_stored_gb``) and the validation pass. The final metrics pass of ``train.py`` over the training
set is not run. ``--devices N`` trains on N CPU processes (``trainer=ddp_cpu``; Lightning starts this script
again for the other ranks, each rank reads the data and initialises the network itself, then trains on its
shard); every process prints its own line. Peak memory is each process's ``ru_maxrss``.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hydra import compose, initialize_config_dir  # noqa: E402

from mliap_torch.cli.schema import validate  # noqa: E402
from mliap_torch.cli.train import CONFIG_DIR  # noqa: E402
from mliap_torch.training.data import load_split_data  # noqa: E402
from mliap_torch.training.run import train_lightning  # noqa: E402
from mliap_torch.training.setup import build_potential, initialize_mlp  # noqa: E402

BENCH = ["experiment=wbe_snap_nn", "trainer.max_epochs=1", "trainer.checkpoint=false", "trainer.enable_progress_bar=false",
         "trainer.early_stopping_patience=null", "plots=false", "export.lammps=false"]


def peak_mb() -> float:
    """This process's peak resident memory so far, MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class StageTimer(L.Callback):
    """Wall-clock seconds of the training epoch (collate included) and of its validation pass, and the peak
    memory at their ends."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self._start: dict[str, float] = {}

    def on_fit_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.times["setup_s"] = time.perf_counter() - self._start.pop("setup", time.perf_counter())

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._start["epoch"] = time.perf_counter()

    def on_validation_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._start["val"] = time.perf_counter()

    def on_validation_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.times["val_s"] = self.times.get("val_s", 0.0) + time.perf_counter() - self._start["val"]

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        # Lightning runs the validation pass inside the training epoch; it is counted separately.
        self.times["epoch_s"] = time.perf_counter() - self._start["epoch"] - self.times.get("val_s", 0.0)
        self.times["train_batches"] = trainer.num_training_batches
        self.times["peak_mb"] = peak_mb()

    def start_setup(self) -> None:
        self._start["setup"] = time.perf_counter()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=1, help="CPU processes (DDP with gloo when > 1)")
    parser.add_argument("overrides", nargs="*", help="further Hydra overrides")
    args = parser.parse_args()
    rank = int(os.environ.get("LOCAL_RANK", 0))
    ddp = ["trainer=ddp_cpu", f"trainer.devices={args.devices}"] if args.devices > 1 else []
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg: Any = validate(compose("train", overrides=BENCH + ddp + args.overrides))
    if rank == 0:
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; load average "
              f"{os.getloadavg()[0]:.2f}; {args.devices} process(es), {torch.get_num_threads()} torch thread(s) each",
              flush=True)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    t0 = time.perf_counter()
    data = load_split_data(cfg.data, cfg.seed)
    t_read = time.perf_counter() - t0
    m = cfg.model
    potential = build_potential(cfg.descriptor, m.head, list(cfg.descriptor["elements"]), m.hidden, m.activation,
                                m.reference, m.linear_term)
    t1 = time.perf_counter()
    initialize_mlp(potential, data.fit, cfg.data.batch_size)
    t_init = time.perf_counter() - t1
    init_mb = peak_mb()
    timer = StageTimer()
    timer.start_setup()
    with tempfile.TemporaryDirectory(prefix="bench_train_wbe_") as run_dir:
        train_lightning(cfg, potential, data.fit, data.val, data.group_names, Path(run_dir), getattr(torch, cfg.dtype),
                        callbacks=[timer])
    t = timer.times
    atoms = sum(c.num_atoms for c in data.fit) // max(args.devices, 1)
    if rank == 0:
        print(f"\n{len(data.fit)} training configurations ({sum(c.num_atoms for c in data.fit)} atoms), "
              f"{len(data.val)} validation; batch {cfg.data.batch_size}; model.max_stored_gb {cfg.model.max_stored_gb}\n"
              "\n| rank | read + split (s) | initialisation (s) | peak after it (MB) | data module setup (s) | batches "
              "| epoch (s) | µs/atom | validation (s) | peak RSS (MB) |\n|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
              flush=True)
    print(f"| {rank} | {t_read:.1f} | {t_init:.1f} | {init_mb:.0f} | {t.get('setup_s', float('nan')):.1f} "
          f"| {t['train_batches']:.0f} | {t['epoch_s']:.1f} | {t['epoch_s'] / atoms * 1e6:.0f} | "
          f"{t.get('val_s', float('nan')):.1f} | {t['peak_mb']:.0f} |", flush=True)
    if rank == 0:
        print(f"load average {os.getloadavg()[0]:.2f} at the end", flush=True)


if __name__ == "__main__":
    main()
