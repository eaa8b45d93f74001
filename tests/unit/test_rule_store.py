"""Unit tests of rtoc.events.store: runtime rule changes over rtoc.toml's, persisted."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rtoc.errors import RuleError, RuleNotFound
from rtoc.events.rules import ActionRule, EventRule
from rtoc.events.store import RuleStore


def ev(name: str, cond: str = "A.x > 1", **kw: object) -> EventRule:
    return EventRule.from_dict({"name": name, "cond": cond, **kw})


def act(name: str, listen: str = "hot", text: str = "hi", **kw: object) -> ActionRule:
    return ActionRule.from_dict({"name": name, "listen": [listen], "steps": [{"notify": text}], **kw})


CONFIG_EVENTS = (ev("hot", "T.t > 30"), ev("cold", "T.t < 0"))
CONFIG_ACTIONS = (act("tell"),)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "rules.json"


def store(path: Path | None, events: tuple = CONFIG_EVENTS, actions: tuple = CONFIG_ACTIONS) -> RuleStore:
    return RuleStore(path, events, actions)


def names(s: RuleStore) -> tuple[list[str], list[str]]:
    return [r.name for r in s.events], [r.name for r in s.actions]


def test_config_rules_in_force_without_a_file(path: Path) -> None:
    s = store(path)
    assert s.events == list(CONFIG_EVENTS)
    assert s.actions == list(CONFIG_ACTIONS)
    assert s.listing() == {"events": [r.to_dict() for r in CONFIG_EVENTS],
                           "actions": [r.to_dict() for r in CONFIG_ACTIONS]}


def test_changes_persist_across_a_restart(path: Path) -> None:
    s = store(path)
    added = s.put("event", {"name": "new", "cond": "B.y >= 2", "trigger": "both"})
    assert added == ev("new", "B.y >= 2", trigger="both")
    s.put("event", {"name": "hot", "cond": "T.t > 40"})          # change a config rule
    off = s.enable("event", "cold", False)
    assert off == ev("cold", "T.t < 0", active=False)
    s.put("action", {"name": "page", "listen": "new", "steps": [{"call": "Pager.send", "args": ["{value}"]}]})
    s.enable("action", "tell", False)
    expected = s.listing()
    assert [r["name"] for r in expected["events"]] == ["hot", "cold", "new"]
    assert json.loads(path.read_text())["version"] == 1

    again = store(path)
    assert again.listing() == expected
    assert again.events[0].cond == "T.t > 40"
    assert again.events[1].active is False
    assert again.actions[0].active is False
    assert again.actions[1].steps[0].args == ("{value}",)
    assert store(path).listing() == expected  # and a second restart changes nothing


def test_put_replaces_by_name_and_enable_keeps_the_rest(path: Path) -> None:
    s = store(path)
    s.put("event", {"name": "hot", "cond": "T.t > 50", "hold": 2.0, "text": "{value}"})
    s.enable("event", "hot", False)
    s.enable("event", "hot", True)
    assert s.events[0] == ev("hot", "T.t > 50", hold=2.0, text="{value}")
    assert names(s) == (["hot", "cold"], ["tell"])


def test_removing_a_config_rule_survives_restarts(path: Path) -> None:
    s = store(path)
    s.remove("event", "hot")
    s.remove("action", "tell")
    assert names(s) == (["cold"], [])
    for _ in range(2):
        assert names(store(path)) == (["cold"], [])


def test_a_removed_rule_put_again_is_back(path: Path) -> None:
    s = store(path)
    s.remove("event", "hot")
    s.put("event", {"name": "hot", "cond": "T.t > 31"})
    assert {r.name: r.cond for r in s.events} == {"cold": "T.t < 0", "hot": "T.t > 31"}
    # (after a restart the config's order comes back: the order is not persisted)
    assert {r.name: r.cond for r in store(path).events} == {"cold": "T.t < 0", "hot": "T.t > 31"}


def test_runtime_added_rules_survive_and_can_be_removed(path: Path) -> None:
    s = store(path)
    s.put("event", {"name": "extra", "cond": "C.z != 0"})
    s.put("action", {"name": "extra-act", "listen": ["extra"], "steps": [{"set": "D.p", "value": 1}]})
    again = store(path)
    assert names(again) == (["hot", "cold", "extra"], ["tell", "extra-act"])
    again.remove("event", "extra")
    again.remove("action", "extra-act")
    assert names(store(path)) == (["hot", "cold"], ["tell"])


def test_runtime_rules_survive_a_start_with_an_empty_config(path: Path) -> None:
    s = store(path, (), ())
    s.put("event", {"name": "solo", "cond": "A.x > 0"})
    assert names(store(path, (), ())) == (["solo"], [])


def test_config_wins_when_rtoc_toml_changed_the_rule(path: Path) -> None:
    s = store(path)
    s.put("event", {"name": "hot", "cond": "T.t > 40"})
    s.put("action", {"name": "tell", "listen": ["hot"], "steps": [{"notify": "runtime"}]})
    edited_events = (ev("hot", "T.t > 35"), CONFIG_EVENTS[1])
    edited_actions = (act("tell", text="edited"),)
    again = store(path, edited_events, edited_actions)
    assert again.events[0].cond == "T.t > 35"
    assert again.actions[0].steps[0].notify == "edited"
    # the runtime version does not come back later either
    assert store(path, edited_events, edited_actions).events[0].cond == "T.t > 35"
    # a new runtime change of the edited rule sticks again
    again.put("event", {"name": "hot", "cond": "T.t > 45"})
    assert store(path, edited_events, edited_actions).events[0].cond == "T.t > 45"


def test_config_wins_over_a_runtime_removal_when_it_changed_the_rule(path: Path) -> None:
    store(path).remove("event", "hot")
    assert names(store(path))[0] == ["cold"]
    edited = (ev("hot", "T.t > 35"), CONFIG_EVENTS[1])
    assert [r.cond for r in store(path, edited).events] == ["T.t > 35", "T.t < 0"]


def test_config_wins_over_a_runtime_disable_when_it_changed_the_rule(path: Path) -> None:
    store(path).enable("event", "hot", False)
    assert store(path).events[0].active is False
    edited = (ev("hot", "T.t > 30", priority=1), CONFIG_EVENTS[1])
    assert store(path, edited).events[0] == edited[0]


def test_a_rule_deleted_from_the_config_disappears_even_if_changed(path: Path) -> None:
    s = store(path)
    s.put("event", {"name": "cold", "cond": "T.t < -5"})
    s.enable("action", "tell", False)
    again = store(path, CONFIG_EVENTS[:1], ())
    assert names(again) == (["hot"], [])
    assert names(store(path, CONFIG_EVENTS[:1], ())) == (["hot"], [])


@pytest.mark.parametrize("content", [
    b"garbage{", b"", b"\xff\xfe\x00", b"[1, 2]", b"null", b'"text"',
    b'{"event": {"rules": {"hot": {"name": "hot", "cond": "T.t > 99"}}}}',  # no version
])
def test_a_damaged_file_is_ignored(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    s = store(path)
    assert s.events == list(CONFIG_EVENTS) and s.actions == list(CONFIG_ACTIONS)
    s.put("event", {"name": "new", "cond": "A.x > 0"})  # the store works and rewrites the file
    assert names(store(path)) == (["hot", "cold", "new"], ["tell"])


def _saved_with(path: Path, change) -> dict:
    """A valid file where 'hot' was changed at runtime, then edited by ``change``."""
    s = store(path)
    s.put("event", {"name": "hot", "cond": "T.t > 40"})
    s.put("event", {"name": "extra", "cond": "A.x > 0"})
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return data


def test_a_file_of_another_version_is_ignored(path: Path) -> None:
    _saved_with(path, lambda d: d.update(version=2))
    assert store(path).events == list(CONFIG_EVENTS)


def test_invalid_stored_rules_are_ignored(path: Path) -> None:
    def damage(d: dict) -> None:
        d["event"]["rules"]["hot"]["cond"] = "T.t >"
        d["event"]["rules"]["extra"] = {"name": "extra", "cond": "import os"}
        d["action"]["rules"]["tell"] = "not a table"
    _saved_with(path, damage)
    s = store(path)
    assert s.events == list(CONFIG_EVENTS)   # the config's 'hot', no 'extra'
    assert s.actions == list(CONFIG_ACTIONS)


_STRUCTURE_DAMAGE = {
    "rules is a list": lambda d: d["event"].update(rules=[]),
    "rules is null": lambda d: d["event"].update(rules=None),
    "seen is a list": lambda d: d["event"].update(seen=[]),
    "removed is a number": lambda d: d["event"].update(removed=5),
}


@pytest.mark.parametrize("damage", list(_STRUCTURE_DAMAGE.values()), ids=list(_STRUCTURE_DAMAGE))
def test_a_file_of_the_wrong_shape_is_ignored(path: Path, damage) -> None:
    _saved_with(path, damage)
    assert [r.name for r in store(path).events][:2] == ["hot", "cold"]


def test_a_refused_change_leaves_store_and_file_unchanged(path: Path) -> None:
    s = store(path)
    s.put("event", {"name": "new", "cond": "A.x > 0"})
    before, content = s.listing(), path.read_bytes()
    with pytest.raises(RuleError) as info:
        s.put("event", {"name": "hot", "cond": "T.t >"})
    assert info.value.key == "cond"
    with pytest.raises(RuleError) as info:
        s.put("event", {"name": "brand-new", "cond": "open('x')"})
    assert info.value.key == "cond"
    with pytest.raises(RuleError) as info:
        s.put("action", {"name": "tell", "listen": [], "steps": [{"notify": "x"}]})
    assert info.value.key == "listen"
    with pytest.raises(RuleError) as info:
        s.enable("event", "hot", "yes")  # type: ignore[arg-type]
    assert info.value.key == "active"
    assert s.listing() == before
    assert path.read_bytes() == content
    assert store(path).listing() == before


def test_the_file_is_replaced_atomically(path: Path) -> None:
    s = store(path)
    s.put("event", {"name": "a", "cond": "A.x > 0"})
    inode = path.stat().st_ino
    s.put("event", {"name": "b", "cond": "A.x > 0"})
    s.enable("event", "a", False)
    s.remove("event", "b")
    assert path.stat().st_ino != inode  # renamed over, not rewritten in place
    assert os.listdir(path.parent) == ["rules.json"]
    json.loads(path.read_text())


def test_without_a_path_nothing_is_written(tmp_path: Path) -> None:
    s = store(None)
    s.put("event", {"name": "a", "cond": "A.x > 0"})
    s.remove("event", "hot")
    assert names(s) == (["cold", "a"], ["tell"])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["event", "action"])
def test_unknown_names_raise_rule_not_found(path: Path, kind: str) -> None:
    s = store(path)
    for call in (lambda: s.enable(kind, "nope", True), lambda: s.remove(kind, "nope")):
        with pytest.raises(RuleNotFound) as info:
            call()
        assert isinstance(info.value, LookupError) and isinstance(info.value, RuleError)
        assert info.value.key == "name"
        assert "nope" in str(info.value)
    assert not path.exists()


@pytest.mark.parametrize("kind", ["events", "rule", "", None])
def test_other_kinds_are_refused(path: Path, kind: object) -> None:
    s = store(path)
    for call in (lambda: s.put(kind, {"name": "a", "cond": "A.x > 0"}),  # type: ignore[arg-type]
                 lambda: s.enable(kind, "hot", False),                   # type: ignore[arg-type]
                 lambda: s.remove(kind, "hot")):                         # type: ignore[arg-type]
        with pytest.raises(RuleError) as info:
            call()
        assert not isinstance(info.value, RuleNotFound)
        assert info.value.key == "kind"
    assert names(s) == (["hot", "cold"], ["tell"])
    assert not path.exists()


def test_the_count_of_rules_is_only_a_backstop() -> None:
    """What event rules may cost is the engine's measured load (tests/unit/test_reactions_budget.py),
    not a count of 1000: cheap rules beyond it are accepted, up to the backstop."""
    store = RuleStore(None)
    for i in range(1500):
        store.put("event", {"name": f"r{i}", "cond": "A.x > 1"})
    assert len(store.events) == 1500
    store.rules["event"].update({f"x{i}": store.rules["event"]["r0"] for i in range(10_000 - 1500)})
    with pytest.raises(RuleError, match="at most 10000 event rules"):
        store.put("event", {"name": "one-more", "cond": "A.x > 1"})
