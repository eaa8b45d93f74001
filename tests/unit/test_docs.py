"""The driver examples in README.md and docs/DRIVERS.md run as documented."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from rtoc.testing import run_driver

ROOT = Path(__file__).resolve().parents[2]


def _examples(doc: str) -> list[str]:
    text = (ROOT / doc).read_text()
    return [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if re.search(r"^class ", b, re.M)]


def _load(code: str, tmp_path: Path, name: str):
    path = tmp_path / f"{name}.py"
    path.write_text(code)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_readme_driver(tmp_path: Path) -> None:
    (code,) = _examples("README.md")
    thermo = _load(code, tmp_path, "readme_thermo").Thermo
    run = run_driver(thermo, ticks=10)
    t, y = run.signals["Thermo.T"]
    assert len(y) == 10 and (20 <= y).all() and (y <= 21).all()
    assert run.driver.call_function("calibrate", [25.0]) == pytest.approx(4.5)
    assert run.sink.signals["Thermo.T"].unit == "degC"


def test_drivers_md_examples(tmp_path: Path) -> None:
    pendulum_code, plugin_code = _examples("docs/DRIVERS.md")
    assert len(pendulum_code.strip().splitlines()) < 25 + 3  # "a driver in under 25 lines" (+imports)
    pendulum = _load(pendulum_code, tmp_path, "doc_pendulum").Pendulum
    run = run_driver(pendulum, ticks=200)
    t, y = run.signals["Pendulum.Angle"]
    assert len(y) == 200 and abs(y[0]) <= 0.5 and (abs(y) < 0.6).all()
    assert run.driver.call_function("push", [2.0]) > 1.0

    plugin = _load(plugin_code, tmp_path, "doc_plugin").Plugin
    run = run_driver(plugin, ticks=4)
    assert set(run.signals) == {"Template.A", "Template.B"}
    assert len(run.signals["Template.A"][0]) == 4
    assert run.sink.signals["Template.B"].unit == "A"
    assert "_update" not in plugin.function_table()  # private methods stay private


@pytest.mark.parametrize("doc", ["README.md", "docs/EVENTS.md", "docs/CONFIG.md", "docs/DRIVERS.md"])
def test_toml_examples_load(doc: str) -> None:
    """Every rtoc.toml example in the docs is a valid config (rules compile, steps check)."""
    from rtoc import config

    blocks = re.findall(r"```toml\n(.*?)```", (ROOT / doc).read_text(), re.S)
    assert blocks
    for block in blocks:
        cfg = config.loads(block, doc)
        if "[[events]]" in block:
            assert cfg.events and all(e.cond for e in cfg.events)
        if "[[actions]]" in block:
            assert cfg.actions


def test_drivers_md_toml_parameters() -> None:
    """The drivers of docs/DRIVERS.md's rtoc.toml examples exist and take those parameters."""
    from rtoc import config, loader

    blocks = re.findall(r"```toml\n(.*?)```", (ROOT / "docs/DRIVERS.md").read_text(), re.S)
    for block in blocks:
        for d in config.loads(block, "docs/DRIVERS.md").drivers:
            specs = loader.resolve(d.driver).parameter_specs()
            assert set(d.params) <= set(specs), sorted(set(d.params) - set(specs))
            for name, value in d.params.items():
                specs[name].validate(value)


def test_architecture_map_names_every_module() -> None:
    """docs/ARCHITECTURE.md's map has one line per module: none missing, none invented."""
    text = (ROOT / "docs/ARCHITECTURE.md").read_text()
    block = re.search(r"## Map\n.*?```\n(.*?)```", text, re.S).group(1)
    named = [ln.split()[0] for ln in block.splitlines() if ln.split() and ln.split()[0].endswith(".py")]
    undescribed = [ln for ln in block.splitlines() if ln.strip() and len(ln.split()) < 2]
    on_disk = sorted(str(p.relative_to(ROOT)) for top in ("rtoc", "pipeline", "drivers", "frontends")
                     for p in (ROOT / top).rglob("*.py") if "__pycache__" not in p.parts)
    assert len(named) == len(set(named)), "a module is named twice"
    assert not undescribed, f"map lines without a description: {undescribed}"
    assert sorted(set(on_disk) - set(named)) == [], "modules the map does not name"
    assert sorted(set(named) - set(on_disk)) == [], "the map names modules that do not exist"
