"""``objrec nets list`` and ``objrec nets summary NAME [--input 1x28x28]``."""

from __future__ import annotations

import argparse

from objrec.cli_types import positive_int


def register(subparsers) -> None:
    p = subparsers.add_parser("nets", help="list the networks, or show one layer by layer")
    sub = p.add_subparsers(dest="nets_command", metavar="ACTION")
    lst = sub.add_parser("list", help="the available networks")
    lst.set_defaults(func=run_list)
    s = sub.add_parser(
        "summary",
        help="each layer's output shape, parameter count and multiply-adds (like Keras' model.summary())",
    )
    s.add_argument("name", help="network name (objrec nets list)")
    s.add_argument(
        "--input", default=None, metavar="CxHxW", help="input shape, e.g. 1x28x28 or 3x32x32"
    )
    s.add_argument(
        "--classes", type=positive_int, default=10, help="number of classes (default 10)"
    )
    s.set_defaults(func=run_summary)
    p.set_defaults(func=lambda args: p.print_help() or 0)


def parse_shape(text: str) -> tuple[int, int, int]:
    """'1x28x28' -> (1, 28, 28); 'HxW' means one channel."""
    from objrec.errors import ObjrecError

    try:
        dims = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        dims = ()
    if len(dims) == 2:
        dims = (1, *dims)
    if len(dims) != 3 or min(dims) < 1:
        raise ObjrecError(f"--input {text!r}: expected CxHxW such as 1x28x28 or 3x32x32")
    return dims


def run_list(args: argparse.Namespace) -> int:
    from objrec.nets.registry import list_models, model_info

    for name in list_models():
        print(f"{name:<14} {model_info(name).description}")
    return 0


def run_summary(args: argparse.Namespace) -> int:
    from objrec.nets import create_model, model_info
    from objrec.nets.summary import format_summary

    shape = parse_shape(args.input) if args.input else model_info(args.name).default_input
    model = create_model(args.name, shape[0], args.classes, shape[1:])
    print(format_summary(model, shape, title=args.name))
    return 0
