"""User-facing errors.

A `FactoryError` is a mistake the user can fix (bad flag, missing folder, corrupt file). The CLI prints
its message on one line and exits with code 2; anything else is a bug and keeps its traceback.
"""


class FactoryError(Exception):
    """An error caused by input the user controls; the message says how to fix it."""
