"""The project's expected errors, all under one base, ProjectError; `run` is how every stage script calls its main.

An expected error is bad input the user can fix (a damaged record, a typo'd param, an artifact out of step with
data/reports.jsonl): its message names the culprit (file, ecg_id, param key) and, usually, what to do. `run` prints it
as one `error: ...` line on stderr and exits with status 1, without a traceback. Anything else is a bug, and keeps its
traceback so that it shows where it is.

The types live here, one place for all of them (so that a loader in ecgalign.artifacts can raise them without importing
the module that owns the concept), each defined by one `_error(...)` line: its name, the base it keeps (DataError is
still a ValueError, DownloadError a RuntimeError), what it is and what to do. Each owning module re-exports its own:
`from ecgalign.ptbxl import DataError` and `from ecgalign.models import CheckpointError` keep working.
"""
from __future__ import annotations

import re
import sys

# words that say what to do: a message holding one needs no generic hint appended
_ADVICE = re.compile(r"\b(re-?run|run|set|point|check|fix|restore|retrain|free|use|install|write|delete|remove)\b",
                     re.IGNORECASE)


class ProjectError(Exception):
    """Base of the project's expected errors; `hint` is what to do, printed when the message does not say it."""
    hint = "fix the input named above, then rerun the stage"


def _error(name: str, base: type[Exception], doc: str, hint: str = ProjectError.hint) -> type[ProjectError]:
    """One expected error type: a ProjectError that is also a `base` (so `except ValueError` still catches it), with
    what it is (its docstring) and what to do (its hint). Defined at module level here, so that it pickles: the
    signals stage's reader processes send theirs back."""
    return type(name, (ProjectError, base), {"__doc__": doc, "hint": hint, "__module__": __name__,
                                             "__qualname__": name})


# name, the base it keeps, what it is (the module that raises it), what to do
ParamsError = _error("ParamsError", ValueError, "A params.yaml value that no stage can run with (ecgalign.params).",
                     "fix params.yaml")
DataError = _error("DataError", ValueError, "The dataset on disk is not a usable PTB-XL layout; the message names the "
                   "file, record and field (ecgalign.ptbxl).",
                   "fix or replace the dataset (data.source, data.path), then rerun dvc repro")
ReportError = _error("ReportError", ValueError, "A record's scp_codes cannot be turned into a report; the message "
                     "names the ecg_id (ecgalign.reports).",
                     "fix the record's scp_codes, or set reports.on_error=skip to drop such records")
SignalError = _error("SignalError", ValueError, "A record that cannot go into signals.npy; the message names the "
                     "ecg_id, the file and the field (ecgalign.signals).",
                     "restore the record from a fresh PTB-XL copy, then rerun dvc repro")
DownloadError = _error("DownloadError", RuntimeError, "The release could not be fetched or verified; the message "
                       "names the URL or the files and what to do (ecgalign.download).", "rerun the download stage")
DiskFullError = _error("DiskFullError", OSError, "The disk filled up while an artifact was written (ecgalign.atomic): "
                       "nothing was written under its name.", "free some space and rerun")
ArtifactError = _error("ArtifactError", ValueError, "An artifact that does not fit the others (not row-aligned with "
                       "data/reports.jsonl, wrong shape; ecgalign.artifacts).",
                       "rerun the pipeline (dvc repro) so that every artifact is rebuilt from the same inputs")
MissingArtifactError = _error("MissingArtifactError", FileNotFoundError, "An artifact a stage reads is not there: the "
                              "stage that writes it has not run (ecgalign.artifacts).",
                              "run the pipeline up to this stage (dvc repro)")
OutcomeError = _error("OutcomeError", ValueError, "An outcome CSV (or a row of it) that cannot be used; the message "
                      "names the file, line and ecg_id (ecgalign.outcomes).",
                      "fix the outcome CSV (finetune.outcomes), or set finetune.on_error=skip to drop such rows")
CheckpointError = _error("CheckpointError", ValueError, "A model checkpoint that cannot be used; the message names the "
                         "file (ecgalign.models).")
TextModelError = _error("TextModelError", RuntimeError, "A text model that cannot be loaded; the message says what to "
                        "do (ecgalign.text).")


def describe(e: ProjectError) -> str:
    """The error as one line: its message, plus its type's hint when the message does not say what to do."""
    message = " ".join(line.strip() for line in str(e).splitlines() if line.strip()) or type(e).__name__
    if not _ADVICE.search(message) and e.hint:
        message = f"{message} ({e.hint})"
    return message


def run(main, *args, **kwargs):
    """Call a stage's main(*args, **kwargs); a ProjectError ends the process with one `error: ...` line on stderr and
    exit status 1. Other exceptions propagate with their traceback."""
    try:
        return main(*args, **kwargs)
    except ProjectError as e:
        sys.stdout.flush()
        print(f"error: {describe(e)}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
