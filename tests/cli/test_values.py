"""One parser per kind of value: the options and the request parameters read the same words."""

from __future__ import annotations

from dataclasses import fields

import pytest

from celery_monitor import values
from celery_monitor.cli.config import ConfigError, load_settings
from celery_monitor.settings import BY_NAME, OPTIONS, Settings


@pytest.mark.parametrize("word", ["1", "true", "Yes", "on", "y", "T"])
def test_true_words(word: str) -> None:
    assert values.parse_bool(word) is True
    assert load_settings([f"--read_only={word}"], environ={}).read_only is True


@pytest.mark.parametrize("word", ["0", "false", "No", "off", "n", "F", "none", ""])
def test_false_words(word: str) -> None:
    assert values.parse_bool(word) is False
    assert load_settings([f"--persistent={word}"], environ={}).persistent is False


def test_a_bad_value_says_what_is_wrong() -> None:
    with pytest.raises(values.BadValue, match="'maybe' is not a boolean"):
        values.parse_bool("maybe")
    with pytest.raises(values.BadValue, match="True is not an integer"):
        values.parse_int(True)
    assert values.parse_int(" 42 ") == 42 and values.parse_int(3.0) == 3
    with pytest.raises(values.BadValue, match="is below the minimum 1"):
        values.check_range(0, 1)
    with pytest.raises(values.BadValue):
        values.check_range(float("nan"), 0)
    with pytest.raises(ConfigError, match="--port: 70000 is above the maximum 65535"):
        load_settings(["--port=70000"], environ={})


def test_settings_defaults_are_the_option_table() -> None:
    defaults = Settings()
    assert [option.name for option in OPTIONS] == [f.name for f in fields(Settings) if f.name in BY_NAME]
    for option in OPTIONS:
        assert getattr(defaults, option.name) == option.default, option.name
    assert Settings().trusted_proxies is not Settings().trusted_proxies  # a list each, never shared
