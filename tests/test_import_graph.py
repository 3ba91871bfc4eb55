"""The package's modules import one another without cycles (import graph built by grimp).

Every import statement counts, also those inside functions (a lazy import hides a cycle from Python's
import machinery, not from the design); imports under ``if TYPE_CHECKING:`` do not.
"""
from __future__ import annotations

import grimp


def import_cycles(graph: grimp.ImportGraph) -> set[tuple[str, ...]]:
    """Every cycle through a direct import ``a → b``: ``a`` followed by the shortest chain from ``b`` back to ``a``."""
    cycles = set()
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            chain = graph.find_shortest_chain(importer=imported, imported=importer)
            if chain:
                cycle = (importer, *chain)
                start = cycle.index(min(cycle[:-1]))  # one rotation per cycle
                cycles.add(cycle[start:-1] + cycle[:start + 1])
    return cycles


def test_package_has_no_import_cycles():
    graph = grimp.build_graph("mliap_torch", cache_dir=None, exclude_type_checking_imports=True)
    assert len(graph.modules) > 50
    cycles = sorted(" -> ".join(c) for c in import_cycles(graph))
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_cycle_finder_sees_a_cycle_through_a_lazy_import():
    graph = grimp.ImportGraph()
    for name in ("pkg", "pkg.a", "pkg.b", "pkg.c"):
        graph.add_module(name)
    graph.add_import(importer="pkg.a", imported="pkg.b")
    graph.add_import(importer="pkg.b", imported="pkg.c")
    graph.add_import(importer="pkg.c", imported="pkg.a")
    assert import_cycles(graph) == {("pkg.a", "pkg.b", "pkg.c", "pkg.a")}
