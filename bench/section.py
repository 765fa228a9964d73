"""Replaces one benchmark's section of a Markdown file, read from stdin, between
`<!-- bench:NAME -->` and `<!-- /bench:NAME -->` markers (appended when absent), so that each
benchmark script rewrites only its own figures.

    python3 bench/section.py NAME FILE < section.md
"""
import os
import re
import sys


def main():
    name, path = sys.argv[1:3]
    body = sys.stdin.read().strip("\n")
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{body}\n{end}"
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip("\n") + "\n\n" + block
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text.rstrip("\n") + "\n")
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
