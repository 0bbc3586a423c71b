"""What the benchmark scripts share: where results go, how they are written, and the shared video's shots.

Scripts import it as `common` (run as `python benchmarks/NAME.py`, their folder is on the path).
"""

import json
from pathlib import Path

from faceparse_edge.fileio import write_text_atomic
from faceparse_edge.sysinfo import cpu_class

RESULTS = Path(__file__).resolve().parent / "results"
MACHINE_RESULTS = RESULTS / cpu_class()  # results that depend on the CPU: one folder per CPU kind (avx2, vnni, amx)
SHOTS = ((0, 20), (20, 82), (82, 211), (211, 275))  # the shared video's cuts (runtime/motion.is_cut finds them)


def save(stem: Path, markdown: str, payload) -> None:
    """Print the markdown, and write it to <stem>.md and `payload` to <stem>.json, each atomically."""
    markdown = markdown.rstrip("\n") + "\n"
    print(markdown)
    write_text_atomic(Path(f"{stem}.md"), markdown)
    write_text_atomic(Path(f"{stem}.json"), json.dumps(payload, indent=2) + "\n")
