"""Error hints name the config keys of the endpoint that failed: `dr.*` (the primary) or `dr.backup.*`."""

from __future__ import annotations

import socket
from dataclasses import replace
from pathlib import Path

import pytest
from botocore.exceptions import NoCredentialsError
from botocore.stub import Stubber

from dr_tasks import DrError, load_config
from dr_tasks.config import DrConfig, Endpoint
from dr_tasks.transport import S3, S3Error, error_hint
from dr_tasks.transport.errors import describe as _describe


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cfg(tmp_path: Path, url: str = "http://127.0.0.1:9", **backup: object) -> DrConfig:
    return load_config(
        {
            "bucket": "primary-bucket",
            "endpoint_url": "http://127.0.0.1:9",
            "backup": {
                "bucket": "backup-bucket",
                "endpoint_url": url,
                "region": "eu-west-1",
                "access_key_id": "k",
                "secret_access_key": "s",
                **backup,
            },
        },
        tmp_path,
    )


def backup_ep(tmp_path: Path, url: str = "http://127.0.0.1:9", **backup: object) -> Endpoint:
    ep = cfg(tmp_path, url, **backup).backup.endpoint
    assert ep is not None
    return ep


# ---------------------------------------------------------------------- where an endpoint came from
def test_each_endpoint_knows_its_config_section(tmp_path: Path) -> None:
    c = cfg(tmp_path)
    assert c.endpoint.section == "dr" and c.endpoint.key("endpoint_url") == "dr.endpoint_url"
    assert c.backup.endpoint is not None
    assert c.backup.endpoint.section == "dr.backup"
    assert c.backup.endpoint.key("endpoint_url") == "dr.backup.endpoint_url"


def test_the_section_is_not_part_of_an_endpoints_identity(tmp_path: Path) -> None:
    ep = backup_ep(tmp_path)
    same = replace(ep, section="dr")
    assert same == ep and hash(same) == hash(ep)
    assert "secret_access_key" not in repr(ep)  # still never printed


# ---------------------------------------------------------------------- a backup that cannot be reached
def test_an_unreachable_backup_names_the_backup_endpoint_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    s3 = S3(backup_ep(tmp_path, f"http://127.0.0.1:{closed_port()}"), 1)
    with pytest.raises(S3Error) as e:
        s3.versioning("backup-bucket")
    text = str(e.value)
    assert "cannot connect" in text
    assert "check dr.backup.endpoint_url and that the server is reachable" in text
    assert "dr.endpoint_url" not in text.replace("dr.backup.endpoint_url", "")


# ---------------------------------------------------------------------- S3 error codes
def _failing(ep: Endpoint, code: str, status: int) -> S3Error:
    s3 = S3(ep, 1)
    with Stubber(s3.client) as stub:
        stub.add_client_error("get_bucket_versioning", service_error_code=code, http_status_code=status)
        with pytest.raises(S3Error) as e:
            s3.versioning(ep.bucket)
    return e.value


def test_no_such_bucket_at_the_backup_names_the_backup_keys(tmp_path: Path) -> None:
    err = _failing(backup_ep(tmp_path), "NoSuchBucket", 404)
    assert err.hint == (
        "check dr.backup.bucket (and dr.backup.endpoint_url / dr.backup.region): the bucket does not exist there"
    )


def test_no_such_bucket_at_the_primary_still_names_the_primary_keys(tmp_path: Path) -> None:
    c = cfg(tmp_path)
    err = _failing(replace(c.endpoint, access_key_id="k", secret_access_key="s"), "NoSuchBucket", 404)
    assert err.hint == "check dr.bucket (and dr.endpoint_url / dr.region): the bucket does not exist there"


@pytest.mark.parametrize(
    ("code", "named"),
    [
        ("InvalidAccessKeyId", "dr.backup.access_key_id / dr.backup.profile"),
        ("SignatureDoesNotMatch", "dr.backup.secret_access_key"),
    ],
)
def test_bad_backup_credentials_name_the_backup_keys(tmp_path: Path, code: str, named: str) -> None:
    err = _failing(backup_ep(tmp_path), code, 403)
    assert err.hint is not None and named in err.hint
    assert "dr.profile" not in err.hint.replace("dr.backup.profile", "")


def test_error_hint_defaults_to_the_primary_section() -> None:
    assert error_hint("InvalidAccessKeyId") == "check AWS_ACCESS_KEY_ID / dr.profile: the server does not know this key"
    assert error_hint("SignatureDoesNotMatch") == "check the secret key for this access key id"
    assert error_hint("NoSuchKey", "dr.backup") is None


def test_no_credentials_for_the_backup_names_the_backup_keys() -> None:
    detail, hint = _describe(NoCredentialsError(), "dr.backup")
    assert detail == "no credentials found"
    assert hint is not None
    assert "dr.backup.access_key_id/dr.backup.secret_access_key" in hint and "INVOKE_DR_BACKUP_*" in hint
    assert "dr.backup.profile" in hint


# ---------------------------------------------------------------------- setting the client up
def test_a_missing_backup_profile_names_dr_backup_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    ep = backup_ep(tmp_path, profile="nosuch", access_key_id=None, secret_access_key=None)
    with pytest.raises(DrError) as e:
        S3(ep, 1)
    assert e.value.hint == "define it in ~/.aws/credentials or unset dr.backup.profile"
