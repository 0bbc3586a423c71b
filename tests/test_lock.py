"""constraints.txt covers every Python pyproject allows: tools/merge_lock.py's markers, and the committed lock."""

import re
import sys

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "tools"))
from merge_lock import NEWER, OLDEST, merge  # noqa: E402


def test_merge_splits_only_the_pins_the_oldest_python_needs_otherwise():
    main = {"numpy": ("numpy", "2.4.6"), "rich": ("rich", "15.0.0")}
    oldest = {"numpy": ("numpy", "2.2.6"), "rich": ("rich", "15.0.0"), "tomli": ("tomli", "2.5.0")}
    assert merge(main, oldest) == [f"numpy==2.2.6; {OLDEST}", f"numpy==2.4.6; {NEWER}", "rich==15.0.0",
                                   f"tomli==2.5.0; {OLDEST}"]


def test_the_lock_pins_each_package_once_per_python():
    pins = [line for line in (REPO / "constraints.txt").read_text().splitlines() if line and not line.startswith("#")]
    for python in ("3.10", "3.11", "3.13"):
        names = []
        for pin in pins:
            name, _, marker = re.match(r"([\w.-]+)==([^;]+)(?:; (.*))?$", pin).groups()
            if marker is None or (marker == OLDEST) == (python == "3.10"):
                names.append(name.lower().replace("_", "-"))
        assert len(names) == len(set(names)), python
    assert any(pin.startswith("onnxruntime==") and pin.endswith(OLDEST) for pin in pins)
