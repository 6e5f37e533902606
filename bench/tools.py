"""How each tool is invoked, in the environment each one needs.

Ours runs as a user runs it: `inv dr.<task>` in a scratch host repo (tasks.py
+ invoke.yaml), a subprocess. The peers run from the bench's own venv
(bench/out/peers: awscli, s3-pit-restore) and Debian's rclone, in a clean
environment (rclone fails every S3 remote when AWS_CA_BUNDLE is set).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .servers import REPO, Server

OUT = REPO / "bench" / "out"
PEERS = OUT / "peers"  # shared by every run: installed once
# This run's scratch root (work/, logs/, the tools' config files): `--out`, so two benches
# running at once (different --out) never delete each other's files. See set_run_dir.
RUN = OUT


def set_run_dir(path: Path) -> None:
    global RUN
    RUN = path
    RUN.mkdir(parents=True, exist_ok=True)


INV = str(Path(sys.executable).with_name("inv"))
# `--baseline REV`: (label, path of that revision's `inv`), run beside ours in every scenario
# that runs ours, so a change's before and after are timed in one run against the same floor.
BASELINES: list[tuple[str, str]] = []


def install_baseline(rev: str, log: Any = print) -> tuple[str, str]:
    """dr-tasks at git revision `rev`, installed (not editable: compiled, as pip installs it) into
    its own venv under bench/out/baseline-<sha>; returns (label, path of its `inv`)."""
    sha = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short=10", rev], capture_output=True, text=True, check=True
    ).stdout.strip()
    venv = OUT / f"baseline-{sha}"
    inv = venv / "bin" / "inv"
    if not inv.exists():
        src = OUT / f"baseline-src-{sha}"
        shutil.rmtree(src, ignore_errors=True)
        src.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", sha], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
        log(f"installing dr-tasks@{sha} into {venv}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(src)], check=True)
        shutil.rmtree(src, ignore_errors=True)
    return f"dr-tasks@{sha}", str(inv)


HOST_TASKS = "from invoke import Collection\nfrom dr_tasks import dr\n\nns = Collection(dr)\n"


@dataclass
class Peers:
    aws: str | None = None
    pit: str | None = None
    rclone: str | None = None
    skipped: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"aws": self.aws, "s3-pit-restore": self.pit, "rclone": self.rclone, "skipped": self.skipped}


def _version(argv: list[str]) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=clean_env())
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except Exception as err:
        return f"unknown ({err})"


def find_peers(install: bool, wanted: set[str], log: Any = print) -> Peers:
    """The peers, installed into bench/out/peers when `install` (never into the repo's .venv)."""
    p = Peers()
    if not wanted:
        p.skipped["all peers"] = "--peers=none"
        return p
    aws, pit = PEERS / "bin" / "aws", PEERS / "bin" / "s3-pit-restore"
    if install and wanted & {"aws", "s3-pit-restore"} and not (aws.exists() and pit.exists()):
        log("installing awscli and s3-pit-restore into bench/out/peers ...")
        try:
            subprocess.run(["python3", "-m", "venv", str(PEERS)], check=True, capture_output=True)
            subprocess.run(
                [str(PEERS / "bin" / "pip"), "install", "-q", "awscli", "s3-pit-restore"],
                check=True,
                capture_output=True,
                timeout=600,
            )
        except (subprocess.SubprocessError, OSError) as err:
            log(f"peer install failed: {err}")
    if aws.exists():
        p.aws = _version([str(aws), "--version"])
    else:
        p.skipped["aws"] = "not installed (run `inv bench` without --quick to pip-install it into bench/out/peers)"
    if pit.exists():
        p.pit = "s3-pit-restore " + _pip_version("s3-pit-restore")
    else:
        p.skipped["s3-pit-restore"] = "not installed (run `inv bench` without --quick to pip-install it)"
    rclone = shutil.which("rclone")
    if rclone is None and install and "rclone" in wanted and os.geteuid() == 0 and shutil.which("apt-get"):
        log("installing Debian's rclone ...")
        subprocess.run(["apt-get", "install", "-y", "-qq", "rclone"], capture_output=True, check=False)
        rclone = shutil.which("rclone")
    if rclone:
        p.rclone = _version([rclone, "version"])
    else:
        p.skipped["rclone"] = "not installed (apt-get install rclone)"
    for name, attr in (("aws", "aws"), ("s3-pit-restore", "pit"), ("rclone", "rclone")):
        if name not in wanted and getattr(p, attr):
            setattr(p, attr, None)
            p.skipped[name] = "not asked for (--peers)"
    return p


def _pip_version(name: str) -> str:
    try:
        r = subprocess.run(
            [str(PEERS / "bin" / "pip"), "show", name], capture_output=True, text=True, timeout=60, check=False
        )
        for line in r.stdout.splitlines():
            if line.startswith("Version:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def clean_env() -> dict[str, str]:
    """Nothing of the bench's or the user's AWS / rclone / invoke setup leaks into a tool."""
    keep = ("PATH", "LANG", "LC_ALL", "TMPDIR", "TZ")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env["HOME"] = str(RUN / "home")
    (RUN / "home").mkdir(parents=True, exist_ok=True)
    return env


def aws_config_file() -> Path:
    # Path-style addressing; checksums only when required (the newer CRC defaults break RGW and moto).
    path = RUN / "peers-aws-config"
    path.write_text(
        "[default]\nregion = us-east-1\nrequest_checksum_calculation = when_required\n"
        "response_checksum_validation = when_required\ns3 =\n    addressing_style = path\n"
    )
    return path


def peer_env(server: Server, endpoint: str, dest: tuple[Server, str] | None = None) -> dict[str, str]:
    env = clean_env()
    env.update(
        AWS_ACCESS_KEY_ID=server.access_key,
        AWS_SECRET_ACCESS_KEY=server.secret_key,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=str(aws_config_file()),
        AWS_SHARED_CREDENTIALS_FILE=str(RUN / "no-credentials"),
        # s3-pit-restore builds `boto3.client('s3')` with no endpoint: botocore reads this.
        AWS_ENDPOINT_URL=endpoint,
        RCLONE_CONFIG=str(RUN / "rclone-empty.conf"),
    )
    (RUN / "rclone-empty.conf").touch()
    remotes = [("SRC", server, endpoint)] + ([("DST", dest[0], dest[1])] if dest else [])
    for name, srv, ep in remotes:
        env.update(
            {
                f"RCLONE_CONFIG_{name}_TYPE": "s3",
                f"RCLONE_CONFIG_{name}_PROVIDER": "Ceph" if srv.name.startswith("rgw") else "Other",
                f"RCLONE_CONFIG_{name}_ACCESS_KEY_ID": srv.access_key,
                f"RCLONE_CONFIG_{name}_SECRET_ACCESS_KEY": srv.secret_key,
                f"RCLONE_CONFIG_{name}_ENDPOINT": ep,
                f"RCLONE_CONFIG_{name}_REGION": "us-east-1",
                f"RCLONE_CONFIG_{name}_FORCE_PATH_STYLE": "true",
            }
        )
    return env


def floor_env(server: Server, dest: Server | None = None) -> dict[str, str]:
    env = clean_env()
    env.update(
        AWS_ACCESS_KEY_ID=server.access_key,
        AWS_SECRET_ACCESS_KEY=server.secret_key,
        AWS_CONFIG_FILE=str(RUN / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(RUN / "no-credentials"),
        PYTHONPATH=str(REPO),
    )
    if dest is not None:
        env.update(DEST_AWS_ACCESS_KEY_ID=dest.access_key, DEST_AWS_SECRET_ACCESS_KEY=dest.secret_key)
    return env


def floor_argv(mode: str, **kw: str | int) -> list[str]:
    return [sys.executable, "-m", "bench.floor", mode, *(f"--{k.replace('_', '-')}={v}" for k, v in kw.items())]


class HostRepo:
    """A scratch host repo, as a user has one: tasks.py + invoke.yaml + state/."""

    def __init__(self, path: Path, server: Server, bucket: str, inv: str = INV) -> None:
        self.path = path
        self.inv = inv
        self.server = server
        self.bucket = bucket
        if path.exists():
            shutil.rmtree(path)
        (path / "state" / "log").mkdir(parents=True)
        (path / "state" / "log" / "snapshots.ndjson").touch()
        (path / "tasks.py").write_text(HOST_TASKS)
        (path / ".gitignore").write_text("_restore/\n")

    def configure(self, endpoint: str, **extra: Any) -> None:
        # Our defaults (concurrency 32, ...) stay as they are: they are what is measured.
        cfg = {"bucket": self.bucket, "endpoint_url": endpoint, "region": "us-east-1", **extra}
        (self.path / "invoke.yaml").write_text(yaml.safe_dump({"dr": cfg}))

    def env(self) -> dict[str, str]:
        env = clean_env()
        env.update(
            AWS_ACCESS_KEY_ID=self.server.access_key,
            AWS_SECRET_ACCESS_KEY=self.server.secret_key,
            AWS_CONFIG_FILE=str(self.path / ".no-aws-config"),
            AWS_SHARED_CREDENTIALS_FILE=str(self.path / ".no-aws-credentials"),
        )
        return env

    def argv(self, *args: str) -> list[str]:
        return [self.inv, *args]
