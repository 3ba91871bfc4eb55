"""Errors caused by the user's input, reported as one paragraph (exit status 2 on the command line).

Every exception here is a :class:`UserError`: its message names what is wrong — the file, the
configuration and the field, or the config key — and what to do about it. The command-line entry
points print such messages without a traceback; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

USER_ERROR_STATUS = 2
"""Exit status of the command-line entry points for a :class:`UserError`."""


class UserError(Exception):
    """An input problem the user can fix; ``str(error)`` is the one-paragraph message shown as is."""


class ConfigError(UserError, ValueError):
    """A training configuration that cannot run."""


class DataError(UserError, ValueError):
    """Bad input data; the message names the file, the configuration and the field."""


class SanityError(DataError):
    """Data that read fine but is physically implausible (overlapping atoms, a collapsed cell, a cell far
    smaller than the cutoff); the message names the check's setting that turns it off."""


class ModelFileError(UserError, ValueError):
    """A model file that is missing, unreadable, not a mliap_torch model or not safe to load."""


class CheckpointError(UserError, ValueError):
    """A Lightning checkpoint that cannot be resumed (unreadable, unsafe, or from a different model)."""


class RunFolderError(UserError, ValueError):
    """A path that is not a usable run folder."""


class ExportRouteError(UserError, ValueError):
    """A LAMMPS route that cannot express the model (e.g. ``pair_style snap`` for a neural head)."""


class TrainingDivergedError(UserError, RuntimeError):
    """Gradient training produced a non-finite or exploding loss; nothing is exported."""
