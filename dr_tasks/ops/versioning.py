"""`dr.versioning [--enable]`: bucket versioning plus a rule expiring noncurrent versions.

Versioning is what makes point-in-time restore possible; the lifecycle rule
keeps its cost bounded: a noncurrent version is deleted `retention_days` after
it stopped being current. `--enable` turns versioning on and puts our rule
while keeping every other lifecycle rule the bucket has (S3 replaces the whole
configuration on a put, so we read, merge and write back), then reads both
back: stores such as DigitalOcean Spaces accept some rule shapes and store
others, so only the read-back counts.

A rule counts as ours-compatible when it is enabled, covers the whole bucket
and has NoncurrentVersionExpiration. "Whole bucket": no filter, an empty
filter, `Filter: {Prefix: ""}`, or the legacy rule-level `Prefix: ""` that Ceph
RGW (and so Spaces) reads `Filter: {Prefix: ""}` back as.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..config import DrConfig
from ..transport import S3

RULE_ID = "dr-tasks-noncurrent-versions"
FIX = "inv dr.versioning --enable"


def covers_whole_bucket(rule: dict[str, Any]) -> bool:
    if rule.get("Prefix") not in (None, ""):
        return False
    flt = rule.get("Filter")
    if flt is None or flt == {}:
        return True
    return set(flt) == {"Prefix"} and flt["Prefix"] == ""


def noncurrent_days(rule: dict[str, Any]) -> int | None:
    nve = rule.get("NoncurrentVersionExpiration") or {}
    days = nve.get("NoncurrentDays")
    return int(days) if isinstance(days, int) else None


def our_rule(days: int) -> dict[str, Any]:
    return {
        "ID": RULE_ID,
        "Status": "Enabled",
        "Filter": {"Prefix": ""},
        "NoncurrentVersionExpiration": {"NoncurrentDays": days},
    }


@dataclass
class VersioningResult:
    bucket: str
    status: str | None
    retention_days: int
    rule: dict[str, Any] | None = None
    other_rules: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    enabled_now: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def fix(self) -> str | None:
        return None if self.ok else FIX

    def summary(self) -> str:
        versioning = self.status or "never enabled"
        if self.rule is not None:
            rule = (
                f"noncurrent versions expire after {noncurrent_days(self.rule)} days "
                f"(rule {self.rule.get('ID') or '(no id)'})"
            )
        else:
            rule = "no rule expires noncurrent versions"
        return f"s3://{self.bucket}: versioning {versioning}; {rule}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "versioning": self.status,
            "retention_days": self.retention_days,
            "rule": self.rule,
            "other_rules": self.other_rules,
            "ok": self.ok,
            "problems": self.problems,
            "fix": self.fix,
            "enabled_now": self.enabled_now,
        }


def _assess(bucket: str, status: str | None, rules: list[dict[str, Any]], days: int) -> VersioningResult:
    result = VersioningResult(bucket, status, days)
    if status != "Enabled":
        result.problems.append(f"versioning is {status or 'not enabled'}, expected Enabled")
    candidates = [
        r for r in rules if r.get("Status") == "Enabled" and covers_whole_bucket(r) and noncurrent_days(r) is not None
    ]
    # Prefer our own rule when it is there; otherwise any whole-bucket one.
    mine = [r for r in candidates if r.get("ID") == RULE_ID]
    result.rule = next(iter(mine or candidates), None)
    result.other_rules = [str(r.get("ID") or "(no id)") for r in rules if r is not result.rule]
    if result.rule is None:
        result.problems.append(
            f"no enabled whole-bucket lifecycle rule expires noncurrent versions (expected after {days} days)"
        )
    elif noncurrent_days(result.rule) != days:
        result.problems.append(
            f"rule {result.rule.get('ID')} expires noncurrent versions after {noncurrent_days(result.rule)} days, "
            f"retention_days is {days}"
        )
    # Another rule expiring noncurrent versions sooner would cut retention short.
    for r in candidates:
        nd = noncurrent_days(r)
        if r is not result.rule and nd is not None and nd < days:
            result.problems.append(
                f"rule {r.get('ID')} expires noncurrent versions after {nd} days, sooner than retention_days {days}; "
                "remove or lengthen it"
            )
    return result


def versioning_status(cfg: DrConfig, s3: S3 | None = None) -> VersioningResult:
    """Versioning status and the noncurrent-version rule, judged against `retention_days`."""
    s3 = s3 or S3(cfg.endpoint, cfg.concurrency)
    status = s3.versioning(cfg.bucket)
    rules = s3.lifecycle_rules(cfg.bucket)
    return _assess(cfg.bucket, status, rules, cfg.retention_days)


def enable_versioning(cfg: DrConfig, s3: S3 | None = None) -> VersioningResult:
    """Turn versioning on and put our rule (keeping every other rule), then read both back."""
    s3 = s3 or S3(cfg.endpoint, cfg.concurrency)
    if s3.versioning(cfg.bucket) != "Enabled":
        s3.enable_versioning(cfg.bucket)
    rules = s3.lifecycle_rules(cfg.bucket)
    kept = [r for r in rules if r.get("ID") != RULE_ID]
    wanted = [*kept, our_rule(cfg.retention_days)]
    current = [r for r in rules if r.get("ID") == RULE_ID]
    if len(current) != 1 or noncurrent_days(current[0]) != cfg.retention_days or not covers_whole_bucket(current[0]):
        s3.put_lifecycle_rules(cfg.bucket, wanted)
    result = versioning_status(cfg, s3)
    result.enabled_now = True
    lost = {str(r.get("ID")) for r in kept if r.get("ID")} - set(result.other_rules)
    if lost:
        result.problems.append(f"rules {sorted(lost)} did not read back after the put")
    if result.problems:
        result.problems.append("the store accepted the settings but does not read them back as configured")
    return result
