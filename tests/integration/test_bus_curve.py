"""The control plane and bus on tcp://: refused without CURVE keys, encrypted with them,
and a peer without the client key gets no answer."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
import zmq
from rtoc.pipeline.bus import DataBatch, Subscriber
from rtoc.pipeline.control import ControlClient
from rtoc.pipeline.curve import has_curve, new_keys

from rtoc.app.harness import Instance
from rtoc.config import BusConfig, load
from rtoc.errors import ControlTimeout
from rtoc.paths import endpoints

pytestmark = pytest.mark.skipif(not has_curve(), reason="this ZeroMQ has no CURVE")

DRIVER = '''
[[drivers]]
name = "Generator"
driver = "generator"
[drivers.params]
samplerate = 100.0
'''


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _bus(keys: dict[str, str] | None) -> str:
    control, data, inbox = _free_ports(3)
    text = (f'[bus]\ncontrol = "tcp://127.0.0.1:{control}"\ndata = "tcp://127.0.0.1:{data}"\n'
            f'inbox = "tcp://127.0.0.1:{inbox}"\n')
    return text + "".join(f'{k} = "{v}"\n' for k, v in (keys or {}).items())


class CurveInstance(Instance):
    """An instance whose endpoints and keys come from its rtoc.toml's [bus]."""

    def __init__(self, proc, name, folder, log_path):
        super().__init__(proc, name, folder, log_path)
        self.client.close()
        self.bus = load(folder / "rtoc.toml").bus
        self.endpoints = endpoints(name, self.bus.control, self.bus.data, self.bus.inbox)
        self.client = ControlClient(self.endpoints["control"], timeout=5.0, curve=self.bus)


def test_a_tcp_control_endpoint_without_keys_is_refused_at_start(tmp_path: Path) -> None:
    cfg = tmp_path / "rtoc.toml"
    cfg.write_text(f'instance = "tcurve-refused"\ndata_dir = "{tmp_path / "data"}"\n'
                   f'{_bus(None)}{DRIVER}')
    proc = subprocess.run([sys.executable, "-m", "rtoc", "--config", str(cfg), "run"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "bus.control" in proc.stderr and "curve_server_key" in proc.stderr
    assert "rtoc keys" in proc.stderr


def test_an_instance_on_tcp_with_keys_answers_only_key_holders() -> None:
    keys = new_keys()
    inst = CurveInstance.start(_bus(keys) + DRIVER, ("Generator.Sine",))
    try:
        status = inst.client.request("status")
        assert any(p["name"] == "engine" for p in status["processes"])
        with Subscriber(inst.endpoints["data"], ["Generator.Sine"], curve=inst.bus) as sub:
            msg = None
            for _ in range(50):
                msg = sub.recv(timeout=0.2)
                if isinstance(msg, DataBatch):
                    break
            assert isinstance(msg, DataBatch) and msg.name == "Generator.Sine"
        # no keys: the handshake never completes, nothing is answered
        with ControlClient(inst.endpoints["control"], timeout=1.0) as plain, \
                pytest.raises(ControlTimeout):
            plain.request("status")
        # the server's public key but another client key: ZAP refuses it
        public, secret = (k.decode() for k in zmq.curve_keypair())
        stranger = BusConfig(curve_server_key=keys["curve_server_key"],
                             curve_client_key=public, curve_client_secret=secret)
        with ControlClient(inst.endpoints["control"], timeout=1.0, curve=stranger) as other, \
                pytest.raises(ControlTimeout):
            other.request("status")
        for bus in (None, stranger):
            with Subscriber(inst.endpoints["data"], None, curve=bus) as sub:
                assert all(sub.recv(timeout=0.1) is None for _ in range(10))
        assert inst.client.request("status")["processes"]  # the key holder still gets in
        # the rtoc commands take the keys from the same rtoc.toml
        cfg = str(inst.folder / "rtoc.toml")
        for argv in (["status"], ["tail", "Generator.Sine", "-n", "1", "--duration", "20"],
                     ["events", "--history", "1", "--duration", "0.5"]):
            out = subprocess.run([sys.executable, "-m", "rtoc", "--config", cfg, *argv],
                                 capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, (argv, out.stderr)
            if argv[0] == "tail":
                assert "Generator.Sine" in out.stdout
    finally:
        inst.cleanup()
