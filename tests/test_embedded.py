"""``simulator.embedded``: the simulator started inside a test run or demo, reached at a URL,
and the apps a test registers put back — the lifecycle the pytest plugin, ``clever-sim demo``
and the contract runner share, used here without the plugin."""

from __future__ import annotations


import httpx
import pytest

from simulator.control_client import ControlAPIError
from simulator.embedded import (AppRegistrations, PortUnavailable, SimulatorUnavailable, Target,
                                bind_simulator, start_simulator)

CALLBACK = "http://127.0.0.1:5001/clever/callback"




def apps_at(url: str) -> dict[str, dict]:
    answer = httpx.get(url + "/_sim/apps", trust_env=False, timeout=10).json()["data"]
    return {a["client_id"]: a for a in answer}


def test_a_started_simulator_answers_until_stopped():
    server = start_simulator({"DB": ":memory:", "STRICT": True})
    url = server.url
    assert httpx.get(url + "/_sim/health", trust_env=False).json()["strict"] is True
    server.stop()
    with pytest.raises(httpx.TransportError):
        httpx.get(url + "/_sim/health", trust_env=False, timeout=2)


def test_a_bound_simulator_serves_only_once_started():
    server = bind_simulator({"DB": ":memory:"})
    try:
        assert server.thread is None
        server.start()
        assert httpx.get(server.url + "/_sim/health", trust_env=False).status_code == 200
    finally:
        server.stop()


def test_a_taken_port_is_port_unavailable_naming_the_port(busy_port):
    with pytest.raises(PortUnavailable, match=rf"^cannot listen on 127\.0\.0\.1:{busy_port}: "):
        Target.start({"DB": ":memory:"}, busy_port)


def test_a_restart_whose_old_port_was_taken_warns_and_takes_a_free_one(busy_port):
    with pytest.warns(UserWarning, match=f"port {busy_port} was taken while the simulator "
                                         "restarted with other settings: its URL changed"):
        target = Target.start({"DB": ":memory:"}, keep_port=busy_port)
    try:
        assert target.server.port != busy_port
        assert target.control.health()["status"] == "ok"
    finally:
        target.stop()


def test_settings_the_simulator_refuses_are_simulator_unavailable(tmp_path):
    missing = tmp_path / "no-roster.json"
    with pytest.raises(SimulatorUnavailable, match="^cannot start the simulator with .*no-roster.json"):
        Target.start({"DB": ":memory:", "ROSTER": str(missing)})


def test_a_simulator_at_a_url_reports_settings_it_cannot_take(live_sim):
    target = Target.connect(live_sim.url, {"DB": ":memory:"})
    try:
        assert target.sim is None
        assert target.unapplied({"DB": ":memory:", "STRICT": False, "ROSTER": "r.json"}) == ["ROSTER"]
        with pytest.raises(SimulatorUnavailable) as caught:
            target.unapplied({"STRICT": True})
        assert str(caught.value) == (f"this test asks for strict=True but the simulator at "
                                     f"{live_sim.url} runs with strict=False; restart it with(out) --strict")
    finally:
        target.stop()
    assert httpx.get(live_sim.url + "/_sim/health", trust_env=False).status_code == 200  # not ours


def test_no_simulator_at_the_url_is_a_control_api_error():
    with pytest.raises(ControlAPIError, match="cannot reach the simulator at http://127.0.0.1:9"):
        Target.connect("http://127.0.0.1:9", {})


def test_apps_a_test_registers_or_changes_are_put_back(live_sim):
    target = Target.connect(live_sim.url, {})
    demo = target.default_app_spec()
    before = apps_at(live_sim.url)
    try:
        registrations = AppRegistrations(target)
        extra = registrations.register({"name": "Extra", "redirect_uris": ["http://localhost:9/cb"]})
        renamed = registrations.register({**demo, "name": "Renamed"})
        assert renamed.name == "Renamed" and extra.client_id in apps_at(live_sim.url)
        registrations.undo()
    finally:
        target.stop()
    assert apps_at(live_sim.url) == before


def test_an_app_spec_without_a_client_id_is_the_same_app_all_session(live_sim):
    target = Target.connect(live_sim.url, {})
    registrations = AppRegistrations(target)
    try:
        first = registrations.ensure({"name": "Generated", "redirect_uris": [CALLBACK]})
        again = registrations.ensure({"name": "Generated", "redirect_uris": [CALLBACK]})
        target.control.delete_app(first.client_id)
        assert again.client_id == first.client_id
        with pytest.raises(ValueError, match=r"^an app needs at least redirect_uris \(got \{'name': 'x'\}\)$"):
            registrations.ensure({"name": "x"})
    finally:
        target.stop()
