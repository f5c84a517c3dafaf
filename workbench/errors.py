"""One family of user-facing errors.

Anything a user can fix (a bad preset, a broken data file, a missing model) raises a
subclass of `WorkbenchError` with a message that says what and where. The CLI prints it as
one `error: ...` line and exits 2; the UI shows it as a message. Anything else is a bug.
"""


class WorkbenchError(Exception):
    """An error the user can fix; the message names the file, field or value."""


class PresetError(WorkbenchError):
    """A preset (YAML or override) is invalid: unknown key, wrong type, out of range."""


class DataError(WorkbenchError):
    """A dataset file cannot be read or normalised."""


class ModelError(WorkbenchError):
    """A model cannot be found, imported or loaded."""


class RunError(WorkbenchError):
    """A run folder is missing, busy or in the wrong state for what was asked."""
