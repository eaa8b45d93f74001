"""The Qt binding the viewer runs on keeps Python's reference counts (issue 15's bench found
PySide6 6.12.0 dropping a reference to None per call: the viewer aborted after seconds)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("PySide6")

PROBE = """
import os, sys
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from PySide6 import QtWidgets
app = QtWidgets.QApplication([])
w = QtWidgets.QWidget()
before = sys.getrefcount(None)
for _ in range(1000):
    w.setObjectName("x")
print(sys.getrefcount(None) - before)
"""


def test_qt_calls_do_not_drop_references_to_none() -> None:
    r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert abs(int(r.stdout.split()[-1])) < 50, f"None lost {r.stdout.strip()} references"
