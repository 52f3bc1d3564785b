"""``python -m objrec.frameworks.worker MODULE DATA.npz OUT.json --epochs E --batch-size B
--seed S``: one framework's run, in a process of its own.

Writes the framework file's result (see :class:`objrec.frameworks._common.EpochClock`)
plus ``import_seconds`` (importing the file, i.e. its framework), ``peak_rss_mib`` (this
process's peak resident memory, ``getrusage`` ``ru_maxrss``: the framework, the data and
the training together) and ``lines`` (non-blank, non-comment code lines of the file,
docstrings excluded). With ``--export DIR``: ``exports``, the deployment checks of
:mod:`objrec.frameworks.exports` on the first 256 test images.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import resource
import sys
import time
from pathlib import Path


def count_lines(path: str | Path) -> int:
    """Lines of code in a Python file: not blank, not a comment, not part of a docstring."""
    text = Path(path).read_text()
    doc_lines: set[int] = set()
    for node in ast.walk(ast.parse(text)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                doc_lines.update(range(body[0].lineno, body[0].end_lineno + 1))
    return sum(
        1
        for i, line in enumerate(text.splitlines(), 1)
        if line.strip() and not line.strip().startswith("#") and i not in doc_lines
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m objrec.frameworks.worker")
    p.add_argument("module")
    p.add_argument("data")
    p.add_argument("out")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--export", metavar="DIR", help="export the model there and check parity")
    args = p.parse_args(argv)
    from objrec.frameworks._common import load_split

    data = load_split(args.data)
    t = time.perf_counter()
    mod = importlib.import_module(f"objrec.frameworks.{args.module}")
    import_seconds = time.perf_counter() - t
    out = mod.train(data, args.epochs, args.batch_size, args.seed)
    model = out.pop("model", None)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before any export
    if args.export and model is not None:
        from objrec.frameworks.exports import export_model

        out["exports"] = export_model(model, data["x_test"][:256], args.export)
    out["import_seconds"] = import_seconds
    out["peak_rss_mib"] = peak
    out["lines"] = count_lines(mod.__file__)
    Path(args.out).write_text(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
