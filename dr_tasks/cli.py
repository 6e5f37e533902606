"""The stand-alone `dr` program: invoke.Program over the same collection.

`dr snapshot --label=x` is `inv dr.snapshot --label=x` without a tasks.py; it
reads the same `invoke.yaml` (the nearest one at or above the working
directory) and the same `INVOKE_DR_*` environment variables.
"""

from __future__ import annotations

import sys
from pathlib import Path

from invoke import Program

from . import internals, render, tasks

try:
    from importlib.metadata import version as _version

    VERSION = _version("dr-tasks")
except Exception:  # not installed: running from a source tree
    VERSION = "0+unknown"


def _project_dir(start: Path) -> Path:
    for d in (start, *start.parents):
        if any((d / f"invoke.{ext}").exists() for ext in ("yaml", "yml", "json", "py")):
            return d
    return start


class DrProgram(Program):
    def parse_collection(self) -> None:
        super().parse_collection()
        # A bundled namespace skips Invoke's project-config loading; do it here
        # so `dr` sees the same invoke.yaml as `inv dr.*`.
        self.config.set_project_location(str(_project_dir(Path.cwd())))
        self.config.load_project()


program = DrProgram(namespace=tasks.ns, name="dr", binary="dr", version=VERSION)


def main() -> None:
    # Our own program: Invoke's config errors may become one-line messages
    # here, and its --list or --help into a closed pipe a quiet exit 141.
    internals.friendly_invoke_config_errors()
    # Hints name commands as `dr <task>` (render.commands).
    render.use_program("dr")
    try:
        try:
            program.run()
        finally:
            # What Invoke printed itself (--version) is still buffered: a
            # closed pipe shows here, not as a traceback at exit.
            sys.stdout.flush()
    except BrokenPipeError:
        render.stdout_gone()
        sys.exit(render.STDOUT_CLOSED)
