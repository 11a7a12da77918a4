"""HOT templates built as Python data from specs (DESIGN.md, "Templates are data").

`instance_template` describes one instance; `cluster_template` a heterogeneous cluster as a
list of members. Both are pure: the same specs give equal templates, so a stack update
touches only what changed. The same template runs on real Heat and on the local engine.
"""

from __future__ import annotations

from cellar.orchestration.templates.cluster import (
    cluster_parameters,
    cluster_template,
    member_prefix,
    with_members,
    without_members,
)
from cellar.orchestration.templates.instance import (
    HOT_VERSION,
    instance_parameters,
    instance_template,
    update_parameters,
)

__all__ = [
    "HOT_VERSION",
    "cluster_parameters",
    "cluster_template",
    "instance_parameters",
    "instance_template",
    "member_prefix",
    "update_parameters",
    "with_members",
    "without_members",
]
