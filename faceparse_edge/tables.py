"""Markdown tables for result files: the `benchmark` command and the scripts in benchmarks/."""


def markdown_table(columns, rows) -> str:
    """A markdown table: `columns` are the header cells, each row a sequence of cells (None: empty)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join("" if cell is None else str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
