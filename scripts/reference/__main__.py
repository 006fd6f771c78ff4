"""Write the generated reference pages, or with ``--check`` say which are stale (exit 1)."""

from __future__ import annotations

import argparse
import sys

from scripts.reference.pages import PAGES, ROOT


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.reference", description=__doc__)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 naming each stale page")
    args = parser.parse_args()
    stale = []
    for name, render in PAGES.items():
        path = ROOT / "docs" / "reference" / name
        text = render()
        if path.exists() and path.read_text() == text:
            continue
        stale.append(path.relative_to(ROOT).as_posix())
        if not args.check:
            path.write_text(text)
    verb = "stale" if args.check else "written"
    for page in stale:
        print(f"{verb}: {page}", file=sys.stderr)
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
