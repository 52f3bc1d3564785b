import subprocess
import sys

import pytest

import objrec
from objrec.cli import main
from objrec.errors import ObjrecError


def test_help_and_version(capsys):
    assert main([]) == 0
    assert "COMMAND" in capsys.readouterr().out
    assert main(["--version"]) == 0
    assert objrec.__version__ in capsys.readouterr().out


def test_unknown_method_names_the_available_ones():
    with pytest.raises(ObjrecError, match=r"unknown method 'no-such'.*available"):
        objrec.make_method("no-such")


def test_console_script_runs_as_module():
    out = subprocess.run(
        [sys.executable, "-m", "objrec.cli", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stdout.startswith("objrec ")


def test_closed_stdout_ends_quietly():
    """``objrec ... | head`` closes the pipe early: no traceback, exit status 1."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "objrec", "data", "info", "digits"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # the reader is gone before the command writes anything
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1, err
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_methods_lists_every_registered_method(capsys):
    assert main(["methods"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [line.split()[0] for line in lines if not line.startswith("(")]
    assert names == objrec.list_methods()
    assert main(["methods", "list", "--approach", "eigen"]) == 0
    rows = [line.split()[:2] for line in capsys.readouterr().out.splitlines()]
    assert rows and all(approach == "eigen" for _, approach in rows)
    assert {name for name, _ in rows} == set(objrec.list_methods("eigen"))
