"""condorhub's own Prometheus metrics, served with JupyterHub's on ``/hub/metrics``.

JupyterHub serves prometheus_client's default registry; every metric object condorhub exports is created
here, once, with its help text, so the names (all ``condorhub_*``) and their meaning have one owner.
Other modules only call the small ``record_*`` functions below.
"""

from __future__ import annotations

from prometheus_client import Counter

CULLS = Counter(
    "condorhub_culls_total",
    "Servers stopped by the idle culler, by profile (a GPU server culled gives its GPU back before its runtime limit).",
    ["profile"],
)


def record_cull(profile_slug: str) -> None:
    """Count one server of profile ``profile_slug`` stopped for being idle (called by the idle culling)."""
    CULLS.labels(profile=profile_slug or "unknown").inc()
