"""Run the ``geoprobe`` command in-process through its real entry point (shared by CLI tests)."""

import sys

import pytest

from geometry_probe.cli.main import main


def run_cli(args, capsys):
    """Run ``geoprobe`` in-process through ``main()``; return (exit code, stdout, stderr)."""
    sys_argv = sys.argv
    sys.argv = ["geoprobe", *map(str, args)]
    try:
        with pytest.raises(SystemExit) as info:
            main()
    finally:
        sys.argv = sys_argv
    out = capsys.readouterr()
    return info.value.code, out.out, out.err
