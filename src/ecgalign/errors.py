"""The project's expected errors, all under one base, ProjectError; `run` is how every stage script calls its main.

An expected error is bad input the user can fix (a damaged record, a typo'd param, an artifact out of step with
data/reports.jsonl): its message names the culprit (file, ecg_id, param key) and, usually, what to do. `run` prints it
as one `error: ...` line on stderr and exits with status 1, without a traceback. Anything else is a bug, and keeps its
traceback so that it shows where it is.

The types live here, one place for all of them (so that a loader in ecgalign.artifacts can raise them without importing
the module that owns the concept); each owning module re-exports its own: `from ecgalign.ptbxl import DataError` keeps
working. Each keeps its old base as well (DataError is still a ValueError, DownloadError a RuntimeError). Two types
live in modules of their own still: ecgalign.models.CheckpointError and ecgalign.text.TextModelError.
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


class ParamsError(ProjectError, ValueError):
    """A params.yaml value that no stage can run with (ecgalign.params)."""
    hint = "fix params.yaml"


class DataError(ProjectError, ValueError):
    """The dataset on disk is not a usable PTB-XL layout; the message names the file, record and field (ptbxl)."""
    hint = "fix or replace the dataset (data.source, data.path), then rerun dvc repro"


class ReportError(ProjectError, ValueError):
    """A record's scp_codes cannot be turned into a report; the message names the ecg_id (ecgalign.reports)."""
    hint = "fix the record's scp_codes, or set reports.on_error=skip to drop such records"


class SignalError(ProjectError, ValueError):
    """A record that cannot go into signals.npy; the message names the ecg_id, the file and the field (signals)."""
    hint = "restore the record from a fresh PTB-XL copy, then rerun dvc repro"


class DownloadError(ProjectError, RuntimeError):
    """The release could not be fetched or verified; the message names the URL or the files and what to do."""
    hint = "rerun the download stage"


class DiskFullError(ProjectError, OSError):
    """The disk filled up while an artifact was written (ecgalign.atomic): nothing was written under its name."""
    hint = "free some space and rerun"


class ArtifactError(ProjectError, ValueError):
    """An artifact that does not fit the others (not row-aligned with data/reports.jsonl, wrong shape)."""
    hint = "rerun the pipeline (dvc repro) so that every artifact is rebuilt from the same inputs"


class MissingArtifactError(ProjectError, FileNotFoundError):
    """An artifact a stage reads is not there: the stage that writes it has not run."""
    hint = "run the pipeline up to this stage (dvc repro)"


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
