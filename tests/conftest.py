"""Real S3 servers on 127.0.0.1 and scratch host repos that run `inv dr.*` as a user does.

- `moto_endpoint`: moto's ThreadedMotoServer (HTTP), one per session.
- `rgw`: a Ceph RADOS Gateway from Debian's packages (HTTP and HTTPS), one per
  session, installed from Debian's packages when missing (as root, unless
  DR_TEST_INSTALL_CEPH=0). Under CI (CI=true) it is mandatory; elsewhere a
  machine that cannot install it skips those tests with the command that does.
- `server`: parametrized over both, so an e2e test runs against each.
- `bucket`: a fresh, small, versioned bucket per test (moto's ListObjectVersions
  copies the whole bucket on every call, so tests never share one).
- `make_repo`: a scratch host repo (tasks.py + invoke.yaml + state/) whose
  `run("dr.snapshot", "--label=x")` runs the real `inv` in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.config import Config

from dr_tasks.embedded import EmbeddedS3
from tests.support.faultproxy import FaultProxy
from tests.support.rgw import RgwServer, RgwUnavailable, ensure_packages, install_allowed

INV = str(Path(sys.executable).with_name("inv"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@dataclass
class Server:
    name: str
    endpoint: str
    access_key: str
    secret_key: str
    ca_bundle: str | None = None
    https_endpoint: str | None = None

    def client(self, endpoint: str | None = None, **config: Any) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=endpoint or self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            verify=self.ca_bundle if endpoint and endpoint.startswith("https") else None,
            config=Config(
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                **config,
            ),
        )

    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
        }


@pytest.fixture(scope="session")
def moto_server() -> Iterator[Server]:
    # The same launcher `dr.drill` uses: moto's ThreadedMotoServer on a free 127.0.0.1 port.
    with EmbeddedS3() as url:
        yield Server("moto", url, "testing", "testing")


@pytest.fixture(scope="session")
def moto2() -> Iterator[Server]:
    """A second moto S3 server on its own port, with its own credentials: the backup region."""
    with EmbeddedS3() as url:
        yield Server("moto2", url, "backup-key", "backup-secret")


def _rgw_unavailable(err: RgwUnavailable) -> None:
    """Fail under CI (RGW is part of the suite there), skip elsewhere, naming why."""
    if IN_CI:
        pytest.fail(f"Ceph RGW is mandatory under CI and could not start: {err}")
    pytest.skip(f"Ceph RGW not available: {err}")


@pytest.fixture(scope="session")
def ceph_packages() -> None:
    """Debian's Ceph packages, installed when missing and allowed (tests/support/rgw.py)."""
    try:
        ensure_packages(install_allowed())
    except RgwUnavailable as err:
        _rgw_unavailable(err)


@pytest.fixture(scope="session")
def rgw_server(ceph_packages: None) -> Iterator[Server]:
    rgw = RgwServer(ssl=True)
    try:
        rgw.start(allow_apt=False)  # ceph_packages installed them
    except RgwUnavailable as err:
        _rgw_unavailable(err)
    yield Server("rgw", rgw.endpoint, rgw.access_key, rgw.secret_key, rgw.ca_bundle, rgw.https_endpoint)
    rgw.stop()


@pytest.fixture(params=["moto", pytest.param("rgw", marks=pytest.mark.rgw)])
def server(request: pytest.FixtureRequest) -> Server:
    return request.getfixturevalue(f"{request.param}_server")


def new_bucket(server: Server, versioned: bool = True) -> str:
    name = "t-" + uuid.uuid4().hex[:20]
    c = server.client()
    c.create_bucket(Bucket=name)
    if versioned:
        c.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


@pytest.fixture
def bucket(server: Server) -> str:
    return new_bucket(server)


SAMPLE_FILES: dict[str, bytes] = {
    "state/skills/alpha/a.txt": b"alpha line 1\nalpha line 2\n",
    "state/skills/alpha/b.json": b'{"k": 1, "list": [1, 2]}\n',
    "state/skills/alpha/deep/c.md": b"# deep\n",
    "state/skills/beta/blob.bin": bytes(range(256)) * 8,
    "state/notes/readme.txt": "unicode: caf\u00e9 \u2603\n".encode(),
}


@dataclass
class HostRepo:
    path: Path
    server: Server
    bucket: str
    config: dict[str, Any]
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def index_path(self) -> Path:
        return self.path / self.config.get("index", "state/log/snapshots.ndjson")

    def environ(self, env: dict[str, str] | None = None) -> dict[str, str]:
        """The environment a user's shell would give `inv`: this server's credentials, no stray AWS config."""
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "INVOKE_DR_"))}
        full_env.update(self.server.env())
        full_env["AWS_CONFIG_FILE"] = str(self.path / ".no-aws-config")
        full_env["AWS_SHARED_CREDENTIALS_FILE"] = str(self.path / ".no-aws-credentials")
        full_env.update(self.extra_env)
        full_env.update(env or {})
        return full_env

    def run(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 180, program: str = INV
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [program, *args], cwd=self.path, env=self.environ(env), capture_output=True, text=True, timeout=timeout
        )

    def spawn(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """`inv <args>` started the way `run` starts it, but not waited for (to be killed mid-way)."""
        return subprocess.Popen(
            [INV, *args],
            cwd=self.path,
            env=self.environ(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def dr(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        """The stand-alone `dr` program."""
        return self.run(*args, program=str(Path(sys.executable).with_name("dr")), **kw)

    def write_config(self, **changes: Any) -> None:
        self.config.update(changes)
        (self.path / "invoke.yaml").write_text(yaml.safe_dump({"dr": self.config}))

    def index_bytes(self) -> bytes:
        return self.index_path.read_bytes() if self.index_path.exists() else b""

    def index_rows(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.index_bytes().decode().splitlines() if line.strip()]

    def client(self) -> Any:
        return self.server.client(self.config.get("endpoint_url"))

    def cfg(self) -> Any:
        """The DrConfig the Python API takes, with this server's credentials."""
        from dataclasses import replace

        from dr_tasks import load_config

        cfg = load_config(self.config, self.path)
        return cfg.with_endpoint(
            replace(cfg.endpoint, access_key_id=self.server.access_key, secret_access_key=self.server.secret_key)
        )

    def seed(self, files: dict[str, bytes] | None = None) -> dict[str, bytes]:
        """Write files locally and upload them to their live keys (prefix + path)."""
        files = SAMPLE_FILES if files is None else files
        c = self.server.client()
        prefix = self.config.get("prefix", "")
        for rel, data in files.items():
            p = self.path / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
            c.put_object(Bucket=self.bucket, Key=prefix + rel, Body=data)
        return dict(files)


def assert_clean_refusal(r: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Exit 1, no traceback, and every needle in the message on stderr."""
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr + r.stdout
    for n in needles:
        assert n in r.stderr, r.stderr


def bucket_state(server: Server, bucket: str) -> list[tuple[str, str, str, bool]]:
    """Every version and delete marker: (key, version id, etag, is latest) — to prove nothing changed."""
    c = server.client()
    out: list[tuple[str, str, str, bool]] = []
    for page in c.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for v in page.get("Versions", []):
            out.append((v["Key"], v["VersionId"], v["ETag"], v["IsLatest"]))
        for d in page.get("DeleteMarkers", []):
            out.append((d["Key"], d["VersionId"], "DM", d["IsLatest"]))
    return sorted(out)


def live_objects(server: Server, bucket: str, prefix: str = "") -> dict[str, bytes]:
    c = server.client()
    out: dict[str, bytes] = {}
    for page in c.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            out[o["Key"]] = c.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
    return out


def local_tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


# A host's tasks.py, opted in to one-line errors for Invoke's own config failures.
HOST_TASKS = (
    "from invoke import Collection\nfrom dr_tasks import dr, friendly_config_errors\n\n"
    "friendly_config_errors()\nns = Collection(dr)\n"
)
# One that did not opt in: Invoke is left exactly as it was.
PLAIN_HOST_TASKS = "from invoke import Collection\nfrom dr_tasks import dr\n\nns = Collection(dr)\n"


@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[..., HostRepo]:
    def make(server: Server, bucket: str, *, endpoint_url: str | None = None, **config: Any) -> HostRepo:
        root = tmp_path / f"repo-{uuid.uuid4().hex[:6]}"
        root.mkdir()
        (root / "tasks.py").write_text(HOST_TASKS)
        (root / ".gitignore").write_text("_restore/\n")
        (root / "state" / "log").mkdir(parents=True)
        (root / "state" / "log" / "snapshots.ndjson").touch()
        cfg = {
            "bucket": bucket,
            "endpoint_url": endpoint_url or server.endpoint,
            "region": "us-east-1",
            "concurrency": 8,
            **config,
        }
        repo = HostRepo(root, server, bucket, cfg)
        repo.write_config()
        return repo

    return make


@pytest.fixture
def fault_proxy(server: Server) -> Iterator[FaultProxy]:
    with FaultProxy(server.endpoint) as proxy:
        yield proxy


@pytest.fixture
def fault_proxy_moto(moto_server: Server) -> Iterator[FaultProxy]:
    with FaultProxy(moto_server.endpoint) as proxy:
        yield proxy
