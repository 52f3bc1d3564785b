"""Exceptions that carry a message meant for the user: what was wrong and how to fix it.

The CLI prints these as one line on stderr (a traceback only with ``--debug``).
"""


class ObjrecError(Exception):
    """Base class of every error objrec raises on purpose."""


class DatasetError(ObjrecError, ValueError):
    """A dataset could not be found, read or split (names the file and the problem)."""


class ModelFileError(ObjrecError, ValueError):
    """A model artifact is missing, corrupt, foreign or refused as unsafe."""


class InputError(ObjrecError, ValueError):
    """Images or labels handed to an estimator have the wrong shape, dtype or values."""
