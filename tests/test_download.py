"""The PhysioNet downloader against a local HTTP server (127.0.0.1, port 0) serving a fake PTB-XL release: any
bytes do, the downloader never parses WFDB. The handler logs every request so tests assert exactly what was fetched."""
import contextlib
import copy
import hashlib
import http.server
import os
import re
import socket
import threading
import urllib.parse
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from ecgalign import download, params
from ecgalign.download import DownloadError, fetch_ptbxl

VERSION = "1.0.3"
REPO = Path(__file__).resolve().parents[1]


def build_release(folder: Path, n_records: int = 10) -> None:
    """Tables, n_records records per rate (.hea + .dat), two extra files, and SHA256SUMS.txt over all of them."""
    files = {"ptbxl_database.csv": b"ecg_id,scp_codes,strat_fold\n1,\"{'NORM': 100.0}\",3\n",
             "scp_statements.csv": b",description\nNORM,normal ECG\n",
             "LICENSE.txt": b"CC BY 4.0\n", "example_physionet.py": b"print('hi')\n"}
    for i in range(1, n_records + 1):
        for rate, tag in ((100, "lr"), (500, "hr")):
            stem = f"records{rate}/00000/{i:05d}_{tag}"
            files[stem + ".hea"] = f"{i:05d}_{tag} 12 {rate} {rate * 10}\n".encode()
            files[stem + ".dat"] = hashlib.sha256(stem.encode()).digest() * (rate // 10)
    lines = []
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
        lines.append(f"{hashlib.sha256(data).hexdigest()}  {rel}\n")
    (folder / download.SUMS).write_text("".join(lines))


class Handler(http.server.BaseHTTPRequestHandler):
    """GET <prefix>/<rel>: logs rel; `faults[rel]` is an HTTP status, "cut" (send half, then close) or "cut-once"."""
    protocol_version = "HTTP/1.1"
    timeout = 5   # an idle keep-alive connection ends its handler thread by itself

    def do_GET(self):
        srv = self.server
        rel = urllib.parse.unquote(self.path).removeprefix(f"/ptb-xl/{VERSION}/")
        with srv.lock:
            srv.log.append(rel)
            fault = srv.faults.get(rel)
            if fault == "cut-once":
                del srv.faults[rel]
        path = srv.release / rel
        if isinstance(fault, int) or not path.is_file():
            self.send_error(fault if isinstance(fault, int) else 404)
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if fault in ("cut", "cut-once"):
            self.wfile.write(data[:len(data) // 2])
            self.close_connection = True
        else:
            self.wfile.write(data)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve_release(folder: Path):
    """A fake PTB-XL release built under `folder`, served on 127.0.0.1 until the block ends (sockets closed)."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.release = folder / "ptb-xl" / VERSION
    build_release(srv.release)
    srv.lock, srv.log, srv.faults = threading.Lock(), [], {}
    srv.base_url = f"http://127.0.0.1:{srv.server_address[1]}/ptb-xl"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


@pytest.fixture
def server(tmp_path):
    with serve_release(tmp_path / "srv") as srv:
        yield srv


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setattr(download, "BACKOFF", 0.01)


@pytest.fixture
def backoffs(monkeypatch) -> list[int]:
    """The retries the downloader backs off for (their attempt numbers), recorded instead of waited."""
    asked = []
    monkeypatch.setattr(download, "_back_off", asked.append)
    return asked


def rate_files(srv, rate: int) -> list[str]:
    return sorted(str(p.relative_to(srv.release)) for p in (srv.release / f"records{rate}").rglob("*") if p.is_file())


def fetch(srv, dest: Path, rate: int = 100, **kw) -> Path:
    srv.log.clear()
    return fetch_ptbxl(srv.base_url, VERSION, dest, rate, workers=4, timeout=5, **kw)


def assert_same(srv, root: Path, files) -> None:
    for rel in files:
        assert (root / rel).read_bytes() == (srv.release / rel).read_bytes(), rel


@pytest.mark.parametrize("rate", [100, 500])
def test_downloads_and_verifies_tables_and_only_the_chosen_rate(server, tmp_path, rate):
    root = fetch(server, tmp_path / "dl", rate)
    assert root == (tmp_path / "dl" / VERSION).resolve() and root.is_absolute()
    expected = [download.SUMS, *download.TABLES, *rate_files(server, rate)]
    assert len(expected) == 23
    assert sorted(server.log) == sorted(expected)               # each file once, nothing of the other rate
    assert_same(server, root, expected)
    other = 500 if rate == 100 else 100
    assert not (root / f"records{other}").exists() and not (root / "LICENSE.txt").exists()
    assert not list(root.rglob("*.part"))


def test_rerun_trusts_state_file_and_rehashes_only_changed_files(server, tmp_path, monkeypatch):
    hashed = []
    real = download.sha256_file
    monkeypatch.setattr(download, "sha256_file", lambda p: hashed.append(p) or real(p))
    root = fetch(server, tmp_path / "dl")
    assert hashed == []                                         # fresh downloads are hashed while streaming
    assert fetch(server, tmp_path / "dl") == root
    assert server.log == [] and hashed == []                    # complete folder: no network, no re-hashing
    victim = root / "records100/00000/00003_lr.dat"
    st = victim.stat()
    victim.write_bytes(b"\0" * st.st_size)                      # same size, new content and mtime
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    fetch(server, tmp_path / "dl")
    assert server.log == ["records100/00000/00003_lr.dat"] and hashed == [victim]
    assert_same(server, root, ["records100/00000/00003_lr.dat"])
    (root / download.STATE).unlink()                            # lost state: every file re-hashed, none fetched
    hashed.clear()
    fetch(server, tmp_path / "dl")
    assert server.log == [] and len(hashed) == 22


def test_malformed_sums_line_is_named():
    good = f"{'a' * 64}  ptbxl_database.csv\n"
    assert download.parse_sums(good + f"{'B' * 64} *records100/x.dat\n") == {
        "ptbxl_database.csv": "a" * 64, "records100/x.dat": "b" * 64}
    with pytest.raises(DownloadError, match=r"^sums line 2: expected '<sha256>  <path>', got 'abc records100/x.dat'$"):
        download.parse_sums(good + "abc records100/x.dat\n", "sums")


def test_resume_fetches_only_missing_truncated_and_partial_files(server, tmp_path):
    root = fetch(server, tmp_path / "dl")
    gone = ["records100/00000/00002_lr.dat", "records100/00000/00007_lr.hea"]
    for rel in gone:
        (root / rel).unlink()
    (root / gone[0]).with_name("00002_lr.dat.part").write_bytes(b"half")   # left by a killed run
    truncated = "records100/00000/00005_lr.dat"
    data = (root / truncated).read_bytes()
    (root / truncated).write_bytes(data[:7])
    fetch(server, tmp_path / "dl")
    assert sorted(server.log) == sorted(gone + [truncated])
    assert_same(server, root, [download.SUMS, *download.TABLES, *rate_files(server, 100)])
    assert not list(root.rglob("*.part"))


def test_transfer_cut_is_retried_then_reported_and_next_run_fetches_only_that_file(server, tmp_path):
    flaky, broken = "records100/00000/00001_lr.dat", "records100/00000/00004_lr.dat"
    server.faults.update({flaky: "cut-once", broken: "cut"})
    with pytest.raises(DownloadError) as e:
        fetch(server, tmp_path / "dl")
    msg = str(e.value)
    assert f"1 of 22 files from {server.base_url}/{VERSION} could not be fetched" in msg
    assert f"first: {broken} (connection broken mid-transfer)" in msg and "rerun" in msg
    assert server.log.count(flaky) == 2 and server.log.count(broken) == download.RETRIES + 1
    root = tmp_path / "dl" / VERSION
    assert not (root / broken).exists()
    assert_same(server, root, [f for f in rate_files(server, 100) if f != broken])
    server.faults.clear()
    fetch(server, tmp_path / "dl")
    assert server.log == [broken]
    assert_same(server, root, [broken])


def test_corrupted_file_on_server_is_refetched_once_then_named(server, tmp_path):
    bad = "records100/00000/00006_lr.dat"
    (server.release / bad).write_bytes(b"not what SHA256SUMS says")
    with pytest.raises(DownloadError, match=rf"first: {bad} \(sha256 mismatch after a re-fetch: got [0-9a-f]{{12}}"):
        fetch(server, tmp_path / "dl")
    root = tmp_path / "dl" / VERSION
    assert server.log.count(bad) == 2
    assert not (root / bad).exists() and not list(root.rglob("*.part"))
    assert_same(server, root, [f for f in rate_files(server, 100) if f != bad])


def test_http_errors_name_the_files(server, tmp_path):
    busy, missing = "records100/00000/00008_lr.hea", "records100/00000/00009_lr.dat"
    server.faults.update({busy: 500, missing: 404})
    with pytest.raises(DownloadError) as e:
        fetch(server, tmp_path / "dl")
    assert "2 of 22 files" in str(e.value)
    assert f"first: {busy} (HTTP 500); {missing} (HTTP 404)." in str(e.value)
    assert server.log.count(busy) == download.RETRIES + 1       # 5xx retried, 404 not
    assert server.log.count(missing) == 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_fails_fast_with_what_to_do(tmp_path, backoffs):
    url = f"http://127.0.0.1:{free_port()}/ptb-xl"
    with pytest.raises(DownloadError) as e:
        fetch_ptbxl(url, VERSION, tmp_path / "dl", 100, timeout=10)
    assert backoffs == []                                          # SHA256SUMS.txt: no retry when nobody answers
    assert str(e.value) == (f"cannot reach {url}/{VERSION}/SHA256SUMS.txt ([Errno 111] Connection refused): "
                            "data.source=physionet needs network access; on an offline machine set "
                            "data.source=local with data.path pointing to a PTB-XL copy, or use data.source=synthetic")


def test_server_gone_mid_resume_aborts_fast(server, tmp_path, backoffs):
    root = fetch(server, tmp_path / "dl")
    for rel in rate_files(server, 100)[:6]:
        (root / rel).unlink()
    url = f"http://127.0.0.1:{free_port()}/ptb-xl"                 # SHA256SUMS.txt is on disk: records fail
    backoffs.clear()
    with pytest.raises(DownloadError, match=r"cannot reach .*Connection refused.*data\.source=synthetic\. "
                                            r"16 of 22 files are complete and verified"):
        fetch_ptbxl(url, VERSION, tmp_path / "dl", 100, workers=2, timeout=10)
    assert 0 < len(backoffs) <= 2 * download.RETRIES               # at most one retry series per worker, not 6


@pytest.mark.parametrize("evil", ["../escape.txt", "/tmp/escape.txt", "records100/../../escape.txt"])
def test_sums_entry_leaving_the_folder_is_refused(server, tmp_path, evil):
    with open(server.release / download.SUMS, "a") as f:
        f.write(f"{'0' * 64}  {evil}\n")
    with pytest.raises(DownloadError, match=re.escape(f"SHA256SUMS.txt line 45: refusing path '{evil}'")):
        fetch(server, tmp_path / "dl")
    assert server.log == [download.SUMS]
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "dl" / "escape.txt").exists()


def test_unknown_version_says_what_to_check(server, tmp_path):
    with pytest.raises(DownloadError, match=r"9\.9\.9/SHA256SUMS.txt: HTTP 404; check data\.version"):
        fetch_ptbxl(server.base_url, "9.9.9", tmp_path / "dl", 100)


def test_prepare_physionet_reads_the_data_params(server, tmp_path, monkeypatch):
    raw = copy.deepcopy(yaml.safe_load((REPO / "params.yaml").read_text()))
    raw["data"].update(source="physionet", base_url=server.base_url, download_dir="cache/physionet",
                       sampling_rate=500, download_workers=2, timeout=3)
    d = SimpleNamespace(**params.validate(raw)["data"])
    monkeypatch.chdir(tmp_path)
    root = download.prepare_physionet(d)
    assert root == tmp_path / "cache" / "physionet" / VERSION
    assert_same(server, root, [*download.TABLES, *rate_files(server, 500)])
