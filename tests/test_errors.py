"""Error reporting of the command line: one line naming the file or setting, a traceback only on request,
and no third-party deprecation notices."""
import errno
import os
import subprocess
import sys

import pytest

from openmm_dynmatch import cli
from openmm_dynmatch.errors import FileFormatError, UnstableSimulationError, short_reason


def _failing_export(monkeypatch, error):
    from openmm_dynmatch.cli import export

    def run(args):
        raise error

    monkeypatch.setattr(export, "run", run)
    return ["export", "--run", "somewhere", "--out", "model.pt"]


@pytest.mark.parametrize("error, expected", [
    (PermissionError(errno.EACCES, "Permission denied", "/data/report/metrics.json"),
     "/data/report/metrics.json: Permission denied; make it writable (or readable) or choose another path"),
    (OSError(errno.EROFS, "Read-only file system", "/ro/run"),
     "/ro/run: Read-only file system; choose a path on a writable file system"),
    (UnstableSimulationError("3 of 16 CG walkers exploded in every one of 4 attempts"),
     "3 of 16 CG walkers exploded in every one of 4 attempts"),
    (FileFormatError("run/checkpoint.pt: cannot read the training checkpoint\n(EOFError)"),
     "run/checkpoint.pt: cannot read the training checkpoint (EOFError)"),
])
def test_expected_errors_print_one_line(monkeypatch, capsys, error, expected):
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    assert cli.main(_failing_export(monkeypatch, error)) == 2
    printed = capsys.readouterr().err
    assert printed == f"dynmatch export: error: {expected}\n"


def test_debug_flag_and_environment_show_the_traceback(monkeypatch):
    error = FileFormatError("model.pt: cannot read the potential file")
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    with pytest.raises(FileFormatError):
        cli.main(_failing_export(monkeypatch, error) + ["--debug"])
    monkeypatch.setenv(cli.DEBUG_ENV, "1")
    with pytest.raises(FileFormatError):
        cli.main(_failing_export(monkeypatch, error))
    monkeypatch.setenv(cli.DEBUG_ENV, "0")
    assert cli.main(_failing_export(monkeypatch, error)) == 2


def test_unexpected_errors_keep_their_traceback(monkeypatch):
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    with pytest.raises(ZeroDivisionError):
        cli.main(_failing_export(monkeypatch, ZeroDivisionError("a bug")))


def test_short_reason_takes_the_summary_of_an_hdf5_back_trace():
    trace = "HDF5 error back trace\n\n  File \"H5F.c\", line 620\n    unable to open file\n\nEnd of HDF5 error back " \
            "trace\n\nUnable to open/create file 'x.h5'"
    assert short_reason(RuntimeError(trace)) == "RuntimeError: Unable to open/create file 'x.h5'"
    assert short_reason(EOFError()) == "EOFError"
    assert len(short_reason(ValueError("x" * 500))) < 140


def test_importing_the_openmm_adapter_prints_no_simtk_deprecation_notice():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    code = "import openmm_dynmatch.openmm.cg_walkers, openmm_dynmatch.runs, openmm_dynmatch.cli; " \
           "import logging; logging.getLogger().warning('other notices still show')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "simtk" not in result.stderr + result.stdout
    assert "other notices still show" in result.stderr
    help_text = subprocess.run([sys.executable, "-m", "openmm_dynmatch", "--help"], capture_output=True, text=True,
                               env=env, timeout=300)
    assert help_text.returncode == 0 and "simtk" not in help_text.stderr + help_text.stdout
