"""The rings' budget in /dev/shm: clients asking for huge rings are refused past their share,
and a driver can still make a new signal."""

from __future__ import annotations

import pytest

from rtoc.app.harness import Instance
from rtoc.errors import ShmBudgetExceeded

CONFIG = '''
[supervisor]
shm_budget = 104857600         # 100 MiB
shm_clients_share = 0.5        # 50 MiB for clients together
shm_per_client = 41943040      # 40 MiB each
max_client_rate = 100000.0
max_client_seconds = 10.0      # a ring of 1 Mi samples (16 MiB) at most
[[drivers]]
name = "G"
driver = "generator"
'''


def test_huge_rate_hints_are_refused_past_the_budget_and_drivers_still_get_rings() -> None:
    with Instance.start(CONFIG, ready_signals=("G.Sine",)) as inst:
        c = inst.client
        made, refused = [], []
        for owner in ("x", "y"):
            for i in range(8):
                try:
                    made.append(c.request("create_signal", device=f"Push{owner}", signal=f"S{i}",
                                          owner=owner, rate=1e12, seconds=1e6))
                except ShmBudgetExceeded as exc:
                    refused.append(str(exc))
        assert [m["capacity"] for m in made] == [1 << 20] * 3  # capped hints: 16 MiB rings
        assert len(refused) == 13
        assert "shm_per_client" in refused[0] and "shm_clients_share" in refused[-1]
        assert "budget" in inst.log()  # each refusal is logged (and a meta message on the bus)
        assert inst.client.request("set", driver="G", param="signal", value="Fresh")["value"] == "Fresh"
        inst.wait_for(lambda: any(s["name"] == "G.Fresh" for s in c.request("signals")["signals"]))
        procs = {p["name"]: p for p in c.request("status")["processes"]}
        assert procs["G"]["restarts"] == 0 and procs["G"]["state"] == "running"
        with pytest.raises(ShmBudgetExceeded):  # still refused: nothing was given back
            c.request("create_signal", device="Pushz", signal="S", owner="z", rate=1e12)


def test_each_websocket_client_has_a_budget_of_its_own() -> None:
    """Every ring a websocket client pushes is owned by the websocket process; they were all
    charged to that one owner, so one client could take the share of all the others. Now
    each is charged to its user (or address): one user past ``shm_per_client`` is refused
    while another still gets rings."""
    import numpy as np
    from rtoc.frontends.websocket.auth import hash_password

    from rtoc.client import Client
    from rtoc.errors import RtocError

    users = "".join(f'''
[[websocket.users]]
name = "{n}"
role = "write"
password_hash = "{hash_password("pw-" + n, n=16, r=1, p=1)}"
''' for n in ("alice", "bob"))
    config = CONFIG.replace("shm_clients_share = 0.5", "shm_clients_share = 0.9") + \
        '[websocket]\nport = 0\nanonymous = "none"\n' + users
    with Instance.start(config, ready_signals=("G.Sine",)) as inst:
        url = inst.ws_url()
        t, y = np.arange(10.0) + 1e9, np.zeros(10)

        def push_all(user: str) -> tuple[int, list[str]]:
            made, refused = 0, []
            with Client(url, user=user, password="pw-" + user) as c:
                for i in range(4):
                    try:
                        c.push(f"{user}.S{i}", t, y, rate=1e6)  # a 16 MiB ring each (capped)
                        c.sync()
                        made += 1
                    except RtocError as exc:
                        refused.append(str(exc))
            return made, refused

        alice = push_all("alice")
        bob = push_all("bob")
        assert alice[0] == 2 and "shm_per_client" in alice[1][0], alice  # 40 MiB: two 16 MiB rings
        assert bob[0] == 2 and "shm_per_client" in bob[1][0], bob        # not refused for alice's
