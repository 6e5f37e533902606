"""A throwaway Ceph RADOS Gateway (real S3) on 127.0.0.1: 1 mon + 1 memstore OSD + radosgw.

Debian 12's Ceph is Pacific (16.2), built without the dbstore backend, so the
gateway needs a real (tiny) cluster. Measured here: about 2-3 s to start once
the packages are installed, about 130 MiB RSS idle. Data lives in the OSD's RAM.

The settings below each fix a failure seen without them:
- `ms_mon_client_mode = crc`: with auth=none, radosgw otherwise asks the mon
  for "secure" mode, retries forever (`get_initial_auth_request returned -13`)
  and never listens.
- `paxos_propose_interval = 0.05`: every osdmap change (OSD boot, each of the
  pools radosgw creates) waits for it; the default 1 s makes a start take 13 s.
- pool size 1, 8 PGs, `mon_max_pg_per_osd = 1000`: radosgw's 7 pools would hit
  the per-OSD PG limit with the defaults.
- beast `tcp_nodelay=1`: without it every response with a body waits ~40 ms
  on loopback (Nagle + delayed ACK).

Also (RGW differs from AWS): CopyObject returns no VersionId; conditional PUTs
(If-None-Match / If-Match) are ignored or always fail on versioned buckets;
boto3's default aws-chunked checksum trailer over HTTPS gets 411.

Usage: `with RgwServer() as rgw: rgw.endpoint` or `python -m tests.support.rgw`
(prints export lines and waits).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

ACCESS_KEY = "testaccesskey"
SECRET_KEY = "testsecretkey"
PACKAGES = ("ceph-mon", "ceph-osd", "radosgw", "ceph-common")
BINARIES = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph", "monmaptool")
INSTALL_HINT = "install Debian's Ceph packages: apt-get install -y --no-install-recommends " + " ".join(PACKAGES)


class RgwUnavailable(RuntimeError):
    """RGW cannot run here; the message says why and how to fix it."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def missing_binaries() -> list[str]:
    return [b for b in BINARIES if shutil.which(b) is None]


def install_allowed() -> bool:
    """May the launcher apt-get Ceph? Yes unless DR_TEST_INSTALL_CEPH=0.

    The README's second command promises the whole suite on a fresh machine;
    skipping RGW there unless CI=true was set would quietly run a weaker one.
    """
    return os.environ.get("DR_TEST_INSTALL_CEPH", "1").strip().lower() not in ("0", "false", "no")


def apt_get_install(packages: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """`apt-get install` of Debian `packages`, quietly, after an index update (the launchers' one way to install)."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, stdout=subprocess.DEVNULL)
    return subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def ensure_packages(allow_apt: bool = True) -> None:
    """Install the Ceph packages with apt-get when they are missing and we may."""
    if not missing_binaries():
        return
    if not allow_apt or os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise RgwUnavailable(f"Ceph binaries missing ({', '.join(missing_binaries())}); {INSTALL_HINT}")
    r = apt_get_install(PACKAGES)
    if r.returncode != 0 or missing_binaries():
        raise RgwUnavailable(f"apt-get install {' '.join(PACKAGES)} failed: {r.stderr[-500:]}")


class RgwServer:
    def __init__(self, ssl: bool = False, workdir: Path | None = None) -> None:
        self.ssl = ssl
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="dr-rgw-"))
        self.port = free_port()
        self.mon_port = free_port()
        self.ssl_port = free_port() if ssl else None
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.https_endpoint = f"https://127.0.0.1:{self.ssl_port}" if ssl else None
        self.ca_bundle = str(self.dir / "rgw" / "cert.pem") if ssl else None
        self.access_key = ACCESS_KEY
        self.secret_key = SECRET_KEY

    # ------------------------------------------------------------------ helpers
    @property
    def conf(self) -> Path:
        return self.dir / "ceph.conf"

    def _run(self, *args: str, timeout: float = 60) -> str:
        r = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RgwUnavailable(f"{' '.join(args[:3])} failed ({r.returncode}): {r.stderr[-800:]}")
        return r.stdout

    def _spawn(self, name: str, *args: str) -> None:
        log = open(self.dir / "log" / f"{name}.out", "wb")  # noqa: SIM115 - lives as long as the daemon
        p = subprocess.Popen(list(args), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append((name, p))

    def _wait(self, what: str, check: object, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, p in self.procs:
                if p.poll() is not None:
                    tail = (self.dir / "log" / f"{name}.out").read_text(errors="replace")[-800:]
                    raise RgwUnavailable(f"{name} exited with {p.returncode} while waiting for {what}: {tail}")
            if check():  # type: ignore[operator]
                return
            time.sleep(0.2)
        raise RgwUnavailable(f"timed out after {timeout:.0f}s waiting for {what}; logs in {self.dir / 'log'}")

    def _http_ok(self) -> bool:
        try:
            with urllib.request.urlopen(self.endpoint + "/", timeout=2) as r:
                return r.status == 200
        except Exception:
            return False

    def _ceph_ok(self, *args: str) -> bool:
        r = subprocess.run(
            ["ceph", "-c", str(self.conf), "--connect-timeout", "5", *args], capture_output=True, text=True, timeout=30
        )
        return r.returncode == 0 and bool(r.stdout)

    # ------------------------------------------------------------------ start/stop
    def write_conf(self) -> None:
        d = self.dir
        frontend = f"beast endpoint=127.0.0.1:{self.port}"
        if self.ssl:
            (d / "rgw").mkdir(parents=True, exist_ok=True)
            self._run(
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "30",
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1,DNS:localhost",
                "-keyout",
                str(d / "rgw" / "key.pem"),
                "-out",
                str(d / "rgw" / "cert.pem"),
            )
            frontend += (
                f" ssl_endpoint=127.0.0.1:{self.ssl_port} ssl_certificate={d}/rgw/cert.pem"
                f" ssl_private_key={d}/rgw/key.pem"
            )
        frontend += " tcp_nodelay=1"
        self.fsid = str(uuid.uuid4())
        self.conf.write_text(
            f"""[global]
fsid = {self.fsid}
mon_initial_members = a
mon_host = v2:127.0.0.1:{self.mon_port}
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
ms_bind_ipv4 = true
ms_bind_ipv6 = false
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
ms_mon_client_mode = crc
run_dir = {d}/run
admin_socket = {d}/run/$name.$pid.asok
log_file = {d}/log/$name.log
pid_file = {d}/run/$name.pid
keyring = {d}/keyring
log_to_stderr = false
err_to_stderr = true
osd_pool_default_size = 1
osd_pool_default_min_size = 1
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
mon_max_pg_per_osd = 1000
osd_crush_chooseleaf_type = 0
mon_allow_pool_delete = true
debug_ms = 0/0
mon_data_avail_warn = 1
mon_data_avail_crit = 0

[mon]
paxos_propose_interval = 0.05
mon_data = {d}/mon/$name
mon_cluster_log_file = {d}/log/cluster.log

[osd]
osd_data = {d}/osd/$id
osd_objectstore = memstore
memstore_device_bytes = {os.environ.get("RGW_MEMSTORE_BYTES", "4G")}
osd_op_num_shards = 1
osd_op_num_threads_per_shard = 2
osd_crush_update_on_start = true

[client.rgw.a]
rgw_frontends = {frontend}
rgw_data = {d}/rgw
rgw_thread_pool_size = 64
rgw_dns_name = localhost
"""
        )

    def start(self, allow_apt: bool = True) -> RgwServer:
        ensure_packages(allow_apt)
        for sub in ("mon", "osd/0", "run", "log", "rgw"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        try:
            self.write_conf()
            conf = str(self.conf)
            self._run(
                "monmaptool",
                "--create",
                "--clobber",
                "--fsid",
                self.fsid,
                "--addv",
                "a",
                f"[v2:127.0.0.1:{self.mon_port}]",
                str(self.dir / "monmap"),
            )
            self._run("ceph-mon", "-c", conf, "-i", "a", "--mkfs", "--monmap", str(self.dir / "monmap"))
            self._spawn("mon.a", "ceph-mon", "-c", conf, "-i", "a", "-f")
            self._wait("the mon", lambda: self._ceph_ok("mon", "stat"), 60)
            osd_uuid = str(uuid.uuid4())
            osd_id = self._run("ceph", "-c", conf, "osd", "new", osd_uuid).strip()
            (self.dir / "osd" / osd_id).mkdir(parents=True, exist_ok=True)
            self._run("ceph-osd", "-c", conf, "-i", osd_id, "--mkfs", "--osd-uuid", osd_uuid)
            self._spawn(f"osd.{osd_id}", "ceph-osd", "-c", conf, "-i", osd_id, "-f")

            def osd_up() -> bool:
                r = subprocess.run(["ceph", "-c", conf, "osd", "dump"], capture_output=True, text=True, timeout=30)
                return any(line.startswith(f"osd.{osd_id} up") for line in r.stdout.splitlines())

            self._wait("the osd", osd_up, 60)
            self._spawn("rgw.a", "radosgw", "-c", conf, "-n", "client.rgw.a", "-f")
            self._wait("radosgw to answer", self._http_ok, 120)
            self._run(
                "radosgw-admin",
                "-c",
                conf,
                "-n",
                "client.rgw.a",
                "user",
                "create",
                "--uid=tester",
                "--display-name=Test User",
                f"--access-key={ACCESS_KEY}",
                f"--secret-key={SECRET_KEY}",
            )
        except BaseException:
            self.stop(keep_logs=True)
            raise
        return self

    def stop(self, keep_logs: bool = False) -> None:
        # Reverse start order: rgw and the osd shut down quickly only while the mon is up.
        for _name, p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=5)
        self.procs.clear()
        if not keep_logs:
            shutil.rmtree(self.dir, ignore_errors=True)

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def __enter__(self) -> RgwServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


if __name__ == "__main__":
    server = RgwServer(ssl=bool(os.environ.get("RGW_SSL")))
    server.start()
    for k, v in server.env().items():
        print(f"export {k}={v}")
    print(f"# state in {server.dir}; Ctrl-C stops it", flush=True)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
