"""Replaces one section of BENCHMARKS.md (between its BEGIN/END markers) with a file's text,
so each benchmark script updates its own figures and leaves the others alone."""
import pathlib
import sys

name, source = sys.argv[1], pathlib.Path(sys.argv[2])
target = pathlib.Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
text = target.read_text() if target.exists() else "# Benchmarks\n"
block = f"{begin}\n{source.read_text().strip()}\n{end}"
if begin in text and end in text:
    head, rest = text.split(begin, 1)
    text = head + block + rest.split(end, 1)[1]
else:
    text = text.rstrip() + "\n\n" + block + "\n"
target.write_text(text)
