"""The ``mliap_torch`` console script: ``mliap_torch <command> [arguments]``."""
from __future__ import annotations

import sys
from collections.abc import Callable

USAGE = """usage: mliap_torch <command> [arguments]

commands:
  train    train a potential; arguments are Hydra overrides, e.g.
           mliap_torch train model=snap_quadratic data=mlearn data.element=Ni trainer.max_epochs=200
           (mliap_torch train --help lists the config groups)
  export   write a trained model for LAMMPS (mliap_torch export --help)
  fitsnap  run a FitSNAP input file as it is and write FitSNAP's output files, e.g.
           mliap_torch fitsnap Ta-example.in  (mliap_torch fitsnap --help)
  active-learn  active learning on the built-in EMT Cu/Cu-Ni system, selection by the extrapolation
           grade against random selection (mliap_torch active-learn --help)
"""


def _train(argv: list[str]) -> None:
    from .train import main as train_main

    train_main(argv)


def _export(argv: list[str]) -> None:
    from .export import main as export_main

    sys.exit(export_main(argv))


def _fitsnap(argv: list[str]) -> None:
    from .fitsnap import main as fitsnap_main

    sys.exit(fitsnap_main(argv))


def _active_learn(argv: list[str]) -> None:
    from .active_learn import main as active_learn_main

    sys.exit(active_learn_main(argv))


COMMANDS: dict[str, Callable[[list[str]], None]] = {"train": _train, "export": _export, "fitsnap": _fitsnap,
                                                    "active-learn": _active_learn}


def main(argv: list[str] | None = None) -> None:
    """Dispatch ``argv`` (default ``sys.argv[1:]``) to a subcommand."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        sys.exit(0 if args else 2)
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"mliap_torch: unknown command {command!r}; known: {', '.join(sorted(COMMANDS))}\n\n{USAGE}",
              file=sys.stderr)
        sys.exit(2)
    COMMANDS[command](rest)


if __name__ == "__main__":
    main()
