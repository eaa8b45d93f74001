"""The live set of event rules and actions: rtoc.toml's, changed at runtime, persisted.

Changes made through the control plane (add, change, enable/disable, remove) are validated
and written atomically to a JSON file in the data folder, so they survive a restart. The
file also remembers each config rule as it was when the change was made: when rtoc.toml
later says something different about that rule, the config wins (an edited file is not
silently overridden), the same rule as for driver parameters.
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import Any

from rtoc.errors import RuleError, RuleNotFound
from rtoc.events.rules import ActionRule, EventRule
from rtoc.files import write_atomic

log = logging.getLogger(__name__)
KINDS = {"event": EventRule, "action": ActionRule}
# of each kind: a backstop on the file and the listing only; what event rules cost the
# engine is capped by their measured evaluation time ([engine] max_rule_load), not a count
MAX_RULES = 10_000
VERSION = 1


class RuleStore:
    """``events`` and ``actions`` in force, by name (insertion order kept)."""

    def __init__(self, path: Path | None, events: tuple[EventRule, ...] = (),
                 actions: tuple[ActionRule, ...] = ()):
        self.path = path
        self.rules: dict[str, dict[str, Any]] = {"event": {}, "action": {}}
        self.seen: dict[str, dict[str, dict]] = {"event": {}, "action": {}}
        self.removed: dict[str, set[str]] = {"event": set(), "action": set()}
        saved = self._read()
        for kind, config_rules in (("event", events), ("action", actions)):
            self._merge(kind, {r.name: r for r in config_rules}, saved.get(kind, {}))
        if path is not None and saved:
            self._save()

    @property
    def events(self) -> list[EventRule]:
        return list(self.rules["event"].values())

    @property
    def actions(self) -> list[ActionRule]:
        return list(self.rules["action"].values())

    def listing(self) -> dict:
        return {"events": [r.to_dict() for r in self.events],
                "actions": [r.to_dict() for r in self.actions]}

    def put(self, kind: str, raw: Any) -> EventRule | ActionRule:
        """Add or replace (by name) a rule given as a dict; validated first."""
        rule = _cls(kind).from_dict(raw)
        if rule.name not in self.rules[kind] and len(self.rules[kind]) >= MAX_RULES:
            raise RuleError(f"at most {MAX_RULES} {kind} rules", "name")
        with self._change():
            self.rules[kind][rule.name] = rule
            self.removed[kind].discard(rule.name)
        return rule

    def enable(self, kind: str, name: str, active: bool) -> EventRule | ActionRule:
        rule = self._get(kind, name)
        if not isinstance(active, bool):
            raise RuleError(f"must be true or false, got {active!r}", "active")
        rule = type(rule).from_dict({**rule.to_dict(), "active": active})
        with self._change():
            self.rules[kind][name] = rule
        return rule

    def remove(self, kind: str, name: str) -> None:
        self._get(kind, name)
        with self._change():
            del self.rules[kind][name]
            self.removed[kind].add(name)

    @contextlib.contextmanager
    def _change(self):
        """Apply a change and save it; if it cannot be saved, nothing changed."""
        before = ({k: dict(v) for k, v in self.rules.items()}, {k: set(v) for k, v in self.removed.items()})
        yield
        try:
            self._save()
        except (OSError, TypeError, ValueError) as exc:
            self.rules, self.removed = before
            raise RuleError(f"the rules could not be saved ({exc}); nothing changed") from None

    def _get(self, kind: str, name: str) -> EventRule | ActionRule:
        rule = self.rules[_kind(kind)].get(name)
        if rule is None:
            known = ", ".join(self.rules[kind]) or "none"
            raise RuleNotFound(f"no {kind} named {name!r} (known: {known})", "name")
        return rule

    # -- persistence ------------------------------------------------------------------
    def _merge(self, kind: str, config: dict, saved: dict) -> None:
        cls = KINDS[kind]
        saved = saved if isinstance(saved, dict) else {}
        seen = _typed(saved.get("seen"), dict)
        stored = _typed(saved.get("rules"), dict)
        removed = {n for n in _typed(saved.get("removed"), list) if isinstance(n, str)}
        for name, rule in config.items():
            if self._load_one(cls, seen.get(name), None) != rule:  # new, or rtoc.toml changed it
                self.rules[kind][name] = rule
            elif name in removed:
                self.removed[kind].add(name)
            else:
                self.rules[kind][name] = self._load_one(cls, stored.get(name), rule)
            self.seen[kind][name] = rule.to_dict()
        for name, raw in stored.items():
            if name not in config and name not in seen:  # added at runtime
                loaded = self._load_one(cls, raw, None)
                if loaded is not None:
                    self.rules[kind][loaded.name] = loaded

    def _load_one(self, cls: type, raw: Any, fallback):
        if raw is None:
            return fallback
        try:
            return cls.from_dict(raw)
        except (RuleError, TypeError) as exc:
            log.warning("ignored a stored rule that is no longer valid (%s): %s", raw, exc)
            return fallback

    def _read(self) -> dict:
        if self.path is None or not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            log.warning("ignored a damaged rules file %s: %s", self.path, exc)
            return {}
        return data if isinstance(data, dict) and data.get("version") == VERSION else {}

    def _save(self) -> None:
        if self.path is None:
            return
        data: dict[str, Any] = {"version": VERSION}
        for kind in KINDS:
            data[kind] = {"rules": {n: r.to_dict() for n, r in self.rules[kind].items()},
                          "seen": self.seen[kind], "removed": sorted(self.removed[kind])}
        write_atomic(self.path, json.dumps(data, indent=1))


def _typed(value: Any, kind: type) -> Any:
    return value if isinstance(value, kind) else kind()


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise RuleError(f"must be 'event' or 'action', got {kind!r}", "kind")
    return kind


def _cls(kind: str) -> type:
    return KINDS[_kind(kind)]
