from __future__ import annotations

from pathlib import Path

import pytest

from geo.roads import Roads
from server.regions import default_region_path
from tests.conftest import REPO


@pytest.fixture(scope="session")
def helsinki_pbf() -> Path:
    """The built-in map, as ``scripts/setup`` fetched it."""
    path = default_region_path(REPO / "var")
    if not path.is_file():
        pytest.skip(f"{path} is absent: run scripts/setup (it fetches the built-in map)")
    return path


@pytest.fixture(scope="session")
def helsinki_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("helsinki-roads")


@pytest.fixture(scope="session")
def helsinki(helsinki_pbf: Path, helsinki_cache: Path) -> Roads:
    return Roads.open(helsinki_pbf, helsinki_cache, progress=lambda _: None)
