"""Thin Invoke tasks: flags -> config -> operation -> render, one module per area.

A task never talks to boto3 and an operation never prints: each task builds
the config from `c.config.dr`, runs the pre hooks, calls one operation,
renders its result and runs the post hooks. This module assembles them into
the `dr` collection, with every config key declared as a default.
"""

from __future__ import annotations

from invoke import Collection

from .. import config as config_mod
from . import backup, drill, maintenance, recover, restore, rollback, snapshot

ns = Collection("dr")
for module in (snapshot, drill, rollback, backup, restore, maintenance, recover):
    for t in module.TASKS:
        ns.add_task(t)
ns.configure({"dr": config_mod.DECLARED})
