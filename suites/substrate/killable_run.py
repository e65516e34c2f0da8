"""The inner run of ``test_killed_runs`` (never collected by itself: not ``test_*.py``).

``test_killed_runs`` starts ``pytest`` on this file with its own state dir; the one test
here takes the run's clusters, says so by creating the file ``$ISTHMUS_KILLABLE_MARK``
and then holds them until the outer test kills the whole run (SIGKILL), at most
``TIMEOUTS.killable_hold`` seconds.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from harness.providers import Cluster
from harness.settings import TIMEOUTS

MARK_ENV = "ISTHMUS_KILLABLE_MARK"


def test_hold_the_clusters_until_killed(clusters: dict[str, Cluster]) -> None:
    Path(os.environ[MARK_ENV]).write_text(",".join(sorted(clusters)))
    threading.Event().wait(TIMEOUTS.killable_hold)
