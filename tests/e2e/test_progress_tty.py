"""Progress on a terminal: a count while listing, then done/total with a rate and an ETA; nothing when not a terminal.

`inv` runs with its stderr on a pseudo-terminal (stdout stays a pipe, as in
`inv dr.restore ... > report.txt`), and what the terminal received is read
back with its escape codes stripped. The unit holds more keys than one
listing page (1,000), and the proxy holds the second page back, so the
listing is visibly under way for a while before its total is known.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import termios
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

from dr_tasks.timeparse import iso_utc
from tests.conftest import HOST_TASKS, INV, HostRepo, Server, new_bucket
from tests.support.faultproxy import Rule

UNIT = "many"
U = f"state/skills/{UNIT}/"
N = 1001  # one more than a listing page
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]|\r")
RATE_ETA = re.compile(r"(\d[\d,]*)/1,001, [\d.,]+/s, ETA \d+:\d\d:\d\d")


def _seed(repo: HostRepo, n: int = N) -> None:
    c = repo.server.client()

    def put(i: int) -> None:
        c.put_object(Bucket=repo.bucket, Key=f"{U}f{i:04d}.txt", Body=f"file {i}\n".encode())

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(n)))


def run_on_tty(repo: HostRepo, *args: str) -> tuple[int, str, str]:
    """`inv <args>` with stderr on a pseudo-terminal 200 columns wide: (exit code, stdout, what the terminal showed)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    env = repo.environ({"TERM": "xterm-256color", "COLUMNS": "200"})
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        [INV, *args], cwd=repo.path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave
    )
    os.close(slave)
    shown: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the last writer closed the terminal
                return
            if not chunk:
                return
            shown.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    out, _ = proc.communicate(timeout=300)
    reader.join(timeout=10)
    os.close(master)
    return proc.returncode, out.decode(), ANSI.sub("\n", b"".join(shown).decode(errors="replace"))


def test_restore_shows_a_listing_count_then_rate_and_eta_on_a_terminal(moto_server, make_repo, fault_proxy_moto):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket, endpoint_url=fault_proxy_moto.url, concurrency=4)
    _seed(repo)
    ts = iso_utc(datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=1))
    # the second listing page comes late, and every download takes a moment
    fault_proxy_moto.add(Rule(op="ListObjectVersions", fault=None, skip=1, times=-1, delay=1.5))
    fault_proxy_moto.add(Rule(op="GetObject", fault=None, times=-1, delay=0.01))
    while datetime.now(timezone.utc) < datetime.fromisoformat(ts.replace("Z", "+00:00")):
        threading.Event().wait(0.05)

    code, out, tty = run_on_tty(repo, "dr.restore", UNIT, ts)
    assert code == 0, tty
    assert f"{N} files" in out  # the report still goes to stdout, whole
    listed = [int(n.replace(",", "")) for n in re.findall(r"(\d[\d,]*) listed", tty)]
    assert listed and max(listed) >= 1000, tty[-3000:]  # the first page, counted while the second is awaited
    assert "/?" not in tty
    assert RATE_ETA.search(tty), tty[-3000:]  # once the total is known: done/total, rate, ETA
    assert f"restoring from s3://{bucket}/{U}" in tty


def test_progress_stays_quiet_when_stderr_is_not_a_terminal(moto_server, make_repo):
    bucket = new_bucket(moto_server)
    repo = make_repo(moto_server, bucket, concurrency=4)
    _seed(repo, 40)
    ts = iso_utc(datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=1))
    while datetime.now(timezone.utc) < datetime.fromisoformat(ts.replace("Z", "+00:00")):
        threading.Event().wait(0.05)
    r = repo.run("dr.restore", UNIT, ts)
    assert r.returncode == 0, r.stderr
    assert "40 files" in r.stdout
    assert r.stderr == ""  # no bar, no count, no escape codes in a log


def test_the_drills_steps_show_their_own_progress_on_a_terminal(tmp_path):
    # The drill needs no bucket: it runs on embedded servers and a scratch copy (sample data here).
    root = tmp_path / "host"
    root.mkdir()
    (root / "tasks.py").write_text(HOST_TASKS)
    repo = HostRepo(root, Server("none", "", "", ""), "", {})
    code, out, tty = run_on_tty(repo, "dr.drill")
    assert code == 0, out + tty
    assert "drill" in out and "PASS" in out
    # the steps' own phases, each with its count and, at the end of each, done/total with a rate and an ETA
    for phase in ("copying", "restoring from s3://", "reading"):
        assert phase in tty, tty[-3000:]
    assert re.search(r"\d[\d,]*/[\d,]+, [\d.,]+/s, ETA \d+:\d\d:\d\d", tty), tty[-3000:]
    assert "/?" not in tty
