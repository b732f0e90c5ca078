"""``meterhub simulate-fleet --netns``: simulated gateways in their own network namespaces reach the broker
through the broker namespace's address; central stores what they sent; every namespace is gone after
the run (also after SIGTERM). Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN) and iproute2; skipped otherwise."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from meterhub.central import netns
from meterhub.central.simulate import FleetSpec, run_fleet
from meterhub.errors import InputError

from .conftest import Broker, count, wait_until


def _netns_skip() -> str | None:
    why = netns.usable()
    if why:
        return why
    probe = f"mhprobe{os.getpid()}"
    res = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if res.returncode != 0:
        return f"ip netns add fails here: {res.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


needs_netns = pytest.mark.skipif(bool(_netns_skip()), reason=f"no network namespaces: {_netns_skip()}")


def _ours() -> list[str]:
    return [n for n in netns.list_namespaces() if n.startswith("mhsim")]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}


def _central(broker: Broker, dsn: str, data: Path) -> subprocess.Popen[bytes]:
    log = (data / "central.out").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "meterhub", "central", "--mqtt", broker.url, "--dsn", dsn, "--port", "0"]
        + ["--data", str(data), "--worker-id", "netns-w1"],
        env=_env(),
        stdout=log,
        stderr=log,
    )


@needs_netns
@pytest.mark.postgres
@pytest.mark.slow
def test_twenty_sites_in_two_namespaces_are_stored_and_the_namespaces_are_gone(
    broker: Broker, dsn: str, tmp_path: Path
) -> None:
    before = _ours()
    data = tmp_path / "central"
    data.mkdir()
    central = _central(broker, dsn, data)
    try:
        assert wait_until(lambda: count(dsn, "SELECT count(*) FROM fleet_meta") == 1, 20)
        time.sleep(0.5)  # subscribed
        res = subprocess.run(
            [sys.executable, "-m", "meterhub", "simulate-fleet", "--sites", "20", "--mqtt", broker.url]
            + ["--series", "10", "--circuits", "2", "--interval", "1", "--count", "3", "--processes", "2"]
            + ["--netns", "--prefix", "ns-"],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert res.returncode == 0, res.stderr
        sent = json.loads(res.stdout.strip().splitlines()[-1])
        assert sent["messages"] == 20 * 2 * 3
        assert sent["netns"]["broker"].endswith(" mqtt://198.18.0.1:1883")
        assert [g.split()[1] for g in sent["netns"]["gateways"]] == ["198.18.0.10", "198.18.0.11"]
        assert wait_until(lambda: count(dsn, "SELECT count(*) FROM fleet_messages") == 120, 30)
        assert count(dsn, "SELECT count(*) FROM fleet_points") == 120 * 5 == sent["points"]
        assert count(dsn, "SELECT count(DISTINCT site) FROM fleet_messages") == 20
    finally:
        central.send_signal(signal.SIGTERM)
        central.wait(15)
    assert _ours() == before  # every namespace made by the run is gone


@needs_netns
def test_sigterm_deletes_the_namespaces(broker: Broker) -> None:
    sim = subprocess.Popen(
        [sys.executable, "-m", "meterhub", "simulate-fleet", "--sites", "4", "--mqtt", broker.url]
        + ["--series", "2", "--circuits", "1", "--interval", "1", "--netns"],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    tag = f"mhsim{sim.pid}"
    assert wait_until(lambda: f"{tag}-g1" in netns.list_namespaces(), 30)
    time.sleep(3)  # some intervals sent
    sim.send_signal(signal.SIGTERM)
    out, err = sim.communicate(timeout=60)
    assert sim.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["messages"] > 0
    assert [n for n in netns.list_namespaces() if n.startswith(tag)] == []


def test_netns_refused_clearly_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(InputError, match=r"--netns: network namespaces need root"):
        run_fleet(FleetSpec(broker="mqtt://127.0.0.1:1", sites=1, count=1, netns=True))
    assert netns.usable() is not None


def test_netns_refused_clearly_without_ip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(netns.shutil, "which", lambda _name: None)
    assert (
        netns.usable() == "the 'ip' command (iproute2) is missing: install iproute2, or run without --netns"
    )
