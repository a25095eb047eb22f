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


def _types():
    return [v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, errors.ProjectError)
            and v is not errors.ProjectError]


def test_each_type_is_named_for_its_module_attribute_and_pickles():
    """The signals stage's reader processes send their errors back through pickle: a type must be findable by the
    name it carries, and come back with its message."""
    import pickle
    types = _types()
    assert len(types) == 11
    for cls in types:
        assert getattr(errors, cls.__name__) is cls and cls.__module__ == "ecgalign.errors"
        assert cls.__doc__ and cls.hint
        back = pickle.loads(pickle.dumps(cls("ecg_id 3: broken")))
        assert type(back) is cls and str(back) == "ecg_id 3: broken"


def test_the_owning_modules_re_export_their_types():
    from ecgalign import atomic, models, outcomes, text
    assert outcomes.OutcomeError is errors.OutcomeError and issubclass(outcomes.OutcomeError, ValueError)
    assert models.CheckpointError is errors.CheckpointError and issubclass(models.CheckpointError, ValueError)
    assert text.TextModelError is errors.TextModelError and issubclass(text.TextModelError, RuntimeError)
    assert atomic.DiskFullError is errors.DiskFullError
    assert errors.ParamsError.hint == "fix params.yaml" and errors.CheckpointError.hint == errors.ProjectError.hint
