"""The Docker image's HEALTHCHECK (``python -m simulator.healthcheck``): a container running
``clever-sim serve`` or ``demo`` is probed where that command listens; one running
``contract``, ``fixtures`` or ``snapshot`` has no server and is healthy (it was reported
unhealthy when the check always probed port 8080).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from serverproc import ServerProcess
from simulator.healthcheck import serving_target

ROOT = Path(__file__).resolve().parent.parent
PY = "/usr/local/bin/python3.11"


@pytest.mark.parametrize("argv, environ, target", [
    # the image's CMD, as the kernel runs the console script (interpreter, script, args)
    ([PY, "/usr/local/bin/clever-sim", "serve", "--host", "0.0.0.0", "--port", "8080"], {}, ("127.0.0.1", 8080)),
    (["clever-sim", "serve", "--port=9000"], {}, ("127.0.0.1", 9000)),
    (["clever-sim", "serve", "--port", "0", "--port", "9001"], {}, ("127.0.0.1", 9001)),  # the last wins
    (["clever-sim", "serve"], {"CLEVER_SIM_PORT": "9002"}, ("127.0.0.1", 9002)),
    (["clever-sim", "serve", "--port", "9003"], {"CLEVER_SIM_PORT": "9002"}, ("127.0.0.1", 9003)),
    (["clever-sim", "serve", "--host", "::"], {}, ("::1", 8080)),
    (["clever-sim", "serve"], {"CLEVER_SIM_HOST": "0.0.0.0"}, ("127.0.0.1", 8080)),
    (["clever-sim", "serve", "--host", "192.0.2.7"], {}, ("192.0.2.7", 8080)),
    (["/sbin/docker-init", "--", "clever-sim", "serve", "--host", "0.0.0.0"], {}, ("127.0.0.1", 8080)),  # --init
    (["/bin/sh", "-c", "clever-sim serve --host 0.0.0.0 --port 9004"], {}, ("127.0.0.1", 9004)),
    ([PY, "-m", "simulator.cli", "serve", "--port", "9005"], {}, ("127.0.0.1", 9005)),
    (["clever-sim", "demo", "--port", "9006", "--partner-port", "5001"], {}, ("127.0.0.1", 9006)),
    (["clever-sim", "serve", "--port", "0"], {}, ("127.0.0.1", 0)),
    # no server in the container: nothing to check
    ([PY, "/usr/local/bin/clever-sim", "contract", "--config", "/cfg/partner.toml", "--sim-port", "8080"],
     {}, None),
    (["clever-sim", "contract", "--config", "/cfg/partner.toml", "--sim-url", "http://127.0.0.1:8080"], {}, None),
    (["clever-sim", "fixtures", "cache", "/home/clever/big.json"], {}, None),
    (["clever-sim", "snapshot", "save", "/data/s.json", "--db", "/data/clever-sim.db"], {}, None),
    (["clever-sim", "serve", "--help"], {}, None),
    (["clever-sim", "--version"], {}, None),
    (["/bin/sh", "-c", "sleep 1000"], {}, None),
    (["/bin/sh", "-c", "echo 'clever-sim serve"], {}, None),   # unbalanced quote: not read as one
])
def test_the_health_check_probes_the_server_the_container_runs(argv, environ, target):
    assert serving_target(argv, environ) == target


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _dockerfile_healthcheck() -> list[str]:
    """The HEALTHCHECK's command from the Dockerfile, its ``python`` this interpreter."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    line = text.split("HEALTHCHECK", 1)[1].split("CMD", 1)[1].splitlines()[0]
    cmd = json.loads(line)
    assert cmd[0] == "python"
    return [sys.executable, *cmd[1:]]


def _health(pid: int) -> subprocess.CompletedProcess:
    return subprocess.run([*_dockerfile_healthcheck(), "--pid", str(pid)], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)


def test_the_images_health_check_is_healthy_while_serve_answers_and_not_after():
    port = _free_port()
    with ServerProcess(["--db", ":memory:", "--port", str(port)]) as server:
        done = _health(server.proc.pid)
        assert (done.returncode, done.stdout) == (0, f"healthy: 127.0.0.1:{port} answers /_sim/health\n")
        server.proc.send_signal(subprocess.signal.SIGSTOP)  # alive, but answering nothing
        try:
            hung = _health(server.proc.pid)
        finally:
            server.proc.send_signal(subprocess.signal.SIGCONT)
    assert hung.returncode == 1 and hung.stdout.startswith(
        f"unhealthy: http://127.0.0.1:{port}/_sim/health: "), hung.stdout


def test_the_images_health_check_is_healthy_in_a_container_running_contract():
    """`docker run clever-sim clever-sim contract …` serves nothing on 8080: healthy, not
    unhealthy after three probes."""
    args = ["clever-sim", "contract", "--config", "/cfg/partner.toml", "--sim-url", "http://127.0.0.1:8080"]
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *args])
    try:
        done = _health(sleeper.pid)
    finally:
        sleeper.kill()
        sleeper.wait(timeout=10)
    assert done.returncode == 0, done.stdout + done.stderr
    command = " ".join([sys.executable, "-c", "import time; time.sleep(60)", *args])
    assert done.stdout == f"healthy: nothing to check (process {sleeper.pid} runs no clever-sim server: {command})\n"


@pytest.mark.parametrize("args, message", [
    (["--pid"], "argument --pid: expected one argument"),
    (["--pid", "x"], "argument --pid: invalid int value: 'x'"),
    (["--port", "1"], "unrecognized arguments: --port 1"),
])
def test_a_bad_health_check_argument_is_one_usage_line_and_exit_2_not_a_traceback(args, message):
    done = subprocess.run([sys.executable, "-m", "simulator.healthcheck", *args], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().endswith(f"error: {message}"), done.stderr


def test_without_proc_a_port_that_is_not_a_number_is_nothing_to_probe(monkeypatch, capsys):
    from simulator import healthcheck

    monkeypatch.setattr(healthcheck, "_process", lambda pid: None)  # a system without /proc
    monkeypatch.setenv("CLEVER_SIM_PORT", "eighty")
    assert healthcheck.main([]) == 0
    assert capsys.readouterr().out == ("healthy: nothing to check (clever-sim serve: port 0 or not a "
                                       "number, nothing to probe)\n")
