"""RTOC's LoggerPlugin calls on rtoc's Driver (issue 16): the pieces a live instance test
does not pin down one by one."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rtoc.driver import DriverContext, LoggerPlugin, construct
from rtoc.params import ParamStore
from rtoc.testing import MemorySink


class Plug(LoggerPlugin):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.setDeviceName("Lab")
        self.level = 3
        self.name_ = "x"
        self._hidden = 1
        self.obj = object()


def _make(tmp_path: Path, cls=Plug, options: dict | None = None) -> Plug:
    ctx = DriverContext(name="Lab", sink=MemorySink(), options=options or {},
                        store=ParamStore(tmp_path / "params" / "Lab.json"))
    d = construct(cls, ctx)
    d.adopt_attributes()
    return d


def test_names_with_a_slash_are_kept_one_to_one_and_a_bad_value_fails_only_its_call(tmp_path: Path) -> None:
    d = _make(tmp_path)
    assert d.stream(1.0, "in/out") is True
    assert d.stream("not a number", "T") is False  # logged; the tick goes on
    assert d.stream(2.0, "T") is True
    d.flush()
    assert set(d._sink.signals) == {"Lab.in\u2215out", "Lab.T"}


def test_public_plain_attributes_are_parameters_and_persist(tmp_path: Path) -> None:
    d = _make(tmp_path, options={"level": 5})
    specs = d.instance_specs()
    assert "level" in specs and "name_" in specs and "_hidden" not in specs and "obj" not in specs
    assert d.level == 5  # the config's params name public attributes
    d2 = _make(tmp_path)
    d2.set_parameter("level", 7)
    assert _make(tmp_path).level == 7  # set remotely: restored over __init__'s 3


def test_persistent_variables_and_priorities(tmp_path: Path) -> None:
    d = _make(tmp_path)
    assert d.initPersistentVariable("gain", 2.0) == 2.0
    d.savePersistentVariable("gain", 4.5)
    d.createPersistentVariable("count", 0, docs="ticks")
    d.count = 3
    again = _make(tmp_path)
    assert again.loadPersistentVariable("gain") == 4.5 and again.initPersistentVariable("count", 0) == 3
    assert d.event("x", priority=7).priority == 2 and d.event("y", priority=-1).priority == 0
    assert d.getDir(__file__) == str(Path(__file__).resolve().parent)
    d.start()
    d.close()
    assert d.run is False


def test_a_plugin_folder_with_a_helper_module_imports(tmp_path: Path) -> None:
    """RTOC plugin folders import their helper modules by name (``import dht22``)."""
    import sys

    from rtoc import loader

    folder = tmp_path / "plugins" / "Sensors"
    folder.mkdir(parents=True)
    (folder / "sensorhelper.py").write_text("VALUE = 42\n")
    (folder / "Sensors.py").write_text("import sensorhelper\nfrom rtoc import LoggerPlugin\n"
                                       "class Plugin(LoggerPlugin):\n    value = sensorhelper.VALUE\n")
    before = list(sys.path)
    try:
        loader.use_plugins_dir(tmp_path / "plugins")
        assert loader.resolve("Sensors:Plugin").value == 42  # the folder's module, by its name
        assert sys.path.index(str(folder)) > sys.path.index(str(tmp_path / "plugins"))
    finally:
        sys.path[:] = before
        for name in ("sensorhelper", "Sensors", "Sensors.Sensors"):
            sys.modules.pop(name, None)


def test_telegram_sends_carry_the_picture_the_file_and_the_plot_data(tmp_path: Path) -> None:
    """RTOC's telegram_send_photo/_document/_plot sent a text naming the file, before."""
    d = _make(tmp_path)
    sink = d._sink
    pic = tmp_path / "cam.png"
    pic.write_bytes(b"\x89PNG picture")
    d.telegram_send_photo(str(pic), priority=1, permission="admin")
    d.telegram_send_document(str(pic))
    d.telegram_send_plot({"Temp": [[1.7e9, 1.7e9 + 1], [20.0, 21.0]]}, title="T", events=[[1.7e9, "on"]])
    d.telegram_send_message("hi", permission="blocked")  # RTOC's lowest level: every reader
    photo, doc, plot, text = sink.notes
    assert (photo.file, photo.file_kind, photo.file_name, photo.priority, photo.permission) == (
        b"\x89PNG picture", "photo", "cam.png", 1, "admin")
    assert doc.file_kind == "document" and doc.permission == "write"
    series = plot.plot["series"][0]
    assert series["name"] == "Temp" and np.frombuffer(series["y"]).tolist() == [20.0, 21.0]
    assert plot.plot["events"] == [[1.7e9, "on"]] and plot.file is None
    assert text.text == "Lab: hi" and text.permission == "read"
    d.telegram_send_photo(str(tmp_path / "missing.png"))  # a clear log line, no exception
    d.telegram_send_plot({"Temp": [[1, 2, 3], [1, 2]]})
    assert len(sink.notes) == 4


def test_review_telegram_files_are_read_at_most_to_the_limit_and_only_regular_files(tmp_path: Path) -> None:
    """Review: /dev/zero reports size 0 and was read until memory ran out; a file growing
    between the size check and the read let an EventError reach the plugin."""
    from rtoc.model import MAX_ATTACHMENT

    d = _make(tmp_path)
    d.telegram_send_photo("/dev/zero")
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(MAX_ATTACHMENT + 1)
    d.telegram_send_document(str(big))
    d.telegram_send_plot({f"S{i}": [[1.7e9, 1.7e9 + 1], [1.0, 2.0]] for i in range(40)})  # too many
    assert d._sink.notes == []
