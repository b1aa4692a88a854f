"""Write docs/synthetic_faces.png: the 7 basics and the 7 abaw7 compounds for a few identities.

Usage: PYTHONPATH=. python benchmarks/make_contact_sheet.py [--out docs/synthetic_faces.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from cer_hf.data.synthetic import contact_sheet
from cer_hf.taxonomy import BASIC_EXPRESSIONS, compound_set


def main() -> None:
    """Render one row of basics and one of compounds per identity and save the grid."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/synthetic_faces.png")
    parser.add_argument("--identities", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument("--image-size", type=int, default=112)
    args = parser.parse_args()

    basics = list(BASIC_EXPRESSIONS)
    compounds = [c.name for c in compound_set("abaw7")]
    sheets = [contact_sheet(labels, columns=7, image_size=args.image_size, seed=identity)
              for identity in args.identities for labels in (basics, compounds)]
    width = sheets[0].size[0]
    grid = Image.new("RGB", (width, sum(s.size[1] for s in sheets)), "white")
    y = 0
    for sheet in sheets:
        grid.paste(sheet, (0, y))
        y += sheet.size[1]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    grid.save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KB, {grid.size[0]}x{grid.size[1]})")


if __name__ == "__main__":
    main()
