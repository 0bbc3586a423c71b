"""Merge two `pip freeze` outputs into constraints.txt: the main Python's (the full `make test` install) and the
oldest Python's runtime install. Where the oldest needs another version, or a package the main one lacks, its pin
carries `python_version < "3.11"` and the main one's `python_version >= "3.11"`.

    python tools/merge_lock.py MAIN_FREEZE OLDEST_FREEZE > constraints.txt   (run by `make lock`)
"""

import sys

OLDEST, NEWER = 'python_version < "3.11"', 'python_version >= "3.11"'
HEADER = ("# The versions `make test` last passed with (written by `make lock`; see docs/install.md).\n"
          f"# Python 3.10 (Ubuntu 22.04, JetPack 6) has no wheels of some pins: its own pins carry {OLDEST}\n"
          "# (its runtime install, `pip install -e '.[openvino]' pytest onnx`, resolved on 3.10 and run with the runtime tests).")


def pins(path: str) -> dict[str, tuple[str, str]]:
    """Normalised name -> (name as frozen, version)."""
    found = {}
    for line in open(path):
        if "==" in line and not line.startswith("#"):
            name, version = line.strip().split("==", 1)
            found[name.lower().replace("_", "-")] = (name, version.removesuffix("+cpu"))
    return found


def merge(main: dict, oldest: dict) -> list[str]:
    lines = []
    for key, (name, version) in main.items():
        other = oldest.get(key)
        lines.append(f"{name}=={version}" if other is None or other[1] == version else f"{name}=={version}; {NEWER}")
        if other is not None and other[1] != version:
            lines.append(f"{name}=={other[1]}; {OLDEST}")
    lines += [f"{name}=={version}; {OLDEST}" for key, (name, version) in oldest.items() if key not in main]
    return sorted(lines, key=str.lower)


if __name__ == "__main__":
    print(HEADER)
    print("\n".join(merge(pins(sys.argv[1]), pins(sys.argv[2]))))
