"""``python -m fleet.controlplane``: see :mod:`fleet.controlplane.cli`."""

from __future__ import annotations

import sys

from fleet.controlplane.cli import main

sys.exit(main())
