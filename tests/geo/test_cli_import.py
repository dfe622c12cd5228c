"""``fleet import-osm`` as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import scaled


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", "import-osm", *args],
        capture_output=True,
        text=True,
        timeout=scaled(60),
    )


def test_import_reports_progress_and_fills_the_cache(tiny_osm: Path, tmp_path: Path) -> None:
    first = run(str(tiny_osm), "--data-dir", str(tmp_path))
    assert first.returncode == 0, first.stderr
    assert "largest strongly connected component: 4 nodes, 6 arcs" in first.stdout
    assert "tiny: 4 nodes, 6 arcs ready" in first.stdout
    assert len(list((tmp_path / "roads").glob("*.npz"))) == 1
    again = run(str(tiny_osm), "--data-dir", str(tmp_path))
    assert "reading" not in again.stdout, "the second run loads the cache"


def test_a_missing_or_broken_file_is_one_sentence(tmp_path: Path) -> None:
    missing = run(str(tmp_path / "nope.osm.pbf"))
    assert missing.returncode == 2
    assert missing.stderr.strip().endswith("does not exist.")
    broken = tmp_path / "broken.osm.pbf"
    broken.write_bytes(b"\x00garbage")
    answer = run(str(broken), "--data-dir", str(tmp_path))
    assert answer.returncode == 2
    assert answer.stderr.startswith("fleet: Cannot import")
