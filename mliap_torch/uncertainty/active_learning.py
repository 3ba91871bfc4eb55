"""Active learning with the extrapolation grade γ: MD with the current model, selection by γ, EMT labels, refit.

The loop of issue 24 on the built-in EMT Cu/Cu–Ni system (docs/uncertainty.md, "Active learning"), with ASE's
EMT as the labelling oracle (the calculator that labelled the built-in data, so new labels and the test split
agree). Per iteration k (of ``iterations``):

1. **fit** the potential (default ``model=snap_quadratic``: the run configuration's descriptor, head, group
   weights and exact-fit options) on the labelled set with :func:`~mliap_torch.fitting.exact_fit.fit_exact`,
   and record its test energy and force errors on the built-in test split;
2. **active set** of the labelled atoms (:func:`~mliap_torch.uncertainty.build.build_active_set`), so that the
   ASE calculator reports γ per atom;
3. **MD pool**: short Langevin runs with the current model on small Cu, Cu–Ni, vacancy and slab cells (the kinds
   of structures of the built-in data), at a temperature and a random strain that rise with k; each run stops
   at the first step whose largest atomic γ exceeds ``gamma_stop`` (that frame is kept). Every
   ``frame_every``-th frame, the first and the stopping frame form the candidate pool;
4. **select** ``per_iteration`` frames of the pool: by γ (:func:`greedy_gamma_selection`, a greedy D-optimal
   batch: the frame of largest γ against the active set, then the active set updated by MaxVol with that
   frame's atoms as if they were labelled, and the next frame by γ against the updated set, so near-duplicate
   frames of one trajectory are not picked twice) or uniformly at random (the baseline);
5. **label** them with EMT (energy, forces, stress) and add them to the labelled set.

After the last iteration the model is fitted once more, so a run records ``iterations + 1`` points of
(labelled configurations, test error). Both strategies of one seed start from the same initial set (random
configurations of the built-in training split containing both elements) and use the same MD start
structures, temperatures, strains and random streams; only the model driving the MD differs.
"""
from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase import Atoms, units
from ase.build import bulk, fcc100, fcc110, fcc111

from ..data.builtin import LATTICE, emt_labelled
from ..data.configuration import Configuration
from ..fitting.exact_fit import FitResult, fit_exact
from ..fitting.options import FitOptions
from ..models.potential import Potential
from .build import build_active_set, grade_features
from .maxvol import TOLERANCE, active_set_inverse

STRATEGIES = ("gamma", "random", "random_per_kind")
"""Selection strategies: ``gamma`` (:func:`greedy_gamma_selection`), ``random`` (uniform from the pool) and
``random_per_kind`` (uniform within each kind of MD start structure, the same number of picks per kind as
``gamma`` with ``per_kind``: a control that separates the effect of γ from that of spreading over kinds)."""

CELL_KINDS = ("bulk", "alloy", "vacancy", "surface")
"""Start structures of the MD runs (:func:`start_structure`)."""

GROUP = "active_learning"
"""Group name of the configurations labelled by the loop."""


@dataclass
class ActiveLearningSettings:
    """Settings of one active-learning run (one strategy, one seed).

    Attributes:
        strategy: ``"gamma"`` or ``"random"`` (:data:`STRATEGIES`).
        seed: seeds the initial set, the MD start structures, velocities and thermostat, and the random picks.
        initial: configurations of the training split in the initial labelled set.
        iterations: select-label-refit rounds.
        per_iteration: configurations labelled per round.
        gamma_stop: an MD run stops at the first step whose largest atomic γ exceeds this.
        md_steps: Langevin steps per MD run at most.
        frame_every: every this many steps a frame goes into the pool (plus the first and the stopping frame).
        timestep_fs: MD time step, fs.
        friction: Langevin friction (ASE units, as in the built-in data's MD group).
        temperature: (first, last) MD temperature, K; linear in the iteration.
        strain: (first, last) largest random strain component of the MD start cells (dimensionless);
            linear in the iteration.
        cells: the start structure of each MD run of a round (:data:`CELL_KINDS`).
        min_distance: frames with two atoms closer than this (Å) leave the pool and stop their run.
        per_kind: γ selection spreads its picks over the kinds of MD start structure (``strata`` of
            :func:`greedy_gamma_selection`).
        tol: MaxVol tolerance of the active sets.
        rcond: relative singular-value cutoff of the feature matrices (:func:`~mliap_torch.uncertainty.maxvol.reduced_basis`).
    """

    strategy: str = "gamma"
    seed: int = 0
    initial: int = 6
    iterations: int = 8
    per_iteration: int = 4
    gamma_stop: float = 50.0
    md_steps: int = 60
    frame_every: int = 3
    timestep_fs: float = 5.0
    friction: float = 0.02
    temperature: tuple[float, float] = (300.0, 1200.0)
    strain: tuple[float, float] = (0.0, 0.03)
    cells: tuple[str, ...] = ("bulk", "bulk", "alloy", "alloy", "alloy", "vacancy", "surface", "surface")
    min_distance: float = 1.5
    per_kind: bool = True
    tol: float = TOLERANCE
    rcond: float = 1e-10

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        unknown = sorted(set(self.cells) - set(CELL_KINDS))
        if unknown:
            raise ValueError(f"unknown MD cell kind(s) {unknown}; known: {CELL_KINDS}")
        for name in ("initial", "per_iteration", "md_steps", "frame_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.iterations < 0:
            raise ValueError(f"iterations must be at least 0, got {self.iterations}")

    def schedule(self, iteration: int) -> tuple[float, float]:
        """(temperature K, strain amplitude) of the MD runs of ``iteration`` (0-based): linear from the first
        to the last value over the iterations."""
        s = iteration / (self.iterations - 1) if self.iterations > 1 else 1.0
        return (self.temperature[0] + s * (self.temperature[1] - self.temperature[0]),
                self.strain[0] + s * (self.strain[1] - self.strain[0]))


@dataclass
class LearningSetup:
    """What every run of a study shares: the model recipe and the data of the built-in system.

    Attributes:
        make_potential: a new, unfitted potential (descriptor + head, float64).
        options: the exact fit's options.
        train: the training split (the initial sets are drawn from it; weights set).
        test: the test split (errors are reported on it; weights set).
        weights: (energy, force, stress) fit weights of the configurations the loop labels.
        description: what the recipe is (printed and saved).
    """

    make_potential: Callable[[], Potential]
    options: FitOptions
    train: list[Configuration]
    test: list[Configuration]
    weights: tuple[float, float, float]
    description: str = ""


def setup_from_config(overrides: Sequence[str] = ("model=snap_quadratic",)) -> LearningSetup:
    """The :class:`LearningSetup` of ``python train.py <overrides>``: the composed and validated run
    configuration's descriptor, head, exact-fit options, data split (built-in data and seed by default) and the
    group weights of unlisted groups (``data.group_weights["*"]``) for the new labels."""
    from hydra import compose, initialize_config_dir

    from ..cli.schema import CONFIG_DIR, FitConfig, fit_options, validate
    from ..training.data import group_specs, load_split_data
    from ..training.setup import build_model_potential, data_elements

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = validate(compose("train", overrides=list(overrides)))
    if cfg.model.fit != "exact":
        raise ValueError(f"active learning fits exactly; model {cfg.model.name} has fit={cfg.model.fit}")
    data = load_split_data(cfg.data, cfg.seed)
    elements = list(cfg.descriptor.get("elements") or data_elements(data.train + data.test))
    m = cfg.model
    specs, _ = group_specs(cfg.data.group_weights, [GROUP], 0.0)
    weights = (specs[0].eweight, specs[0].fweight, specs[0].vweight)

    def make_potential() -> Potential:
        return build_model_potential(cfg.descriptor, m, elements)

    options = fit_options(m, cfg.fit or FitConfig())
    options = dataclasses.replace(options, progress=False)
    description = (f"model={m.name} (head {m.head}, {cfg.descriptor['type']} 2Jmax {cfg.descriptor.get('twojmax')}, "
                   f"rcutfac {cfg.descriptor.get('rcutfac')}), data={cfg.data.format} seed {cfg.seed}: "
                   f"{len(data.train)} train / {len(data.test)} test configurations; new labels weighted {weights}")
    return LearningSetup(make_potential, options, data.train, data.test, weights, description)


# --- structures, MD and labels -------------------------------------------------------------------------------


def random_strain(rng: np.random.Generator, amplitude: float) -> np.ndarray:
    """(3, 3) symmetric strain with independent components uniform in ±``amplitude``."""
    m = rng.uniform(-amplitude, amplitude, (3, 3))
    return 0.5 * (m + m.T)


def start_structure(kind: str, rng: np.random.Generator, strain: float) -> Atoms:
    """An MD start cell like the built-in data's (at most 32 atoms, fully periodic), strained by
    :func:`random_strain` (positions scale with the cell).

    ``bulk``: 2×2×2 conventional fcc Cu (32 atoms, a = 3.61 Å); ``alloy``: the same with a random Ni fraction
    (10–90 %) and Vegard's lattice constant; ``vacancy``: Cu with one atom removed (31 atoms); ``surface``: a
    (100), (110) or (111) Cu slab of 2×2×6 atoms with 6 Å vacuum on each side (periodic, as in the built-in data).
    """
    if kind == "surface":
        maker = (fcc100, fcc110, fcc111)[int(rng.integers(3))]
        extra = {"orthogonal": True} if maker is fcc111 else {}
        atoms = maker("Cu", (2, 2, 6), a=LATTICE["Cu"], vacuum=6.0, **extra)
        atoms.pbc = True
    else:
        fraction = float(rng.uniform(0.1, 0.9)) if kind == "alloy" else 0.0
        atoms = bulk("Cu", "fcc", a=LATTICE["Cu"] + fraction * (LATTICE["Ni"] - LATTICE["Cu"]), cubic=True)
        atoms = atoms.repeat((2, 2, 2))
        if kind == "alloy":
            symbols = np.array(atoms.get_chemical_symbols())
            symbols[rng.random(len(atoms)) < fraction] = "Ni"
            atoms.set_chemical_symbols(symbols.tolist())
        elif kind == "vacancy":
            del atoms[int(rng.integers(len(atoms)))]
    atoms.set_cell(np.asarray(atoms.get_cell()) @ (np.eye(3) + random_strain(rng, strain)), scale_atoms=True)
    return atoms


def emt_label(atoms: Atoms, group: str = GROUP, index: int = 0,
              weights: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> Configuration:
    """``atoms`` labelled by ASE's EMT, the oracle: energy (eV), forces (eV/Å) and stress (ASE convention,
    eV/Å³), computed as for the built-in data (:func:`~mliap_torch.data.builtin.emt_labelled` on a copy);
    ``weights`` are its (energy, force, stress) fit weights."""
    return emt_labelled(atoms.copy(), group, index, source="active_learning:emt", weights=weights)


def min_distance(atoms: Atoms) -> float:
    """Smallest interatomic distance (Å, minimum image)."""
    if len(atoms) < 2:
        return float("inf")
    d = atoms.get_all_distances(mic=True)
    return float(d[np.triu_indices(len(atoms), 1)].min())


@dataclass
class Trajectory:
    """One MD run of the pool.

    Attributes:
        kind: its start structure (:data:`CELL_KINDS`).
        temperature: thermostat temperature, K.
        strain: amplitude of the start cell's strain.
        frames: the frames kept for the pool (copies without calculator).
        gamma: (nframes,) largest atomic γ of each kept frame (from the model that ran the MD).
        steps: MD steps run.
        stopped: True when the run stopped because the largest γ exceeded ``gamma_stop`` (then the last
            frame is the one that did), False when it ran all steps (every step's γ ≤ ``gamma_stop``) or stopped
            on ``min_distance``.
        max_gamma: largest atomic γ over all steps run (also those not kept).
    """

    kind: str
    temperature: float
    strain: float
    frames: list[Atoms] = field(default_factory=list)
    gamma: np.ndarray = field(default_factory=lambda: np.zeros(0))
    steps: int = 0
    stopped: bool = False
    max_gamma: float = 0.0


def run_md(potential: Potential, atoms: Atoms, temperature: float, settings: ActiveLearningSettings,
           rng: np.random.Generator, kind: str = "", strain: float = 0.0) -> Trajectory:
    """Langevin MD of ``atoms`` with ``potential`` (which needs an active set), stopped when γ passes
    ``settings.gamma_stop``.

    Velocities start from a Maxwell–Boltzmann distribution at ``temperature`` (K). γ of the start frame and of
    every step is read from the calculator (``results["extrapolation_grade"]``); the run stops at the first frame
    whose largest γ exceeds ``gamma_stop`` or that has two atoms closer than ``settings.min_distance`` (that frame
    is kept in the first case, dropped in the second), else after ``md_steps`` steps.
    """
    from ase.md.langevin import Langevin

    from ..calculator import Calculator

    if potential.active_set is None:
        raise ValueError("run_md: the potential has no active set (build_active_set first)")
    atoms = atoms.copy()
    atoms.calc = Calculator(potential)
    kt = units.kB * temperature
    atoms.set_momenta(rng.normal(size=(len(atoms), 3)) * np.sqrt(atoms.get_masses() * kt)[:, None])
    dyn = Langevin(atoms, settings.timestep_fs * units.fs, temperature_K=temperature, friction=settings.friction,
                   fixcm=False, rng=rng)
    traj = Trajectory(kind=kind, temperature=float(temperature), strain=float(strain))
    gammas: list[float] = []

    def frame_gamma() -> float:
        atoms.get_forces()
        return float(np.max(atoms.calc.results["extrapolation_grade"]))

    def keep(gamma: float) -> None:
        frame = atoms.copy()
        frame.calc = None
        traj.frames.append(frame)
        gammas.append(gamma)

    gamma = frame_gamma()
    traj.max_gamma = gamma
    keep(gamma)
    traj.stopped = gamma > settings.gamma_stop
    while not traj.stopped and traj.steps < settings.md_steps:
        dyn.run(1)
        traj.steps += 1
        if min_distance(atoms) < settings.min_distance:
            break
        gamma = frame_gamma()
        traj.max_gamma = max(traj.max_gamma, gamma)
        traj.stopped = gamma > settings.gamma_stop
        if traj.stopped or traj.steps % settings.frame_every == 0:
            keep(gamma)
    traj.gamma = np.array(gammas)
    return traj


def md_pool(potential: Potential, iteration: int, settings: ActiveLearningSettings) -> list[Trajectory]:
    """The MD runs of ``iteration``: one per entry of ``settings.cells``, at that iteration's temperature and
    strain (:meth:`ActiveLearningSettings.schedule`); start cells and random streams depend on the seed and the
    iteration only (so both strategies of a seed start the same runs)."""
    temperature, strain = settings.schedule(iteration)
    out = []
    for k, kind in enumerate(settings.cells):
        rng = np.random.default_rng([settings.seed, iteration, k])
        atoms = start_structure(kind, rng, strain)
        out.append(run_md(potential, atoms, temperature, settings, rng, kind, strain))
    return out


# --- selection ---------------------------------------------------------------------------------------------


@torch.no_grad()
def frame_features(potential: Potential, frames: Sequence[Atoms | Configuration], batch_size: int = 16
                   ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per element e: the (n_e, F) features for γ of all atoms of ``frames`` (float64) and the (n_e,) index of
    each atom's frame."""
    configs = [f if isinstance(f, Configuration) else Configuration.from_ase(f) for f in frames]
    features = grade_features(potential, configs, batch_size, progress=False)
    if features is None:
        raise ValueError(f"{type(potential.head).__name__} has no features for γ")
    # the batches keep the configurations' atom order, so each element's rows are its atoms frame by frame
    owners = [np.concatenate([np.full(int((np.asarray(c.symbols) == element).sum()), k, dtype=np.int64)
                              for k, c in enumerate(configs)] or [np.zeros(0, dtype=np.int64)])
              for element in potential.elements]
    return [f.numpy() for f in features], owners


def greedy_gamma_selection(labelled: Sequence[np.ndarray], pool: Sequence[np.ndarray], pool_frame: Sequence[np.ndarray],
                           num_frames: int, count: int, tol: float = TOLERANCE, rcond: float = 1e-10,
                           strata: Sequence[str] | None = None) -> tuple[list[int], list[float]]:
    """Pick ``count`` frames of a pool by the extrapolation grade, one at a time (a greedy D-optimal batch).

    Per element e, the active set is MaxVol's rows of ``labelled[e]`` (n_e, F), the labelled atoms' features.
    Each pick takes the frame with the largest atomic γ against the current active sets (γ = max |x · A⁻¹|), then
    updates the active set of every element as pacemaker updates its active sets with new structures: MaxVol over
    the current active set's rows together with the picked frame's atoms. The next pick is graded against the
    updated sets, so a frame that is extrapolative in the same way as one already picked (a later frame of the
    same trajectory) drops back towards γ ≤ 1.

    Args:
        labelled: per element, (n_e, F) features of the labelled atoms (n_e may be 0: its atoms grade ``inf``).
        pool: per element, (m_e, F) features of the pool's atoms.
        pool_frame: per element, (m_e,) frame index of each pool atom (0 … num_frames − 1).
        num_frames: frames in the pool.
        count: frames to pick (at most ``num_frames``).
        tol: MaxVol tolerance (:func:`~mliap_torch.uncertainty.maxvol.active_set_inverse`).
        rcond: relative singular-value cutoff of the feature matrices.
        strata: (num_frames,) a label per frame (the kind of its MD start structure); when given, no label gets
            more than ``ceil(count / labels present)`` picks, so the picks spread over the kinds of structure.

    Returns:
        the picked frame indices in order of picking, and the largest γ of each when it was picked (the first is
        the pool's largest γ against the labelled set; later ones are against the updated sets).
    """
    basis: list[np.ndarray] = []
    inverse: list[np.ndarray | None] = []
    for X in labelled:
        if len(X) == 0:
            basis.append(X)
            inverse.append(None)
            continue
        rows, M = active_set_inverse(X, tol, rcond)
        basis.append(X[rows])
        inverse.append(M)
    picked: list[int] = []
    picked_gamma: list[float] = []
    quota = -(-count // len(set(strata))) if strata is not None and len(strata) else count
    for _ in range(min(count, num_frames)):
        frame_gamma = np.zeros(num_frames)
        for e, (X, owner) in enumerate(zip(pool, pool_frame)):
            if len(X) == 0:
                continue
            inv = inverse[e]
            gamma = (np.full(len(X), np.inf) if inv is None else np.abs(X @ inv).max(1) if inv.shape[1]
                     else np.zeros(len(X)))
            np.maximum.at(frame_gamma, owner, gamma)
        frame_gamma[picked] = -np.inf
        if strata is not None:
            full = {g for g in set(strata) if sum(strata[k] == g for k in picked) >= quota}
            frame_gamma[[k for k in range(num_frames) if strata[k] in full]] = -np.inf
        k = int(np.argmax(frame_gamma))
        picked.append(k)
        picked_gamma.append(float(frame_gamma[k]))
        for e, (X, owner) in enumerate(zip(pool, pool_frame)):
            new = X[owner == k]
            if len(new) == 0:
                continue
            stacked = np.vstack([basis[e], new]) if len(basis[e]) else new
            rows, M = active_set_inverse(stacked, tol, rcond)
            basis[e], inverse[e] = stacked[rows], M
    return picked, picked_gamma


# --- the loop ----------------------------------------------------------------------------------------------


@dataclass
class IterationRecord:
    """One fit of the loop and the round that followed it.

    Attributes:
        iteration: 0-based round (``iterations`` for the final fit).
        labels: labelled configurations the fit used.
        energy_mae: test energy MAE, meV/atom.
        force_mae: test force MAE, eV/Å.
        train_energy_mae: training energy MAE, meV/atom.
        temperature: MD temperature of the round, K (None after the final fit).
        strain: strain amplitude of the round's MD start cells (None after the final fit).
        pool: frames in the candidate pool.
        trajectories: MD runs of the round.
        stopped: MD runs that stopped on γ.
        md_steps: MD steps run in all.
        pool_max_gamma: largest γ in the pool.
        selected_gamma: largest γ of each selected frame against the active set of the fit (the MD's γ).
        selected_kind: start structure of each selected frame's MD run (:data:`CELL_KINDS`), with ``"*"`` appended
            when the frame is the one that stopped its run on γ.
        seconds: wall time of the fit, the active set, the MD, the selection and the labels.
    """

    iteration: int
    labels: int
    energy_mae: float
    force_mae: float
    train_energy_mae: float
    temperature: float | None = None
    strain: float | None = None
    pool: int = 0
    trajectories: int = 0
    stopped: int = 0
    md_steps: int = 0
    pool_max_gamma: float | None = None
    selected_gamma: list[float] = field(default_factory=list)
    selected_kind: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class ActiveLearningResult:
    """The records of one run, its settings and the labelled set it ended with."""

    settings: ActiveLearningSettings
    records: list[IterationRecord]
    labelled: list[Configuration]
    seconds: float = 0.0

    def labels_to_reach(self, energy_mae: float) -> int | None:
        """Labelled configurations of the first fit whose test energy MAE (meV/atom) is at most ``energy_mae``;
        None when no fit reached it."""
        for r in self.records:
            if r.energy_mae <= energy_mae:
                return r.labels
        return None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: settings, records and total seconds."""
        return {"settings": dataclasses.asdict(self.settings), "seconds": self.seconds,
                "records": [dataclasses.asdict(r) for r in self.records]}


def initial_set(train: Sequence[Configuration], count: int, seed: int) -> list[Configuration]:
    """``count`` configurations of ``train`` drawn at random (generator seeded by ``seed``), drawn again until
    every element of ``train`` occurs (an element without training atoms would grade every one of its atoms
    ``inf`` and stop every alloy MD run at its first frame)."""
    elements = {str(s) for c in train for s in c.symbols}
    rng = np.random.default_rng([seed, 1])
    for _ in range(1000):
        picked = [train[k] for k in sorted(rng.choice(len(train), size=min(count, len(train)), replace=False))]
        if {str(s) for c in picked for s in c.symbols} == elements:
            return picked
    raise ValueError(f"no {count} configurations of the training split contain all elements {sorted(elements)}")


def fit_and_evaluate(setup: LearningSetup, labelled: Sequence[Configuration]) -> tuple[Potential, FitResult]:
    """A new potential fitted exactly to ``labelled``, with the metrics of ``setup.test`` (rank-deficiency warnings
    of small sets are silenced: the minimum-norm solution is the fit)."""
    potential = setup.make_potential()
    configs = list(labelled) + list(setup.test)
    flags = [False] * len(labelled) + [True] * len(setup.test)
    names = sorted({c.group for c in configs})
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*rank deficient.*")
        result = fit_exact(potential, configs, test=flags, group_names=names, options=setup.options)
    return potential, result


def _mae(result: FitResult, split: str, quantity: str) -> float:
    return float(result.metrics.value("*ALL", "Unweighted", split, quantity, "mae"))


def run_active_learning(setup: LearningSetup, settings: ActiveLearningSettings,
                        log: Callable[[str], None] | None = None) -> ActiveLearningResult:
    """The loop of the module docstring for one strategy and seed; ``log`` receives one line per iteration."""
    t_start = time.perf_counter()
    labelled = list(initial_set(setup.train, settings.initial, settings.seed))
    rng = np.random.default_rng([settings.seed, 2])
    records: list[IterationRecord] = []
    for iteration in range(settings.iterations + 1):
        seconds: dict[str, float] = {}
        t0 = time.perf_counter()
        potential, fit = fit_and_evaluate(setup, labelled)
        seconds["fit"] = time.perf_counter() - t0
        record = IterationRecord(iteration, len(labelled), 1000 * _mae(fit, "Testing", "Energy"),
                                 _mae(fit, "Testing", "Force"), 1000 * _mae(fit, "Training", "Energy"))
        records.append(record)
        if iteration < settings.iterations:
            t0 = time.perf_counter()
            build_active_set(potential, labelled, tol=settings.tol, rcond=settings.rcond, progress=False)
            seconds["active_set"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            trajectories = md_pool(potential, iteration, settings)
            seconds["md"] = time.perf_counter() - t0
            frames = [f for t in trajectories for f in t.frames]
            kinds = [t.kind + ("*" if t.stopped and k == len(t.frames) - 1 else "")
                     for t in trajectories for k in range(len(t.frames))]
            frame_gamma = np.concatenate([t.gamma for t in trajectories])
            t0 = time.perf_counter()
            picked = select_frames(potential, labelled, frames, settings, rng, [k.rstrip("*") for k in kinds])
            seconds["select"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            labelled += [emt_label(frames[k], GROUP, len(labelled) + n, setup.weights) for n, k in enumerate(picked)]
            seconds["label"] = time.perf_counter() - t0
            record.temperature, record.strain = settings.schedule(iteration)
            record.pool, record.trajectories = len(frames), len(trajectories)
            record.stopped = sum(t.stopped for t in trajectories)
            record.md_steps = sum(t.steps for t in trajectories)
            record.pool_max_gamma = float(frame_gamma.max())
            record.selected_gamma = [float(frame_gamma[k]) for k in picked]
            record.selected_kind = [kinds[k] for k in picked]
        record.seconds = seconds
        if log is not None:
            log(format_record(settings, record))
    return ActiveLearningResult(settings, records, labelled, time.perf_counter() - t_start)


def select_frames(potential: Potential, labelled: Sequence[Configuration], frames: Sequence[Atoms],
                  settings: ActiveLearningSettings, rng: np.random.Generator,
                  kinds: Sequence[str] | None = None) -> list[int]:
    """Indices of ``settings.per_iteration`` frames of the pool: :func:`greedy_gamma_selection` against the
    labelled atoms' active set (strategy ``gamma``; spread over the frames' ``kinds`` when
    ``settings.per_kind``) or uniformly at random without replacement (``random``)."""
    count = min(settings.per_iteration, len(frames))
    if settings.strategy == "random":
        return sorted(rng.choice(len(frames), size=count, replace=False).tolist())
    if settings.strategy == "random_per_kind":
        strata = list(kinds) if kinds is not None else [""] * len(frames)
        order = rng.permutation(len(frames)).tolist()
        quota = -(-count // len(set(strata)))
        picked: list[int] = []
        for k in order:          # uniform within kinds, at most ``quota`` per kind; then any frame
            if len(picked) < count and sum(strata[j] == strata[k] for j in picked) < quota:
                picked.append(k)
        picked += [k for k in order if k not in picked][:count - len(picked)]
        return sorted(picked)
    labelled_x, _ = frame_features(potential, labelled)
    pool_x, pool_frame = frame_features(potential, frames)
    chosen, _ = greedy_gamma_selection(labelled_x, pool_x, pool_frame, len(frames), count, settings.tol,
                                       settings.rcond, strata=kinds if settings.per_kind else None)
    return chosen


def format_record(settings: ActiveLearningSettings, r: IterationRecord) -> str:
    """One progress line of a record."""
    line = (f"[{settings.strategy} seed {settings.seed}] iteration {r.iteration}: {r.labels} labels, test energy MAE "
            f"{r.energy_mae:.2f} meV/atom, force MAE {r.force_mae:.4f} eV/Å (train {r.train_energy_mae:.2f} meV/atom)")
    if r.temperature is not None:
        line += (f"; MD {r.temperature:.0f} K strain {r.strain:.3f}: {r.trajectories} runs ({r.stopped} stopped on γ, "
                 f"{r.md_steps} steps), pool {r.pool}, max γ {r.pool_max_gamma:.3g}; selected γ "
                 + ", ".join(f"{g:.3g} ({k})" for g, k in zip(r.selected_gamma, r.selected_kind)))
    if r.seconds:
        line += f" ({sum(r.seconds.values()):.1f} s)"
    return line


# --- reporting ---------------------------------------------------------------------------------------------


def labels_table(results: Sequence[ActiveLearningResult], target: float) -> str:
    """Markdown table: labelled configurations needed to reach a test energy MAE of ``target`` meV/atom, per seed
    and strategy (— when not reached), and the final errors."""
    seeds = sorted({r.settings.seed for r in results})
    strategies = [s for s in STRATEGIES if any(r.settings.strategy == s for r in results)]
    by_key = {(r.settings.seed, r.settings.strategy): r for r in results}
    head = "| seed | " + " | ".join(f"{s}: labels to {target:g} meV/atom | {s}: final E / F MAE" for s in strategies)
    lines = [head + " |", "|---|" + "---|---|" * len(strategies)]
    for seed in seeds:
        cells = []
        for s in strategies:
            r = by_key.get((seed, s))
            if r is None:
                cells += ["", ""]
                continue
            n = r.labels_to_reach(target)
            last = r.records[-1]
            cells += ["—" if n is None else str(n),
                      f"{last.energy_mae:.2f} meV/atom / {last.force_mae:.4f} eV/Å ({last.labels} labels)"]
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_curves(results: Sequence[ActiveLearningResult], target: float, path: str | Path, title: str = "") -> Path:
    """PNG of test energy MAE (left, with the ``target`` line) and force MAE (right) against labelled
    configurations, one line per run (colour: strategy, marker: seed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"gamma": "tab:blue", "random": "tab:orange", "random_per_kind": "tab:green"}
    names = {"gamma": "γ (MaxVol)", "random": "random", "random_per_kind": "random per kind"}
    markers = "osD^v<>"
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for r in results:
        n = [x.labels for x in r.records]
        label = f"{names[r.settings.strategy]}, seed {r.settings.seed}"
        style = {"color": colours[r.settings.strategy], "marker": markers[r.settings.seed % len(markers)],
                 "markersize": 4, "linewidth": 1.2, "label": label}
        axes[0].plot(n, [x.energy_mae for x in r.records], **style)
        axes[1].plot(n, [x.force_mae for x in r.records], **style)
    axes[0].axhline(target, color="k", linestyle="--", linewidth=1, label=f"{target:g} meV/atom")
    axes[0].set_ylabel("test energy MAE (meV/atom)")
    axes[1].set_ylabel("test force MAE (eV/Å)")
    for ax in axes:
        ax.set_xlabel("labelled configurations")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7, ncol=2)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=130)
    plt.close(fig)
    return out
