"""``pair_style mliap model nn`` both ways: LAMMPS' own MLP files read as MLPHead models, and MLP heads
written for LAMMPS' nn, each checked against LAMMPS (energies, per-atom energies, forces, stress to 1e-10
relative on triclinic, rattled cells)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import mliap_torch
from cli_helpers import QUICK, run_cli
from lammps_models import Z, assert_results_equal, random_structures
from mliap_torch.data.batch import make_batch
from mliap_torch.descriptors.bispectrum import Bispectrum
from mliap_torch.export.lammps_export import export_lammps, unsupported_routes
from mliap_torch.export.mliap_nn import NNFileError, nn_export_problem, split_linear_term
from mliap_torch.lammps import lmp_executable
from mliap_torch.lammps_eval import evaluate_in_lammps
from mliap_torch.models.heads import MLPHead
from mliap_torch.models.potential import Potential
from mliap_torch.models.zbl import ZBL

pytestmark = [pytest.mark.lammps]

TOLERANCE = 1e-10
CUNI = ["Cu", "Ni"]
CUNI_DESCRIPTOR = """rcutfac 4.6
twojmax 4
nelems 2
elems Cu Ni
radelems 0.5 0.45
welems 1.0 0.8
rfac0 0.99363
rmin0 0
bzeroflag 1
switchflag 1
"""


def lammps_examples() -> Path:
    """``examples/mliap`` of the LAMMPS source the project's build keeps next to it."""
    lmp = lmp_executable()
    assert lmp is not None, "no LAMMPS built (scripts/build_lammps.sh)"
    folder = Path(lmp).resolve().parent.parent / "src" / "examples" / "mliap"
    assert folder.is_dir(), f"{folder} missing: rebuild LAMMPS with scripts/build_lammps.sh --force"
    return folder


def assert_lammps_equals_torch(potential: Potential, pair_commands: list[str], folder: Path, seed: int) -> None:
    configs = random_structures(potential.elements, 2, seed)
    results = evaluate_in_lammps(configs, potential.elements, pair_commands, directory=folder)
    out = potential(make_batch(configs, potential.elements, potential.cutoff))
    assert_results_equal(results, configs, out, TOLERANCE, min_force=1e-3)


@pytest.mark.parametrize("model, descriptor", [("Cu.nn.mliap.model", "Cu.snap.mliap.descriptor"),
                                               ("Ta06A.nn.mliap.model", "Ta06A.mliap.descriptor")])
def test_lammps_example_nn_models_read_as_they_run(model, descriptor):
    """LAMMPS' shipped SNAP+NN examples (PyXtal_FF's Cu: tanh 2-2; Ta06A: one linear layer)."""
    folder = lammps_examples()
    potential = mliap_torch.read_mliap(folder / model, folder / descriptor)
    assert isinstance(potential.head, MLPHead)
    commands = [f"pair_style mliap model nn {model} descriptor sna {descriptor}",
                f"pair_coeff * * {' '.join(potential.elements)}"]
    assert_lammps_equals_torch(potential, commands, folder, seed=31)


def random_nn_file(path: Path, activations: list[str], nodes: list[int], B: torch.Tensor, seed: int) -> None:
    """An ``mliap model nn`` file with random weights for two elements with different Scale0/Scale1 (near
    the mean and spread of the descriptors ``B`` (natoms, K), so that no activation saturates), written
    here independently of mliap_torch's writer."""
    rng = np.random.default_rng(seed)
    num_descriptors = B.shape[1]
    mean, std = B.mean(0).numpy(), B.std(0).clamp_min(1e-3).numpy()
    widths = [num_descriptors, *nodes]
    nparams = sum((widths[k] + 1) * widths[k + 1] for k in range(len(nodes)))
    lines = ["# random network", f"2 {nparams}",
             "NET " + " ".join([str(num_descriptors), str(len(nodes))] + [f"{a} {n}" for a, n in zip(activations, nodes)])]
    for _ in range(2):
        lines.append(" ".join(f"{v:.17g}" for v in mean + 0.3 * std * rng.normal(size=num_descriptors)))
        lines.append(" ".join(f"{v:.17g}" for v in std * rng.uniform(0.7, 1.5, num_descriptors)))
        weights = rng.normal(0.0, 0.5, nparams)
        lines += [" ".join(f"{v:.17g}" for v in weights[k:k + 7]) for k in range(0, nparams, 7)]
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("activations, nodes", [(["tanh"], [1]), (["sigmoid", "linear"], [6, 1]),
                                                (["relu", "tanh", "linear"], [7, 5, 1]),
                                                (["tanh", "sigmoid", "sigmoid"], [4, 3, 1])])
def test_random_nn_files_read_as_lammps_runs_them(tmp_path, activations, nodes):
    """1-3 layers, every activation LAMMPS knows (also on the output), per-element scalings."""
    (tmp_path / "cuni.mliap.descriptor").write_text(CUNI_DESCRIPTOR)
    desc = Bispectrum(CUNI, twojmax=4, rcutfac=4.6, radelem=[0.5, 0.45], wj=[1.0, 0.8], bzeroflag=True)
    batch = make_batch(random_structures(CUNI, 2, 32), CUNI, desc.cutoff)
    B = desc(batch.rij(), batch.pair_i, batch.pair_j, batch.species, batch.total_atoms).detach()
    random_nn_file(tmp_path / "net.mliap.model", activations, nodes, B, seed=len(nodes))
    potential = mliap_torch.read_mliap(tmp_path / "net.mliap.model", tmp_path / "cuni.mliap.descriptor")
    commands = ["pair_style mliap model nn net.mliap.model descriptor sna cuni.mliap.descriptor",
                "pair_coeff * * Cu Ni"]
    assert_lammps_equals_torch(potential, commands, tmp_path, seed=32)


@pytest.mark.parametrize("activation, output", [("tanh", "linear"), ("relu", "linear"), ("sigmoid", "tanh")])
def test_mlp_heads_written_for_lammps_nn_run_as_in_torch_and_read_back(tmp_path, activation, output):
    desc = Bispectrum(CUNI, twojmax=4, rcutfac=4.6, radelem=[0.5, 0.45], wj=[1.0, 0.8])
    torch.manual_seed(33)
    head = MLPHead(2, desc.num_descriptors, hidden=(8, 6), activation=activation, output_activation=output)
    with torch.no_grad():
        head.set_scaling(torch.rand(desc.num_descriptors, dtype=torch.float64),
                         0.5 + torch.rand(desc.num_descriptors, dtype=torch.float64))
        if output == "linear":
            head.offset.copy_(torch.tensor([-3.5, -4.25], dtype=torch.float64))
    potential = Potential(desc, head)
    export = export_lammps(potential, tmp_path, routes=("mliap",))
    assert export.routes["mliap"].pair_commands[0].startswith("pair_style mliap model nn model.mliap.model")
    assert_lammps_equals_torch(potential, export.routes["mliap"].pair_commands, tmp_path, seed=34)
    back = mliap_torch.read_mliap(tmp_path / "model.mliap.model", tmp_path / "model.mliap.descriptor")
    configs = random_structures(CUNI, 1, 35)
    e_back = back(make_batch(configs, CUNI, back.cutoff))["energy"]
    e_torch = potential(make_batch(configs, CUNI, potential.cutoff))["energy"]
    assert torch.allclose(e_back, e_torch, rtol=1e-12, atol=0.0)


def test_mlp_with_a_linear_term_runs_as_a_linear_model_overlaid_on_the_network(tmp_path):
    """LAMMPS' nn has no skip connection: the mliap route writes the linear term as ``mliap model linear``
    and overlays it (and the ZBL reference) on ``mliap model nn``."""
    desc = Bispectrum(CUNI, twojmax=4, rcutfac=4.6, radelem=[0.5, 0.45], wj=[1.0, 0.8])
    torch.manual_seed(36)
    head = MLPHead(2, desc.num_descriptors, hidden=(8,), activation="tanh", linear_term=True)
    with torch.no_grad():
        head.set_scaling(torch.rand(desc.num_descriptors, dtype=torch.float64),
                         0.5 + torch.rand(desc.num_descriptors, dtype=torch.float64))
        head.linear.copy_(0.3 * torch.randn(2, desc.num_descriptors, dtype=torch.float64))
        head.offset.copy_(torch.tensor([-3.5, -4.25], dtype=torch.float64))
    potential = Potential(desc, head, ZBL(CUNI, [Z["Cu"], Z["Ni"]], inner=1.5, outer=2.5))
    commands = export_lammps(potential, tmp_path, routes=("mliap",)).routes["mliap"].pair_commands
    assert commands[0].startswith("pair_style hybrid/overlay zbl 1.5 2.5 mliap model linear model.linear.mliap.model")
    assert "pair_coeff * * mliap 1 Cu Ni" in commands and "pair_coeff * * mliap 2 Cu Ni" in commands
    assert_lammps_equals_torch(potential, commands, tmp_path, seed=37)


def test_heads_lammps_nn_cannot_hold_are_refused_with_the_reason():
    desc = Bispectrum(["Cu"], twojmax=2, rcutfac=4.6, radelem=[0.5], wj=[1.0])
    skip = MLPHead(1, desc.num_descriptors, hidden=(4,), activation="tanh", linear_term=True)
    silu = MLPHead(1, desc.num_descriptors, hidden=(4,), activation="silu", linear_term=True)
    assert "linear term" in nn_export_problem(skip)
    assert "silu" in nn_export_problem(split_linear_term(silu)[1])
    assert unsupported_routes(Potential(desc, skip), ("mliap", "unified")) == []
    assert unsupported_routes(Potential(desc, silu), ("mliap", "unified")) == ["mliap"]
    with pytest.raises(TypeError, match="linear term"):
        mliap_torch.write_mliap(Potential(desc, skip), "unused")
    with pytest.raises(TypeError, match="silu"):
        mliap_torch.write_mliap(Potential(desc, split_linear_term(silu)[1]), "unused")


@pytest.mark.parametrize("net_line, message", [("NET 5 1 softmax 1", "LAMMPS would silently evaluate it as linear"),
                                               ("NET 5 1 linear 2", "only one-node outputs"),
                                               ("NET 4 1 linear 1", "NET has 4 descriptors")])
def test_bad_nn_files_name_file_line_and_problem(tmp_path, net_line, message):
    desc_file = tmp_path / "cu.mliap.descriptor"
    desc_file.write_text("rcutfac 4.6\ntwojmax 2\nnelems 1\nelems Cu\nradelems 0.5\nwelems 1.0\n")
    model = tmp_path / "bad.mliap.model"
    model.write_text(f"1 6\n{net_line}\n" + "0 0 0 0 0\n1 1 1 1 1\n" + "0.1\n" * 6)
    with pytest.raises(NNFileError, match=message) as info:
        mliap_torch.read_mliap(model, desc_file)
    assert str(model) in str(info.value)


def test_weight_lines_longer_than_lammps_reads_are_refused(tmp_path):
    desc_file = tmp_path / "cu.mliap.descriptor"
    desc_file.write_text("rcutfac 4.6\ntwojmax 2\nnelems 1\nelems Cu\nradelems 0.5\nwelems 1.0\n")
    model = tmp_path / "long.mliap.model"
    model.write_text("1 43\nNET 5 2 tanh 6 linear 1\n0 0 0 0 0\n1 1 1 1 1\n" + " ".join(["0.1"] * 43) + "\n")
    with pytest.raises(NNFileError, match="at most 30"):
        mliap_torch.read_mliap(model, desc_file)


def test_the_native_option_trains_a_head_that_runs_as_lammps_own_nn(tmp_path):
    """``model=snap_nn_native``: its run writes and checks the ``mliap model nn`` route, equal to torch."""
    run = tmp_path / "run"
    quick = [a for a in QUICK if not a.startswith("export.lammps")]
    proc = run_cli(["model=snap_nn_native", "trainer.max_epochs=2", "export.md_steps=0", f"hydra.run.dir={run}",
                    *quick])
    assert proc.returncode == 0, proc.stderr[-3000:]
    pair = (run / "lammps" / "model.mliap.pair.lammps").read_text()
    assert "pair_style mliap model nn model.mliap.model descriptor sna" in pair
    assert "NET" in (run / "lammps" / "model.mliap.model").read_text()
    check = json.loads((run / "metrics.json").read_text())["lammps"]["lammps_vs_torch"]["mliap"]
    assert check["configurations"] >= 1
    assert check["energy_per_atom"] < 1e-10 and check["force_relative"] < 1e-10
