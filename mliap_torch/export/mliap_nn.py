"""``pair_style mliap model nn`` files: LAMMPS' own multilayer perceptron on ML-IAP descriptors.

The format (``src/ML-IAP/mliap_model_nn.cpp``, LAMMPS 4Feb2025) after the header ``nelements
nparams``: one line ``NET ndescriptors nlayers act_1 nodes_1 ... act_L nodes_L`` (the last layer is the
output, one node), then per element (in the descriptor file's element order) ``ndescriptors`` values of
``Scale0`` (subtracted from the descriptors), ``ndescriptors`` of ``Scale1`` (divided by), and
``nparams`` weights, layer by layer and node by node, each node's bias first; values may span lines, a
weight line holds at most 30 values. Activations: ``linear``, ``sigmoid``, ``tanh``, ``relu`` (LAMMPS
takes any other name for ``linear`` without a word, so both directions here refuse other names).

On the mliap_torch side the network is an :class:`~mliap_torch.models.heads.MLPHead` without a linear
term: hidden layers and activations as in the file, the output layer's activation as
``output_activation``; the shared ``shift``/``scale`` hold Scale0/Scale1 when all elements have the same
ones, otherwise each element's scaling is folded into its first layer.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch

from ..models.heads import LinearHead, MLPHead
from .file_words import SnapFileError, format_float

__all__ = ["LAMMPS_ACTIVATIONS", "nn_export_problem", "read_nn_model", "nn_model_text", "split_linear_term"]

LAMMPS_ACTIVATIONS = ("linear", "sigmoid", "tanh", "relu")
"""The activations LAMMPS' ``mliap model nn`` evaluates."""
MAX_WEIGHTS_PER_LINE = 30
"""LAMMPS rejects weight lines with more values."""
VALUES_PER_LINE = 5


class NNFileError(SnapFileError):
    """An ``mliap model nn`` file that LAMMPS would reject or misread (the message names file and line)."""


def _words(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, words) of the non-blank lines, comments and quotes removed."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        for number, raw in enumerate(fh, start=1):
            words = raw.split("#", 1)[0].replace('"', " ").replace("'", " ").split()
            if words:
                yield number, words


def _float(path: Path, number: int, word: str, what: str) -> float:
    try:
        return float(word)
    except ValueError:
        raise NNFileError(f"{path}:{number}: {what}: {word!r} is not a number") from None


def _int(path: Path, number: int, word: str, what: str) -> int:
    try:
        return int(word)
    except ValueError:
        raise NNFileError(f"{path}:{number}: {what}: {word!r} is not an integer") from None


def read_nn_model(path: str | Path, num_descriptors: int, num_elements: int) -> MLPHead:
    """The :class:`MLPHead` of an ``mliap model nn`` file for a descriptor with ``num_descriptors``
    components and ``num_elements`` elements (the descriptor file's)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    lines = _words(path)
    number, header = next(lines, (0, []))
    if len(header) != 2:
        raise NNFileError(f"{path}:{number}: expected a header 'nelements nparams', got {' '.join(header)!r}")
    nelem = _int(path, number, header[0], "number of elements")
    nparams = _int(path, number, header[1], "number of parameters")
    if nelem != num_elements:
        raise NNFileError(f"{path}:{number}: {nelem} element(s), the descriptor has {num_elements}")
    number, net = next(lines, (number, []))
    if not net or not net[0].startswith("NET"):
        raise NNFileError(f"{path}:{number}: expected 'NET ndescriptors nlayers activation nodes ...' "
                          f"after the header, got {' '.join(net)!r}")
    if len(net) < 3:
        raise NNFileError(f"{path}:{number}: the NET line needs ndescriptors and nlayers")
    ndesc = _int(path, number, net[1], "ndescriptors")
    nlayers = _int(path, number, net[2], "nlayers")
    if ndesc != num_descriptors:
        raise NNFileError(f"{path}:{number}: NET has {ndesc} descriptors, the descriptor file gives "
                          f"{num_descriptors}")
    if nlayers < 1 or len(net) != 3 + 2 * nlayers:
        raise NNFileError(f"{path}:{number}: NET declares {nlayers} layer(s), which needs {2 * max(nlayers, 1)} "
                          f"words after it (activation, nodes per layer), got {len(net) - 3}")
    activations = net[3::2]
    nodes = [_int(path, number, w, "nodes of a layer") for w in net[4::2]]
    for name in activations:
        if name not in LAMMPS_ACTIVATIONS:
            raise NNFileError(f"{path}:{number}: activation {name!r} is not one of {', '.join(LAMMPS_ACTIVATIONS)}; "
                              "LAMMPS would silently evaluate it as linear")
    if nodes[-1] != 1:
        raise NNFileError(f"{path}:{number}: the output layer has {nodes[-1]} nodes; LAMMPS' energy is its first "
                          "node and its forces assume one, so only one-node outputs are read")
    widths = [ndesc, *nodes]
    expected = sum((widths[k] + 1) * widths[k + 1] for k in range(nlayers))
    if nparams != expected:
        raise NNFileError(f"{path}: the header declares {nparams} parameters, the NET line needs {expected}")

    def values(count: int, what: str, max_per_line: int | None = None) -> list[float]:
        out: list[float] = []
        while len(out) < count:
            line = next(lines, None)
            if line is None:
                raise NNFileError(f"{path}: ends after {len(out)} of {count} values of {what}")
            n, words = line
            if max_per_line is not None and len(words) > max_per_line:
                raise NNFileError(f"{path}:{n}: {len(words)} values on one line; LAMMPS reads at most {max_per_line}")
            if len(out) + len(words) > count:
                raise NNFileError(f"{path}:{n}: the line runs past the {count} values of {what}")
            out += [_float(path, n, w, what) for w in words]
        return out

    shifts, scales, weights = [], [], []
    for e in range(nelem):
        shifts.append(torch.tensor(values(ndesc, f"Scale0 of element {e + 1}"), dtype=torch.float64))
        scales.append(torch.tensor(values(ndesc, f"Scale1 of element {e + 1}"), dtype=torch.float64))
        if bool((scales[-1] == 0).any()):
            raise NNFileError(f"{path}: Scale1 of element {e + 1} has zeros (LAMMPS divides by it)")
        weights.append(torch.tensor(values(nparams, f"the weights of element {e + 1}", MAX_WEIGHTS_PER_LINE),
                                    dtype=torch.float64))
    extra = next(lines, None)
    if extra is not None:
        raise NNFileError(f"{path}:{extra[0]}: unexpected content after the {nelem} element block(s)")

    head = MLPHead(nelem, ndesc, hidden=nodes[:-1], activation=activations[:-1], output_activation=activations[-1])
    shared = all(torch.equal(s, shifts[0]) for s in shifts) and all(torch.equal(s, scales[0]) for s in scales)
    with torch.no_grad():
        head.shift.copy_(shifts[0] if shared else torch.zeros(ndesc, dtype=torch.float64))
        head.scale.copy_(scales[0] if shared else torch.ones(ndesc, dtype=torch.float64))
        for e in range(nelem):
            start = 0
            for k, layer in enumerate(head.layers(e)):
                size = (widths[k] + 1) * widths[k + 1]
                block = weights[e][start:start + size].reshape(widths[k + 1], widths[k] + 1)
                start += size
                w, b = block[:, 1:], block[:, 0]
                if k == 0 and not shared:  # W (B - s0) / s1 + b = (W / s1) B + (b - W (s0 / s1))
                    b = b - w @ (shifts[e] / scales[e])
                    w = w / scales[e]
                layer.weight.copy_(w)
                layer.bias.copy_(b)
    return head


def nn_export_problem(head: torch.nn.Module) -> str | None:
    """Why ``head`` cannot be written as an ``mliap model nn`` file, or None when it can."""
    if not isinstance(head, MLPHead):
        return f"a {type(head).__name__} is not a neural network"
    if head.linear_term:
        return ("the MLP has a linear term, and LAMMPS' nn has no skip connection (the mliap route of "
                "export_lammps writes it as a linear model overlaid on the network: split_linear_term)")
    unsupported = sorted({a for a in [*head.activations, head.output_activation] if a not in LAMMPS_ACTIVATIONS})
    if unsupported:
        return (f"activation(s) {', '.join(unsupported)} are not among LAMMPS' nn activations "
                f"({', '.join(LAMMPS_ACTIVATIONS)})")
    if head.output_activation != "linear" and bool((head.offset != 0).any()):
        return "the per-element energy offset sits after a nonlinear output activation, which LAMMPS' nn cannot add"
    return None


def split_linear_term(head: MLPHead) -> tuple[LinearHead, MLPHead]:
    """``head`` (with a linear term) as a linear head on the raw descriptors and the network without the
    term, whose energies add up to ``head``'s: lin·(B - shift)/scale = (lin/scale)·B - lin·(shift/scale)."""
    network = MLPHead(head.num_elements, head.num_descriptors, hidden=head.hidden, activation=head.activation,
                      output_activation=head.output_activation)
    network.load_state_dict({k: v for k, v in head.state_dict().items() if k != "linear"})
    linear = LinearHead(head.num_elements, head.num_descriptors)
    weight = head.linear.detach() / head.scale
    linear.set_coefficients(torch.cat([-(weight * head.shift).sum(1, keepdim=True), weight], dim=1))
    return linear, network


def _rows(values: list[float]) -> list[str]:
    return [" ".join(format_float(v) for v in values[k:k + VALUES_PER_LINE]) for k in range(0, len(values), VALUES_PER_LINE)]


def nn_model_text(head: MLPHead) -> str:
    """The ``mliap model nn`` file of ``head`` (check :func:`nn_export_problem` first)."""
    problem = nn_export_problem(head)
    if problem is not None:
        raise ValueError(f"cannot write an mliap nn model: {problem}")
    widths = [head.num_descriptors, *head.hidden, 1]
    acts = [*head.activations, head.output_activation]
    nparams = sum((widths[k] + 1) * widths[k + 1] for k in range(len(widths) - 1))
    lines = ["# ML-IAP nn model written by mliap_torch (pair_style mliap model nn)",
             f"{head.num_elements} {nparams}",
             "NET " + " ".join([str(head.num_descriptors), str(len(acts))] + [f"{a} {n}" for a, n in zip(acts, widths[1:])])]
    for e in range(head.num_elements):
        lines += ["# Scale0", *_rows(head.shift.tolist()), "# Scale1", *_rows(head.scale.tolist()), "# weights"]
        layers = head.layers(e)
        for k, layer in enumerate(layers):
            bias = layer.bias.detach().clone()
            if k == len(layers) - 1:
                bias = bias + head.offset[e].detach()  # the output is linear when the offset is nonzero
            block = torch.cat([bias[:, None], layer.weight.detach()], dim=1)
            lines += _rows(block.reshape(-1).tolist())
    return "\n".join(lines) + "\n"
