"""Health: pure per-kind readiness of live objects, and the worst-of an app.

:func:`assess` judges one live object (None: Missing); :func:`worst` combines.
"""

from __future__ import annotations

from fleet.health.kinds import assess, checks
from fleet.health.model import Health, Status, worst

__all__ = ["Health", "Status", "assess", "checks", "worst"]
