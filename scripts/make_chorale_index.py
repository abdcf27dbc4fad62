"""Rebuild vocals2song/chorale_index.json from music21's corpus (after a music21 upgrade changes it).

The index lists the four-part Bach chorales and their soprano intervals, which decide the tune groups and
so the splits of `vocals2song chorales`; shipping it spares every run parsing 410 scores.

    python scripts/make_chorale_index.py
"""

from __future__ import annotations

import argparse
import json

from vocals2song.chorales import INDEX, build_index


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)  # --help: nothing rewritten
    index = build_index()
    INDEX.write_text(json.dumps(index, indent=1) + "\n")
    print(f"{INDEX}: {len(index['chorales'])} four-part chorales (music21 {index['music21']})")


if __name__ == "__main__":
    main()
