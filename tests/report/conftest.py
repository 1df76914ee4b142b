"""The history tests' PostgreSQL server (:mod:`tests.report.pgkit`), started once per session;
skipped, saying why, only when the binaries are absent."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.report.pgkit import Postgres, bin_dir, running


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    binaries = bin_dir()
    if binaries is None:
        pytest.skip("PostgreSQL is not installed (no initdb): `make system` installs it")
    with running(binaries) as server:
        yield server
