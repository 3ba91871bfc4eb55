"""Whole models compiled ahead of time (torch.export + AOTInductor) for the LAMMPS plugin's C++ side.

:func:`compile_potential` writes a ``.pt2`` package that ``torch::inductor::AOTIModelPackageLoader``
(or :func:`torch._inductor.aoti_load_package` in Python) runs without Python:

inputs
    ``rij`` (P, 3) Å (``r_j - r_i``), ``pair_i`` (P,) int64 in [0, n) (central atom),
    ``pair_j`` (P,) int64 in [0, M) (index into ``species``), ``species`` (M,) int64 element index of
    every atom LAMMPS has (local and ghost), ``center_species`` (n,) int64 element index of each
    central atom.
outputs
    ``energies`` (n,) eV (descriptor + head, and a reference potential that is not additive, such as PACE's
    core repulsion, which switches the model's energy off; an additive one such as ZBL is not inside:
    LAMMPS overlays it as its own pair style) and ``dE_drij``
    (P, 3) eV/Å, the gradient of the total energy with respect to each ``rij`` (computed inside the
    compiled graph). Pairs beyond their element pair's cutoff contribute exactly zero and get a zero
    gradient.

P, n and M are dynamic, each at least :data:`MIN_SIZE`. ``rij`` and the outputs have the package's
dtype (``float64`` by default, ``float32`` on request). The package metadata (string → string) holds
``mliap_torch.format``, ``mliap_torch.version``, ``mliap_torch.elements`` (space-separated symbols),
``mliap_torch.cutoffs`` (n_el² per-element-pair cutoffs, Å, row-major), ``mliap_torch.dtype``,
``mliap_torch.weights`` (``inside`` or ``separate``) and ``mliap_torch.min_atoms`` /
``mliap_torch.min_pairs`` (:data:`MIN_SIZE`; the plugin pads smaller inputs).

The training code paths are not used as they are: :meth:`ACE._b_from_base` selects each element's
atoms with ``nonzero`` and :meth:`MLPHead.forward` with ``masked_scatter`` (data-dependent shapes that
``torch.export`` cannot trace with symbolic sizes). :class:`CompiledPotential` evaluates every
element's functions on all atoms instead and selects with ``where`` (shape-static; the cost grows with
the number of elements).

Compiled packages are cached by content (model settings, every weight, dtype, torch version and the
CPU's instruction set, since the kernels are compiled for it) under
``${MLIAP_TORCH_CACHE:-${XDG_CACHE_HOME:-~/.cache}/mliap_torch}/compiled/<hash>.pt2``.

Note: ``torch.export.export`` of a graph that calls ``torch.autograd.grad`` fails in torch 2.13 when a
backward formula uses a saved forward output (``sqrt``, ``exp``, ``vector_norm``: "fake tensor in the
exported program constant's list", pytorch#146719); the non-pre-dispatch export
(``torch.export._trace._export(..., pre_dispatch=False)``, the ATen-level IR that AOTInductor lowers
anyway) traces it correctly and is used here.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from ..descriptors.ace import ACE
from ..files import atomic_path
from ..models.embedding import EmbeddingHead
from ..models.heads import LinearHead, MLPHead, QuadraticHead
from ..models.reference import ReferencePotential, overlaid_in_lammps

FORMAT = "mliap_torch.lammps_plugin.compiled"
FORMAT_VERSION = "1"
MIN_SIZE = 2
"""Smallest P, n and M the packages accept (export specialises sizes 0 and 1); pad up to it."""
DTYPES = {"float64": torch.float64, "float32": torch.float32}
# bump when the wrapper's graph changes, so that cached packages of older code are not reused
_CODE_VERSION = "2"
COMPILED_HEADS = (LinearHead, QuadraticHead, MLPHead, EmbeddingHead)
"""The heads :class:`CompiledPotential` evaluates."""


# ---------------------------------------------------------------------- shape-static evaluation
def ace_descriptors_static(descriptor: ACE, A1: torch.Tensor, A: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """B (natoms, K) from the atomic bases as :meth:`ACE._b_from_base`, without data-dependent shapes:
    each element's functions are evaluated on every atom and the central element's are kept."""
    nel, num_atoms = len(descriptor.elements), A1.shape[0]
    dtype = A1.dtype
    A1t, At = A1.T, A.T
    out: torch.Tensor | None = None
    for e in range(nel):
        buf = lambda name: getattr(descriptor, name)  # noqa: E731
        Be = torch.zeros((descriptor.num_descriptors, num_atoms), dtype=dtype, device=A1.device)
        rank1 = A1t.index_select(0, buf(f"rank1_{e}_index")) * buf(f"rank1_{e}_coefficient").to(dtype)
        Be = Be.index_add(0, buf(f"rank1_{e}_column"), rank1)
        level = {1: At}
        for k in descriptor._levels[e]:
            level[k] = (level[k // 2].index_select(0, buf(f"tree_{e}_{k}_left")) *
                        level[k - k // 2].index_select(0, buf(f"tree_{e}_{k}_right")))
            if k in descriptor._ranks[e]:
                terms = level[k].index_select(0, buf(f"table_{e}_{k}_node"))
                coefficient = buf(f"table_{e}_{k}_coefficient").to(dtype)
                Be = Be.index_add(0, buf(f"table_{e}_{k}_column"), terms * coefficient)
        out = Be if out is None else torch.where((centers == e)[None, :], Be, out)
    assert out is not None
    return out.T


def mlp_head_static(head: MLPHead, B: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
    """:meth:`MLPHead.forward` without ``masked_scatter``: every element's network on every atom,
    the central element's output kept."""
    x = (B - head.shift) / head.scale
    energies = head.offset[species]
    if head.linear_term:
        energies = energies + (x * head.linear[species]).sum(-1)
    for e, net in enumerate(head.networks):
        energies = energies + torch.where(species == e, net(x).squeeze(-1), torch.zeros_like(energies))
    return energies


class CompiledPotential(nn.Module):
    """The exported function: (rij, pair_i, pair_j, species, center_species) → (energies, dE_drij).

    Holds a plain :class:`ACE` descriptor, a linear, quadratic, MLP or PACE embedding head and, when the
    potential has one that is not additive, its reference potential (see the module doc)."""

    def __init__(self, descriptor: ACE, head: nn.Module, reference: ReferencePotential | None = None):
        super().__init__()
        self.descriptor = descriptor
        self.head = head
        self.reference = reference

    def energies(self, rij: torch.Tensor, pair_i: torch.Tensor, pair_j: torch.Tensor, species: torch.Tensor,
                 center_species: torch.Tensor) -> torch.Tensor:
        n = center_species.shape[0]
        species_all = torch.cat([center_species, species])
        A1, A = self.descriptor.atomic_base(rij, pair_i, pair_j + n, species_all, n)
        B = ace_descriptors_static(self.descriptor, A1, A, center_species)
        if isinstance(self.head, MLPHead):
            energies = mlp_head_static(self.head, B, center_species)
        else:
            energies = self.head(B, center_species)
        if self.reference is None:
            return energies
        reference = self.reference(rij, pair_i, pair_j + n, species_all, n)
        return self.reference.combine(energies, reference, center_species)

    def forward(self, rij: torch.Tensor, pair_i: torch.Tensor, pair_j: torch.Tensor, species: torch.Tensor,
                center_species: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.enable_grad():
            rij = rij.detach().requires_grad_(True)
            energies = self.energies(rij, pair_i, pair_j, species, center_species)
            (dE_drij,) = torch.autograd.grad([energies.sum()], [rij])
        return energies.detach(), dE_drij


# ---------------------------------------------------------------------- model → module, key, metadata
def compiled_supported(potential: Any) -> bool:
    """True when :func:`compile_potential` can compile ``potential``: ACE with a linear, quadratic, MLP or PACE
    embedding head, and no reference, ZBL (overlaid in LAMMPS) or a non-additive one (compiled in)."""
    reference = getattr(potential, "reference", None)
    return (isinstance(getattr(potential, "descriptor", None), ACE)
            and type(getattr(potential, "head", None)) in COMPILED_HEADS
            and (reference is None or overlaid_in_lammps(reference) or not reference.additive))


def _unsupported(potential: Any, why: str) -> TypeError:
    return TypeError(f"compile_potential: cannot compile {type(potential).__name__} with descriptor "
                     f"{type(getattr(potential, 'descriptor', None)).__name__} and head "
                     f"{type(getattr(potential, 'head', None)).__name__}: {why}")


def exportable_module(potential: Any, dtype: str = "float64") -> CompiledPotential:
    """A :class:`CompiledPotential` with a plain copy of ``potential``'s descriptor and head (learned
    hyperparameters at their current values) and of its reference potential when that is not additive, in
    ``dtype``, without grad.

    Raises:
        TypeError: for models this route cannot express (descriptors other than ACE, other heads, additive
            references other than ZBL).
    """
    from ..models.io import potential_from_settings

    if dtype not in DTYPES:
        raise ValueError(f"compile_potential: dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    descriptor, head = getattr(potential, "descriptor", None), cast(Any, getattr(potential, "head", None))
    if not isinstance(descriptor, ACE):
        raise _unsupported(potential, "only ACE descriptors (plain or with learned hyperparameters) can be "
                                      "compiled; bispectrum models run through the plugin's SNA route")
    if type(head) not in COMPILED_HEADS:
        raise _unsupported(potential, f"the head must be one of {', '.join(c.__name__ for c in COMPILED_HEADS)}")
    if not compiled_supported(potential):
        raise _unsupported(potential, "of additive reference potentials LAMMPS overlays ZBL only")
    reference: ReferencePotential | None = getattr(potential, "reference", None)
    inside = reference if reference is not None and not reference.additive else None
    if inside is not None and float(inside.cutoff) > float(descriptor.cutoff) + 1e-12:
        raise _unsupported(potential, f"the {inside.type_name!r} reference reaches {float(inside.cutoff)} Å, beyond "
                                      f"the descriptor's cutoff {float(descriptor.cutoff)} Å that sets the plugin's "
                                      "neighbor list")
    settings = {"descriptor": {"type": descriptor.type_name, **descriptor.settings()}, "head": head.settings(),
                "reference": None if inside is None else {"type": inside.type_name, **inside.settings()}}
    plain = potential_from_settings(settings)
    parts = ("descriptor", "head") if inside is None else ("descriptor", "head", "reference")
    state = {k: v for k, v in potential.state_dict().items() if k.split(".", 1)[0] in parts}
    plain.load_state_dict({k: v.detach().cpu().clone() for k, v in state.items()})
    module = CompiledPotential(cast(ACE, plain.descriptor), plain.head,  # rebuilt from an ACE
                               plain.reference).to(DTYPES[dtype])
    module.requires_grad_(False)
    return module.eval()


def metadata(module: CompiledPotential, dtype: str, separate: bool = False) -> dict[str, str]:
    """The package metadata (see the module doc). ``separate``: a package whose weights come from a
    weights file (see :func:`compile_potential`); ``mliap_torch.weights`` = ``separate`` and no
    cutoffs (they are in the weights file), else ``inside``."""
    descriptor = module.descriptor
    out = {
        "mliap_torch.format": FORMAT,
        "mliap_torch.version": FORMAT_VERSION,
        "mliap_torch.elements": " ".join(descriptor.elements),
        "mliap_torch.dtype": dtype,
        "mliap_torch.weights": "separate" if separate else "inside",
        "mliap_torch.min_atoms": str(MIN_SIZE),
        "mliap_torch.min_pairs": str(MIN_SIZE),
    }
    if not separate:
        cutoffs = descriptor.pair_cutoffs().detach().to(torch.float64).reshape(-1)
        out["mliap_torch.cutoffs"] = " ".join(repr(float(c)) for c in cutoffs)
    return out


def cache_folder() -> Path:
    """``${MLIAP_TORCH_CACHE:-${XDG_CACHE_HOME:-~/.cache}/mliap_torch}/compiled``."""
    root = os.environ.get("MLIAP_TORCH_CACHE")
    if not root:
        root = str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mliap_torch")
    return Path(root) / "compiled"


def _named_tensors(module: CompiledPotential) -> dict[str, torch.Tensor]:
    """Every buffer and parameter of ``module`` by its fully qualified name."""
    return {**dict(module.named_buffers()), **dict(module.named_parameters())}


def _build_environment(dtype: str) -> dict[str, Any]:
    """What a compiled package depends on besides the model: dtype, torch, platform, CPU, format and code version."""
    return {"dtype": dtype, "torch": torch.__version__, "machine": platform.machine(), "system": platform.system(),
            "cpu": torch.backends.cpu.get_cpu_capability(), "format": FORMAT, "version": FORMAT_VERSION,
            "code": _CODE_VERSION}


def content_key(module: CompiledPotential, dtype: str) -> str:
    """sha256 of everything the package depends on: settings, every tensor's bytes, dtype, torch version,
    platform and CPU capability, and this module's code version."""
    h = hashlib.sha256()
    reference = None if module.reference is None else {"type": module.reference.type_name,
                                                       **module.reference.settings()}
    head = {"descriptor": module.descriptor.settings(), "descriptor_type": module.descriptor.type_name,
            "head": cast(Any, module.head).settings(), "reference": reference, **_build_environment(dtype)}
    h.update(json.dumps(head, sort_keys=True, default=str).encode())
    tensors = _named_tensors(module)
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


# ---------------------------------------------------------------------- export and compile
def example_inputs(module: CompiledPotential, dtype: torch.dtype, num_atoms: int = 3, num_all: int = 7,
                   num_pairs: int = 11, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random inputs of the contract's form (distinct sizes, some pairs inside the cutoff)."""
    g = torch.Generator().manual_seed(seed)
    nel = len(module.descriptor.elements)
    direction = torch.randn(num_pairs, 3, generator=g, dtype=torch.float64)
    direction = direction / direction.norm(dim=1, keepdim=True)
    r = 1.5 + (module.descriptor.cutoff + 0.5) * torch.rand(num_pairs, 1, generator=g, dtype=torch.float64)
    rij = (direction * r).to(dtype)
    return (rij, torch.randint(0, num_atoms, (num_pairs,), generator=g),
            torch.randint(0, num_all, (num_pairs,), generator=g), torch.randint(0, nel, (num_all,), generator=g),
            torch.randint(0, nel, (num_atoms,), generator=g))


def export_module(module: CompiledPotential, dtype: torch.dtype) -> torch.export.ExportedProgram:
    """``module`` exported with dynamic P, n and M (each ≥ :data:`MIN_SIZE`)."""
    P = torch.export.Dim("num_pairs", min=MIN_SIZE)
    n = torch.export.Dim("num_atoms", min=MIN_SIZE)
    M = torch.export.Dim("num_all_atoms", min=MIN_SIZE)
    dynamic = ({0: P}, {0: P}, {0: P}, {0: M}, {0: n})
    args = example_inputs(module, dtype)
    try:
        from torch.export._trace import _export
    except ImportError:  # pragma: no cover - private API moved: the public export (may hit pytorch#146719)
        return torch.export.export(module, args, dynamic_shapes=dynamic, strict=False)
    return _export(module, args, dynamic_shapes=dynamic, strict=False, pre_dispatch=False)


WEIGHTS_MODES = ("inside", "separate")
SEPARATE_CONFIGS = {
    # every tensor stays a named constant that load_constants can replace (Inductor would otherwise inline
    # 1-D tensors of ≤ 8 entries, e.g. per-element offsets, as literals into the code)
    "always_keep_tensor_constants": True,
    "aot_inductor.package_constants_in_so": False,
    # the compile-time weights go into the package next to the .so (data/aotinductor/model/*_weights.blob),
    # which the loader reads, so the package also runs without load_constants
    "aot_inductor.package_constants_on_disk_format": "binary_blob",
}


def weights_path(path: str | Path) -> Path:
    """The weights file that goes with a ``weights="separate"`` package: ``<stem>.weights.pt``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.weights.pt")


def _compile_to(module: CompiledPotential, dtype: str, target: Path, program: torch.export.ExportedProgram | None = None,
                separate: bool = False) -> None:
    """Export (unless ``program`` is given) and AOT-compile ``module`` into ``target`` (``.pt2``), atomically."""
    program = export_module(module, DTYPES[dtype]) if program is None else program
    configs: dict[str, Any] = {"aot_inductor.metadata": metadata(module, dtype, separate)}
    if separate:
        configs.update(SEPARATE_CONFIGS)
    with atomic_path(target) as tmp, tempfile.TemporaryDirectory(dir=target.parent, prefix=".aoti.") as work:
        package = Path(work) / "model.pt2"
        torch._inductor.aoti_compile_and_package(program, package_path=str(package), inductor_configs=configs)
        os.replace(package, tmp)


def architecture_key(module: CompiledPotential, program: torch.export.ExportedProgram, dtype: str) -> str:
    """sha256 of what a ``weights="separate"`` package depends on: the exported graph's code (any value
    baked into it as a literal changes it), the names, dtypes and shapes of its tensors, the elements,
    dtype, torch version, platform and CPU capability — not the tensors' values."""
    h = hashlib.sha256()
    tensors = _named_tensors(module)
    head = {"graph": program.graph_module.code, "signature": str(program.graph_signature),
            "tensors": sorted((k, str(v.dtype), tuple(v.shape)) for k, v in tensors.items()),
            "elements": list(module.descriptor.elements), **_build_environment(dtype),
            "configs": sorted(SEPARATE_CONFIGS.items())}
    h.update(json.dumps(head, sort_keys=True, default=str).encode())
    return h.hexdigest()


def constants(module: CompiledPotential, names: list[str]) -> dict[str, torch.Tensor]:
    """``module``'s tensors under the package's constant names (contiguous copies)."""
    tensors = _named_tensors(module)
    missing = sorted(set(names) - set(tensors))
    if missing:
        raise RuntimeError(f"compile_potential: the package expects constants {missing} the model lacks")
    return {k: tensors[k].detach().contiguous().clone() for k in names}


def _matches(package: Any, module: CompiledPotential, dtype: str) -> bool:
    """The package (with the model's constants loaded) reproduces ``module`` on example inputs.

    The check is for constants left unreplaced, which move the outputs at the size of the weights'
    differences; its tolerance (relative to the largest output) leaves room for the compiled kernels'
    own rounding. The random example inputs lie far from any training configuration, where a network
    head on standardised descriptors sums large terms: Mo ACE+NN of the mlearn study differs from eager
    by 1.4e-8 relative in float64 with its own compile-time constants.
    """
    rtol = 1e-6 if dtype == "float64" else 1e-4
    args = example_inputs(module, DTYPES[dtype], num_atoms=4, num_all=9, num_pairs=24, seed=1)
    got = package(*args)
    expected = module(*args)
    return all(bool((g - e).abs().max() <= rtol * e.abs().max().clamp_min(1e-30)) for g, e in zip(got, expected))


def _separate(module: CompiledPotential, dtype: str, path: Path, cache: bool) -> None:
    """Architecture package (compiled once per :func:`architecture_key`) at ``path`` and the model's
    constants next to it (:func:`weights_path`)."""
    program = export_module(module, DTYPES[dtype])
    cached = cache_folder() / f"arch-{architecture_key(module, program, dtype)}.pt2" if cache else path
    for attempt in range(2):
        if attempt or not cache or not cached.is_file():
            _compile_to(module, dtype, cached, program, separate=True)
        package = torch._inductor.aoti_load_package(str(cached))
        values = constants(module, package.get_constant_fqns())
        package.load_constants(values, check_full_update=True)
        if _matches(package, module, dtype):
            break
    else:
        raise RuntimeError("compile_potential: the compiled package does not reproduce the model with its "
                           "constants replaced (weights='separate'); use weights='inside'")
    if cached != path:
        with atomic_path(path) as tmp:
            shutil.copyfile(cached, tmp)
    cutoffs = module.descriptor.pair_cutoffs().detach().to(torch.float64).reshape(-1).contiguous()
    with atomic_path(weights_path(path)) as tmp:
        torch.save({**values, "mliap_torch.cutoffs": cutoffs}, tmp)


def compile_potential(potential: Any, path: str | Path, *, cache: bool = True, dtype: str = "float64",
                      weights: str = "inside") -> Path:
    """Export ``potential``'s descriptor and head and compile them with AOTInductor into ``path`` (``.pt2``).

    With ``cache`` the package is built once per content hash (see :func:`content_key`) in
    :func:`cache_folder` and copied to ``path``. ``dtype`` ``"float32"`` compiles a float32 model
    (float32 ``rij`` and outputs). Returns ``path``.

    ``weights="separate"`` compiles the architecture once per :func:`architecture_key` (models that
    differ only in weights, learned cutoffs included, share it) with every tensor kept as a replaceable
    constant, and writes the model's tensors to :func:`weights_path` (``torch.save`` of a dict
    FQN → tensor, readable in C++ with ``torch::pickle_load``; plus ``"mliap_torch.cutoffs"``, the
    per-element-pair cutoffs, as the package's metadata then has none). The C++ side passes them to
    ``AOTIModelPackageLoader::load_constants(map, false, true)`` before running. The package alone
    runs with the weights of the model it was first compiled for.

    Raises:
        TypeError: the model cannot be compiled (names it; see :func:`exportable_module`).
    """
    path = Path(path)
    if path.suffix != ".pt2":
        raise ValueError(f"compile_potential: {path} must end in .pt2")
    if weights not in WEIGHTS_MODES:
        raise ValueError(f"compile_potential: weights must be one of {WEIGHTS_MODES}, got {weights!r}")
    module = exportable_module(potential, dtype)
    if weights == "separate":
        _separate(module, dtype, path, cache)
        return path
    if not cache:
        _compile_to(module, dtype, path)
        return path
    cached = cache_folder() / f"{content_key(module, dtype)}.pt2"
    if not cached.is_file():
        _compile_to(module, dtype, cached)
    with atomic_path(path) as tmp:
        shutil.copyfile(cached, tmp)
    return path
