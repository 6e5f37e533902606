"""The transport's single rules: one "are these the bytes" check, one null-version rule, one SSE rule,
and the engine chosen once per client."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from dr_tasks.transport import checks, engine
from dr_tasks.transport.engine import Boto3Engine, engine_for

MD5 = hashlib.md5(b"abc").hexdigest()


def test_an_md5_etag_that_differs_is_refused_unless_encryption_hides_it() -> None:
    assert checks.transit_problem(3, 3, MD5, MD5, encrypted=False) == ""
    assert "hash to MD5" in checks.transit_problem(3, 3, MD5, "0" * 32, encrypted=False)
    assert checks.transit_problem(3, 3, MD5, "0" * 32, encrypted=True) == ""
    assert checks.transit_problem(3, 3, MD5, "0" * 32 + "-2", encrypted=False) == ""
    assert checks.transit_problem(2, 3, MD5, MD5, encrypted=False) == "read 2 bytes, the listing says 3"


def test_sse_kms_and_sse_c_hide_the_md5_whichever_engine_read_the_headers() -> None:
    assert checks.md5_hidden("aws:kms", None) and checks.md5_hidden(None, "AES256")
    assert not checks.md5_hidden("AES256", None) and not checks.md5_hidden(None, None)
    assert checks.md5_hidden_by_headers({"x-amz-server-side-encryption": "aws:kms:dsse"})
    assert checks.md5_hidden_by_headers({"x-amz-server-side-encryption-customer-algorithm": "AES256"})
    assert not checks.md5_hidden_by_headers({"x-amz-server-side-encryption": "AES256"})


def test_the_null_version_is_asked_for_but_never_compared() -> None:
    assert checks.version_query("null") == {"VersionId": "null"}
    assert checks.version_query(None) == {}
    assert checks.wrong_version("null", "abc") == ""
    assert checks.wrong_version("v1", None) == ""
    assert "asked for version v1" in checks.wrong_version("v1", "v2")


class _FakeS3:
    concurrency = 4

    def __init__(self) -> None:
        self.config = None


def test_the_engine_is_chosen_once_per_client_and_classic_means_boto3(monkeypatch: pytest.MonkeyPatch) -> None:
    s3 = _FakeS3()
    first = engine_for(s3, "classic")  # type: ignore[arg-type]
    assert isinstance(first, Boto3Engine) and first.name == "boto3"
    assert engine_for(s3, "classic") is first  # type: ignore[arg-type]
    monkeypatch.setattr(engine, "crt_available", lambda: False)
    assert engine_for(_FakeS3(), "crt").name == "boto3"  # type: ignore[arg-type]


def test_the_boto3_engine_reports_a_write_failure_as_one_job_not_a_crash(tmp_path: Path) -> None:
    from datetime import datetime, timezone

    from dr_tasks.transport import GetJob, ObjectVersion, WriteFailed

    class S3:
        concurrency = 2

        def download_version(self, bucket: str, obj: ObjectVersion, dest: Path) -> str:
            if obj.key == "bad":
                raise PermissionError(13, "Permission denied")
            dest.write_bytes(b"x")
            return "sha"

    now = datetime.now(timezone.utc)
    jobs = [GetJob(k, "b", ObjectVersion(k, "v", 1, MD5, now), tmp_path / k, now.timestamp()) for k in ("ok", "bad")]
    got = dict((job.tag, outcome) for job, outcome in Boto3Engine(S3(), 2).download_versions(jobs))  # type: ignore[arg-type]
    assert got["ok"] == "sha" and isinstance(got["bad"], WriteFailed)
