"""ecgalign.errors: one base for the expected errors; `run` prints them as one line and exits 1, nothing else."""
import pytest

from ecgalign import errors
from ecgalign.download import DownloadError
from ecgalign.params import ParamsError
from ecgalign.ptbxl import DataError
from ecgalign.reports import ReportError
from ecgalign.signals import SignalError


@pytest.mark.parametrize("cls, old_base", [(ParamsError, ValueError), (DataError, ValueError),
                                           (ReportError, ValueError), (SignalError, ValueError),
                                           (DownloadError, RuntimeError), (errors.DiskFullError, OSError), (errors.ArtifactError, ValueError),
                                           (errors.MissingArtifactError, FileNotFoundError)])
def test_every_error_type_is_a_project_error_and_keeps_its_base(cls, old_base):
    assert issubclass(cls, errors.ProjectError) and issubclass(cls, old_base)


def _raise(e):
    def main():
        raise e
    return main


def test_run_prints_one_error_line_and_exits_1(capsys):
    with pytest.raises(SystemExit) as e:
        errors.run(_raise(DataError("data/raw/ptbxl_database.csv: ecg_id 3: strat_fold 0 is outside 1-10\n(row 4)")))
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert err == ("error: data/raw/ptbxl_database.csv: ecg_id 3: strat_fold 0 is outside 1-10 (row 4) "
                   f"({DataError.hint})\n")


def test_a_message_that_says_what_to_do_gets_no_hint(capsys):
    with pytest.raises(SystemExit):
        errors.run(_raise(ParamsError("params.yaml not found: run the stages from the repository root")))
    assert capsys.readouterr().err == "error: params.yaml not found: run the stages from the repository root\n"


def test_other_exceptions_keep_their_traceback():
    with pytest.raises(KeyError):
        errors.run(_raise(KeyError("a bug")))
    assert errors.run(lambda x: x + 1, 1) == 2
