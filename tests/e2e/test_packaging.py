"""Building our own package, as ``make run`` does on a fresh machine, says nothing alarming.

setuptools announces removals with warnings long before they break a build (the license
table stops working on 2027-02-18); this test turns such a warning into a failure today.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WARNING = re.compile(r"[A-Za-z]*(Deprecation|BuildBackend|Setuptools)[A-Za-z]*Warning|deprecated",
                     re.IGNORECASE)


def test_building_the_package_prints_no_warning(tmp_path: Path) -> None:
    """A wheel built in pip's isolated build environment (today's setuptools, as on a
    fresh machine) from the project's pyproject.toml: no deprecation or packaging warning."""
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir",
                        "--disable-pip-version-check", "-v", "-w", str(tmp_path), str(ROOT)],
                       capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    found = [ln.strip() for ln in out.splitlines() if WARNING.search(ln)]
    assert not found, "\n".join(found)
    assert list(tmp_path.glob("rtoc-*.whl"))
