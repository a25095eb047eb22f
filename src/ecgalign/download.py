"""Download one PTB-XL release from PhysioNet (data.source=physionet): resumable, parallel, every file verified.

    <base_url>/<version>/SHA256SUMS.txt      "<sha256>  <relative path>" for every file of the release
    <base_url>/<version>/ptbxl_database.csv, scp_statements.csv
    <base_url>/<version>/records100/00000/00001_lr.{hea,dat} ...   (records500/... for 500 Hz)

Only SHA256SUMS.txt, the two tables and the records of the chosen rate are fetched (never the 1.7 GB zip) into
`dest/<version>/`, a persistent folder. Each file is written to "<file>.part", checked against SHA256SUMS.txt, then
renamed: a file under its final name is always complete and verified. A small state file (STATE) remembers the
(size, mtime_ns, sha256) of every verified file, so that a rerun skips them without re-hashing; a file that is
missing, changed or fails its checksum is fetched again. SHA256SUMS.txt is kept once fetched (a release never
changes), so a rerun on a complete folder needs no network at all.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import requests
import urllib3
from tqdm import tqdm

from .errors import DownloadError

SUMS = "SHA256SUMS.txt"
TABLES = ("ptbxl_database.csv", "scp_statements.csv")
STATE = ".verified.json"    # {relative path: [size, mtime_ns, sha256]} of files already verified
RETRIES = 3                 # extra attempts after a server error (5xx, 429) or a dropped connection
BACKOFF = 0.5               # seconds before the first retry, doubled for each further one
CHUNK = 1 << 16
SAVE_EVERY = 30.0           # seconds between saves of the state file during a long download
OFFLINE_HINT = ("data.source=physionet needs network access; on an offline machine set data.source=local with "
                "data.path pointing to a PTB-XL copy, or use data.source=synthetic")


class _Unreachable(Exception):
    """No connection to the server could be made (refused, DNS failure, connect timeout), even after retries."""


class _Aborted(_Unreachable):
    """Not tried (or given up between retries) because another thread found the server unreachable."""


def _reason(e: Exception, timeout: float) -> str:
    """A short reason for a requests exception: '[Errno 111] Connection refused', 'no answer within 10 s', ..."""
    if isinstance(e, requests.Timeout):
        return f"no answer within {timeout:g} s"
    if isinstance(e, requests.exceptions.ChunkedEncodingError):
        return "connection broken mid-transfer"
    m = re.search(r"\[Errno -?\d+\][^'\")]*", str(e))
    return m.group(0).strip() if m else f"{type(e).__name__}: {str(e)[:200]}"


def _back_off(attempt: int) -> None:
    """The pause before retry `attempt` (1, 2, ...): BACKOFF * 2**(attempt - 1) seconds."""
    time.sleep(BACKOFF * 2 ** (attempt - 1))


def _connect_failed(e: requests.RequestException) -> bool:
    """True when no connection could be made at all (refused, DNS failure, connect timeout)."""
    cause = getattr(e.args[0], "reason", None) if e.args else None
    return isinstance(e, requests.ConnectTimeout) or isinstance(cause, urllib3.exceptions.NewConnectionError)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def parse_sums(text: str, source: str = SUMS) -> dict[str, str]:
    """SHA256SUMS.txt as {relative posix path: sha256}; refuses malformed lines and paths that would leave the folder."""
    sums = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = re.fullmatch(r"([0-9a-fA-F]{64}) [ *](.+)", line.rstrip("\r"))
        if not m:
            raise DownloadError(f"{source} line {n}: expected '<sha256>  <path>', got {line[:100]!r}")
        digest, rel = m.group(1).lower(), m.group(2)
        parts = rel.split("/")
        if "" in parts or ".." in parts or "\\" in rel or ":" in parts[0] or rel.endswith(".part") or rel == STATE:
            raise DownloadError(f"{source} line {n}: refusing path {rel!r}: a path must stay inside the download "
                                f"folder (no absolute path, '..', '\\' or drive) and not be *.part or {STATE}")
        sums[rel] = digest
    return sums


def wanted_files(sums: dict[str, str], sampling_rate: int, source: str = SUMS) -> list[str]:
    """The two tables and every file of records<rate>/, in SHA256SUMS.txt order."""
    missing = [t for t in TABLES if t not in sums]
    if missing:
        raise DownloadError(f"{source} lists no {', '.join(missing)}: not a PTB-XL release")
    records = [rel for rel in sums if rel.startswith(f"records{sampling_rate}/")]
    if not records:
        raise DownloadError(f"{source} lists no records{sampling_rate}/ files: "
                            f"is data.sampling_rate={sampling_rate} right?")
    return list(TABLES) + records


class _Fetcher:
    """HTTP GETs with one keep-alive session per thread; `abort` stops every thread once the server is gone."""

    def __init__(self, timeout: float):
        self.timeout = timeout
        self.local = threading.local()
        self.abort = threading.Event()   # set once the server is unreachable: queued files are not tried
        self.sessions = []

    def session(self) -> requests.Session:
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
            self.sessions.append(self.local.session)
        return self.local.session

    def close(self) -> None:
        for s in self.sessions:
            s.close()

    def get(self, url: str, part: Path, connect_retries: int = RETRIES) -> str:
        """Stream url into `part`; returns its sha256. Retries server errors (5xx, 429) and broken transfers
        RETRIES times and failed connections `connect_retries` times; then raises _Unreachable (no connection)
        or DownloadError (any other failure, HTTP 4xx at once)."""
        for attempt in range(RETRIES + 1):
            if attempt:
                _back_off(attempt)
            if self.abort.is_set():
                raise _Aborted("download aborted: the server is unreachable")
            try:
                with self.session().get(url, stream=True, timeout=self.timeout) as r:
                    if r.status_code >= 500 or r.status_code == 429:
                        error = DownloadError(f"HTTP {r.status_code}")
                        continue
                    if r.status_code != 200:
                        raise DownloadError(f"HTTP {r.status_code}")
                    h = hashlib.sha256()
                    with open(part, "wb") as f:
                        for block in r.iter_content(CHUNK):
                            f.write(block)
                            h.update(block)
                    return h.hexdigest()
            except requests.RequestException as e:
                if _connect_failed(e):
                    error = _Unreachable(_reason(e, self.timeout))
                    if attempt >= connect_retries:
                        self.abort.set()               # the other threads stop at their next attempt
                        raise error from None
                else:                                  # read timeout, connection dropped or cut mid-transfer
                    error = DownloadError(_reason(e, self.timeout))
        raise error


def _load_state(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}


def _save_state(path: Path, state: dict) -> None:
    from .atomic import write_text
    write_text(path, json.dumps(state, separators=(",", ":")))


def _stat_entry(path: Path | str, digest: str) -> list | None:
    """The state entry [size, mtime_ns, sha256] a file would have if it matches `digest`; None if it is missing."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return [st.st_size, st.st_mtime_ns, digest]


def _fetch_file(fetcher: _Fetcher, url: str, path: Path, digest: str) -> list:
    """Download, verify, rename; one re-fetch after a checksum mismatch. Returns the state entry."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    for attempt in range(2):
        got = fetcher.get(url, part)
        if got == digest:
            os.replace(part, path)
            return _stat_entry(path, digest)
    part.unlink(missing_ok=True)
    raise DownloadError(f"sha256 mismatch after a re-fetch: got {got[:12]}..., {SUMS} says {digest[:12]}...")


def _fetch_sums(fetcher: _Fetcher, url: str, path: Path) -> str:
    """SHA256SUMS.txt, from disk when an earlier run fetched it. The first request: a host that cannot be reached
    fails it at once (or after `timeout`), with what to do."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(path.name + ".part")
        try:
            fetcher.get(url, part, connect_retries=0)
        except _Unreachable as e:
            raise DownloadError(f"cannot reach {url} ({e}): {OFFLINE_HINT}") from None
        except DownloadError as e:
            hint = ("check data.version (PTB-XL releases: 1.0.0 to 1.0.3) and data.base_url" if str(e) == "HTTP 404"
                    else "try again later")
            raise DownloadError(f"{url}: {e}; {hint}") from None
        os.replace(part, path)
    return path.read_text(encoding="utf-8")


def fetch_ptbxl(base_url: str, version: str, dest: Path, sampling_rate: int, workers: int = 8,
                timeout: float = 10) -> Path:
    """Download PTB-XL `version` (tables + records<sampling_rate>/) into dest/<version>/; return that folder (absolute).

    Safe to interrupt and rerun: only missing or bad files are fetched again. Files that still fail after retries
    are reported together at the end (first 10 named) once every other file is done.
    """
    root = (Path(dest) / version).resolve()
    base = f"{base_url.rstrip('/')}/{version}"
    fetcher = _Fetcher(timeout)
    try:
        sums = parse_sums(_fetch_sums(fetcher, f"{base}/{SUMS}", root / SUMS), str(root / SUMS))
    finally:
        fetcher.close()
    files = wanted_files(sums, sampling_rate, str(root / SUMS))
    state_path = root / STATE
    old, state, todo = _load_state(state_path), {}, []
    for rel in files:                         # stat only: files verified by an earlier run are trusted as they are
        entry = _stat_entry(os.path.join(root, rel), sums[rel])
        if entry is not None and old.get(rel) == entry:
            state[rel] = entry
        else:
            todo.append(rel)

    def task(rel: str) -> tuple[list, bool]:
        """Hash a file an earlier run did not record (or that changed since); fetch it if missing or bad."""
        path, digest = root / rel, sums[rel]
        entry = _stat_entry(path, digest)
        if entry is not None and sha256_file(path) == digest:
            return entry, False
        return _fetch_file(fetcher, f"{base}/{rel}", path, digest), True

    failed, unreachable, fetched, last_save = {}, None, 0, time.monotonic()
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        futures = {pool.submit(task, rel): rel for rel in todo}
        with tqdm(total=len(files), initial=len(state), unit="file",
                  desc=f"PTB-XL {version} records{sampling_rate}") as bar:
            for fut in as_completed(futures):
                rel = futures[fut]
                try:
                    state[rel], new = fut.result()
                    fetched += new
                except (_Unreachable, DownloadError) as e:
                    if isinstance(e, _Unreachable) and not isinstance(e, _Aborted) and unreachable is None:
                        unreachable = (f"{base}/{rel}", e)
                    failed[rel] = str(e)
                bar.update()
                bar.set_postfix(fetched=fetched, failed=len(failed), refresh=False)
                if time.monotonic() - last_save > SAVE_EVERY:
                    _save_state(state_path, state)
                    last_save = time.monotonic()
    finally:
        fetcher.abort.set()   # on Ctrl-C: running files finish, queued ones are dropped
        pool.shutdown(wait=True, cancel_futures=True)
        fetcher.close()
        _save_state(state_path, state)
    done = len(files) - len(failed)
    if unreachable:
        url, e = unreachable
        raise DownloadError(f"cannot reach {url} ({e}): {OFFLINE_HINT}. {done} of {len(files)} files are complete "
                            f"and verified in {root}; rerun to fetch the rest")
    if failed:
        first = "; ".join(f"{rel} ({why})" for rel, why in sorted(failed.items())[:10])
        raise DownloadError(f"{len(failed)} of {len(files)} files from {base} could not be fetched and verified, "
                            f"first: {first}. The other {done} files are complete and verified in {root}; "
                            "rerun the stage to fetch only the failed ones")
    return root


def prepare_physionet(d) -> Path:
    """The download stage's data.source=physionet: fetch (or resume) the release; `d` is params' data section."""
    return fetch_ptbxl(d.base_url, d.version, Path(d.download_dir), d.sampling_rate,
                       workers=d.download_workers, timeout=d.timeout)
