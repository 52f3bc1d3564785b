"""``objrec methods [list] [--approach A]``: the registered recognition methods."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "methods",
        help="list the recognition methods of the four approaches (names for --method/--methods)",
    )
    p.add_argument("action", nargs="?", choices=["list"], default="list", help=argparse.SUPPRESS)
    p.add_argument(
        "--approach",
        choices=["features", "bovw", "eigen", "cnn"],
        help="only the methods of this approach",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from objrec.methods import list_methods, method_spec, unavailable_methods

    names = list_methods(args.approach)
    width = max((len(n) for n in names), default=0)
    for name in names:
        spec = method_spec(name)
        print(f"{name:<{width}}  {spec.approach:<8}  {spec.description}")
    for module, why in unavailable_methods().items():
        print(f"({module.rsplit('.', 1)[-1]} methods not available: {why})")
    return 0
