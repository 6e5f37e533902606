"""S3 failures as operators read them: the operation, the key, the server's code, and what to set."""

from __future__ import annotations

from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from ..errors import DrError


class S3Error(DrError):
    """A permanent S3 failure, naming the operation and the key."""

    def __init__(self, operation: str, bucket: str, key: str | None, detail: str, hint: str | None = None) -> None:
        where = f"s3://{bucket}/{key}" if key is not None else f"s3://{bucket}"
        super().__init__(f"{operation} {where} failed: {detail}", hint)
        self.operation = operation
        self.bucket = bucket
        self.key = key
        self.detail = detail


# `{s}` is the config section of the endpoint that failed (`dr`, `dr.backup`):
# the primary and the backup are set up by different keys.
_HINTS = {
    "NoSuchBucket": "check {s}.bucket (and {s}.endpoint_url / {s}.region): the bucket does not exist there",
    "AccessDenied": "check the credentials' permissions for this bucket",
    "InvalidAccessKeyId": "check {key_id}: the server does not know this key",
    "SignatureDoesNotMatch": "check {secret} for this access key id",
}


def _key_id_settings(section: str) -> str:
    """Where the access key id of an endpoint from `section` comes from."""
    if section == "dr":
        return "AWS_ACCESS_KEY_ID / dr.profile"
    # The backup may have keys of its own; without them boto3's chain applies.
    return f"{section}.access_key_id / {section}.profile (or AWS_ACCESS_KEY_ID when neither is set)"


def _secret_settings(section: str) -> str:
    if section == "dr":
        return "the secret key"
    return f"{section}.secret_access_key (or AWS_SECRET_ACCESS_KEY)"


def credentials_hint(section: str = "dr") -> str:
    """What to set when no credentials were found for an endpoint from config section `section`."""
    if section == "dr":
        return "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or dr.profile"
    env = "INVOKE_" + section.replace(".", "_").upper() + "_*"
    return (
        f"set {section}.access_key_id/{section}.secret_access_key (best through {env}), {section}.profile, "
        "or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
    )


def unreachable_hint(section: str = "dr") -> str:
    """What to check when the server of an endpoint from config section `section` could not be reached."""
    return f"check {section}.endpoint_url and that the server is reachable"


def error_hint(code: str, section: str = "dr") -> str | None:
    """What to do about an S3 error code, for the ones an operator can fix, naming `section`'s keys."""
    hint = _HINTS.get(code)
    if hint is None:
        return None
    return hint.format(s=section, key_id=_key_id_settings(section), secret=_secret_settings(section))


def describe(err: Exception, section: str = "dr") -> tuple[str, str | None]:
    """A short, secret-free description of a botocore error, and a hint naming `section`'s config keys."""
    if isinstance(err, ClientError):
        e = err.response.get("Error", {})
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = e.get("Code", "?")
        hint = error_hint(code, section)
        return f"{code} (HTTP {status}): {e.get('Message', '')}".rstrip(": "), hint
    if isinstance(err, NoCredentialsError):
        return "no credentials found", credentials_hint(section)
    if isinstance(err, EndpointConnectionError):
        return f"cannot connect: {err}", unreachable_hint(section)
    return f"{type(err).__name__}: {err}", None
