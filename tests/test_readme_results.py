"""Every number in the README's results tables comes from a committed file in results/."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def results_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## Results")
    nxt = text.find("\n## ", start + 1)
    return text[start: nxt if nxt > 0 else len(text)]


def test_every_table_number_is_in_a_results_file():
    committed = "\n".join(p.read_text() for p in (ROOT / "results").rglob("*.md"))
    rows = [line for line in results_section().splitlines() if line.startswith("|") and not line.startswith("|---")]
    checked = 0
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")][1:]  # the first cell names the row
        for cell in cells:
            for number in NUMBER.findall(cell):
                if number.startswith("-"):
                    assert number in committed or number[1:] in committed, f"{number} (README row {row!r})"
                else:
                    assert number in committed, f"{number} (README row {row!r}) is in no results/*.md"
                checked += 1
    assert checked > 30  # the tables are there and were read
