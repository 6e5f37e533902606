"""This project's own tasks: the `dr` collection composed the way a host repo does, plus dev tasks."""

from __future__ import annotations

import sys

from invoke import Collection, Context, task

from dr_tasks import dr


@task(help={"k": "only tests matching this expression", "fast": "skip the RGW end-to-end tests"})
def test(c: Context, k: str = "", fast: bool = False) -> None:
    """ruff and mypy, then the whole test suite (unit, and end to end against moto's server and Ceph RGW)."""
    # The venv's own tools (CI calls .venv/bin/inv without activating the venv).
    c.run(f"{sys.executable} -m ruff check .", pty=False)
    c.run(f"{sys.executable} -m mypy dr_tasks", pty=False)
    args = ["-q"]
    if k:
        args += ["-k", repr(k)]
    if fast:
        args += ["-m", "'not rgw'"]
    c.run(f"{sys.executable} -m pytest " + " ".join(args), pty=False)


@task
def lint(c: Context) -> None:
    """ruff over everything."""
    c.run("ruff check .")


@task(help={"n": "objects to seed", "quick": "one run each, small N (the CI smoke)"})
def bench(c: Context, n: int = 0, quick: bool = False) -> None:
    """The comparison with aws s3 / rclone on the same servers (see bench/README.md)."""
    args = []
    if n:
        args.append(f"--n={n}")
    if quick:
        args.append("--quick")
    c.run(f"{sys.executable} -m bench " + " ".join(args), pty=False)


ns = Collection(dr, test, lint, bench)
