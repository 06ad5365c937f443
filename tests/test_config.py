"""Config layering: defaults < TOML file < CLEVER_SIM_* env < test overrides."""

from __future__ import annotations

import re

import pytest

from simulator.app import create_app
from simulator.config import ConfigError, build_config

PARTNER = """
[simulator]
strict = true
journal_cap = 50

[app]
name = "Mathly"
client_id = "mathly-client"
client_secret = "mathly-secret"
redirect_uris = ["http://localhost:5001/clever/callback"]
assignments_url = "http://localhost:5001/clever/assignments"

[contract]
grade_timeout_s = 5
"""


def test_file_then_env_then_overrides(tmp_path):
    path = tmp_path / "partner.toml"
    path.write_text(PARTNER, encoding="utf-8")
    cfg = build_config(path, {"CLEVER_SIM_JOURNAL_CAP": "70"}, {"STRICT": False})
    assert cfg["JOURNAL_CAP"] == 70          # env beats file
    assert cfg["STRICT"] is False            # overrides beat env and file
    assert cfg["APPS"][0]["client_id"] == "mathly-client"
    assert cfg["CONTRACT"] == {"grade_timeout_s": 5}


def test_config_app_is_registered_with_its_credentials(tmp_path):
    path = tmp_path / "partner.toml"
    path.write_text(PARTNER, encoding="utf-8")
    app = create_app({"DB": ":memory:"}, config_file=str(path), environ={})
    sim = app.extensions["clever_sim"]
    registered = sim.store.get_app("mathly-client")
    assert registered.client_secret == "mathly-secret"
    assert registered.assignments_url == "http://localhost:5001/clever/assignments"
    assert sim.cfg["STRICT"] is True


@pytest.mark.parametrize("env, words", [
    ({"CLEVER_SIM_STRICT": "maybe"}, "expected true/false"),
    ({"CLEVER_SIM_JOURNAL_CAP": "lots"}, "expected a whole number"),
    ({"CLEVER_SIM_JOURNAL_CAP": "0"}, "positive whole number"),
    ({"CLEVER_SIM_JOURNAL_MAX_MB": "0"}, "journal_max_mb must be a positive whole number"),
    ({"CLEVER_SIM_JOURNAL_MAX_MB": "4.5"}, "expected a whole number"),
])
def test_bad_env_values_are_named(env, words):
    with pytest.raises(ConfigError, match=words):
        build_config(None, env)


@pytest.mark.parametrize("text, words", [
    ("[simulator]\nstrict = 'yes'\n", "strict must be true or false"),
    ("[simulator]\nport = 3\n", "unknown key [simulator].port"),
    ("[app]\nredirect_uris = 'http://x'\n", "redirect_uris must be a non-empty list"),
    ("[app]\nredirect_uris = ['http://x']\nclient_id = 5\n", "client_id must be a non-empty string"),
    # a misspelt key is named, even where it leaves a required one missing
    ("[app]\nname = 'M'\nredirect_uri = ['http://x/cb']\n",
     "unknown key [app].redirect_uri (known: assignments_url, client_id, client_secret, districts, "
     "name, redirect_uris, scopes)"),
    ("[app]\nredirect_uris = ['http://x/cb']\nclient_secrt = 's'\n", "unknown key [app].client_secrt"),
    ("contract = 5\n", "[contract] must be a table"),
    ("[simulater]\nstrict = true\n", "unknown table [simulater] (known: [app], [contract], [simulator])"),
    ("strict = true\n[app]\nredirect_uris = ['http://x']\n",
     "key 'strict' is outside any table: put it under the table it belongs to"),
])
def test_bad_files_are_named(tmp_path, text, words):
    path = tmp_path / "p.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(words)):
        build_config(path, {})


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        build_config(tmp_path / "nope.toml", {})
