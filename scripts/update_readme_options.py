"""Rewrite the README's option table from the specification (`swapforward options`); the tests check they agree."""

from pathlib import Path

from swapforward.options import markdown_table

readme = Path(__file__).parents[1] / "README.md"
lines = readme.read_text().splitlines()
start = next(i for i, line in enumerate(lines) if line.startswith("| API argument |"))
end = next(i for i in range(start, len(lines)) if not lines[i].startswith("|"))
readme.write_text("\n".join(lines[:start] + markdown_table().splitlines() + lines[end:]) + "\n")
