"""CSV import parsing: columns mapped by option, bad files refused with the line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rtoc.app.cli_archive import read_csv
from rtoc.errors import ImportFileError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "in.csv"
    path.write_text(text)
    return path


def test_columns_are_mapped_and_renamed(tmp_path: Path) -> None:
    path = write(tmp_path, "t,a,b\n1.5,2,nan\n2.5,-3e2,4\n\n")
    t, ys = read_csv(path, "t", {"a": "Volt", "b": "b"})
    np.testing.assert_array_equal(t, [1.5, 2.5])
    np.testing.assert_array_equal(ys["Volt"], [2.0, -300.0])
    assert np.isnan(ys["b"][0]) and ys["b"][1] == 4.0


@pytest.mark.parametrize(("text", "where"), [
    ("t,a\n1,2\n2,x\n", r"in.csv:3: column 'a': 'x' is not a number"),
    ("t,a\n1,2\n2\n", r"in.csv:3: 1 fields, the header has 2"),
    ("time,a\n1,2\n", r"in.csv:1: no column 't' \(columns: time, a\)"),
    ("", "the file is empty"),
])
def test_bad_files_name_the_line(tmp_path: Path, text: str, where: str) -> None:
    with pytest.raises(ImportFileError, match=where):
        read_csv(write(tmp_path, text), "t", {"a": "a"})
