"""CLI verbs: each module here defines ``register(subparsers)`` adding its sub-command.

Modules must stay light to import (no PyTorch at module level) so that ``objrec --help``
is instant; the work is imported inside the command's function.
"""
