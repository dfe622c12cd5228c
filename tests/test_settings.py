from __future__ import annotations

from pathlib import Path

import pytest

from server.settings import Settings, SettingsError, load_settings


def test_defaults_without_environment() -> None:
    settings = load_settings({})
    assert settings == Settings()
    assert settings.redis_url is None
    assert settings.data_dir == Path("var")
    assert settings.h3_resolution == 9


def test_variables_are_parsed_and_typed() -> None:
    settings = load_settings(
        {
            "FLEET_PORT": "9001",
            "FLEET_H3_RESOLUTION": "7",
            "FLEET_REDIS_URL": "redis://127.0.0.1:6390/2",
            "FLEET_DATA_DIR": "/tmp/x",
            "FLEET_LOG_LEVEL": "WARNING",
            "PATH": "/usr/bin",
        }
    )
    assert settings.port == 9001
    assert settings.h3_resolution == 7
    assert settings.redis_url == "redis://127.0.0.1:6390/2"
    assert settings.data_dir == Path("/tmp/x")
    assert settings.log_level == "warning"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FLEET_H3_RESOLUTION", "99"),
        ("FLEET_H3_RESOLUTION", "nine"),
        ("FLEET_PORT", "70000"),
        ("FLEET_REDIS_URL", "http://example"),
        ("FLEET_REDIS_URL", "redis://127.0.0.1:notaport"),
        ("FLEET_LOG_LEVEL", "loud"),
        ("FLEET_SNAP_MAX_DISTANCE_M", "-5"),
        ("FLEET_REDIS_TIMEOUT_S", "0"),
        ("FLEET_CLOCK_RATE", "0.5"),
        ("FLEET_CLOCK_RATE", "fast"),
        ("FLEET_CLOCK_RATE", "inf"),
        ("FLEET_CLOCK_ANCHOR", "-1"),
    ],
)
def test_an_invalid_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({name: value})
    assert str(info.value).startswith(f"{name}={value} is invalid: ")


def test_a_clock_faster_than_real_time_needs_its_anchor() -> None:
    assert load_settings({}).clock_rate == 1.0
    with pytest.raises(SettingsError) as info:
        load_settings({"FLEET_CLOCK_RATE": "4"})
    assert str(info.value).startswith("FLEET_CLOCK_RATE=4 needs FLEET_CLOCK_ANCHOR: ")
    settings = load_settings({"FLEET_CLOCK_RATE": "4", "FLEET_CLOCK_ANCHOR": "1764259200.5"})
    assert (settings.clock_rate, settings.clock_anchor) == (4.0, 1764259200.5)


def test_an_unknown_variable_is_refused_but_test_variables_are_ignored() -> None:
    with pytest.raises(SettingsError, match="FLEET_H3_RESOLUTON is not a setting"):
        load_settings({"FLEET_H3_RESOLUTON": "8"})
    assert load_settings({"FLEET_TEST_TIMEOUT_SCALE": "3"}) == Settings()


def test_cli_overrides_win_and_are_validated() -> None:
    settings = load_settings({"FLEET_PORT": "9001"}, overrides={"port": "9002", "host": None})
    assert settings.port == 9002
    assert settings.host == "127.0.0.1"
    with pytest.raises(SettingsError, match=r"^--port x is invalid"):
        load_settings({}, overrides={"port": "x"})


def test_every_setting_is_documented() -> None:
    variables = Settings.variables()
    assert "FLEET_REDIS_URL" in variables
    assert all(doc for doc in variables.values())
