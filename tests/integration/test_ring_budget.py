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
