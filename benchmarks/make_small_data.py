"""Write a small, subtle compound-expression benchmark as image folders (realistic synthetic faces).

Layout (folder names are labels `cer_hf.taxonomy.parse_label` accepts):

    OUT/basic/train/<Basic>/*.png          6 basics + Neutral, --n-basic each (500)
    OUT/compound/train/<Compound>/*.png    the 7 ABAW7 compounds, --n-compound-train each (60)
    OUT/compound/test/<Compound>/*.png     the 7 ABAW7 compounds, --n-compound-test each (200)
    OUT/meta.json                          the arguments and the identity range of each split

The three splits show disjoint people (identity pools of `cer_hf.data.synthetic`), so
the test set is subject-independent. Different --seed values give different draws of
everything, people included.

Usage:
    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/make_small_data.py --out data/smalldata_s0 --seed 0
    # only the figure: three test-pool people, 7 basics and 7 compounds each, shown 2x
    PYTHONPATH=. python benchmarks/make_small_data.py --contact-sheet docs/synthetic_faces_realistic.png
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from pathlib import Path

from PIL import Image

from cer_hf.data.synthetic import contact_sheet, synthetic_sample
from cer_hf.taxonomy import BASIC_EXPRESSIONS, compound_set, parse_label

# Index blocks of the splits: far apart, and multiples of 7 so each split starts a
# balanced label block (every class gets exactly its count).
_SPLIT_OFFSET = 7 * 10**6


def folder_name(label: str) -> str:
    """The folder of a label: its canonical name with '_' for spaces ("Happily_Surprised")."""
    name = label.replace(" ", "_")
    assert parse_label(name) == label, name
    return name


def split_plan(n_basic: int, n_compound_train: int, n_compound_test: int,
               identities: tuple[int, int, int]) -> list[dict]:
    """The three splits: folder, labels, per-class count, index offset and identity range."""
    basics = list(BASIC_EXPRESSIONS)
    compounds = [c.name for c in compound_set("abaw7")]
    n_b, n_ct, n_cs = identities
    return [
        {"split": "basic/train", "labels": basics, "per_class": n_basic,
         "offset": 0, "identities": (0, n_b)},
        {"split": "compound/train", "labels": compounds, "per_class": n_compound_train,
         "offset": _SPLIT_OFFSET, "identities": (n_b, n_b + n_ct)},
        {"split": "compound/test", "labels": compounds, "per_class": n_compound_test,
         "offset": 2 * _SPLIT_OFFSET, "identities": (n_b + n_ct, n_b + n_ct + n_cs)},
    ]


def _write(job: tuple) -> int:
    out, split, labels, identities, index, seed, image_size, style = job
    row = synthetic_sample(index, seed=seed, image_size=image_size, labels=labels,
                           style=style, identities=identities)
    path = Path(out) / split / folder_name(row["label"]) / f"{index:08d}_id{row['identity']:04d}.png"
    row["image"].save(path)
    return row["identity"]


def write_contact_sheet(path: Path, plan: list[dict], seed: int, image_size: int, style: str,
                        people: int = 3, zoom: int = 2) -> None:
    """Rows of basics and of compounds for the first `people` of the test pool, upscaled `zoom`x."""
    first = plan[-1]["identities"][0]
    rows = []
    for person in range(first, first + people):
        for split in plan[:2]:
            for k, label in enumerate(split["labels"]):
                row = synthetic_sample(person * 100 + k, seed=seed, image_size=image_size, labels=[label],
                                       style=style, identities=(person, person + 1))
                size = image_size * zoom
                rows.append({**row, "image": row["image"].resize((size, size), Image.NEAREST)})
    sheet = contact_sheet(rows, columns=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, optimize=True)
    print(f"wrote {path} ({sheet.size[0]}x{sheet.size[1]})")


def main() -> None:
    """Parse the options, render every split with a small process pool and write meta.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--n-basic", type=int, default=500, help="images per basic class (7 classes)")
    parser.add_argument("--n-compound-train", type=int, default=60, help="images per compound class, train")
    parser.add_argument("--n-compound-test", type=int, default=200, help="images per compound class, test")
    parser.add_argument("--identities", type=int, nargs=3, default=(350, 40, 100),
                        metavar=("BASIC", "COMPOUND_TRAIN", "COMPOUND_TEST"),
                        help="number of people in each split (disjoint, consecutive id ranges)")
    parser.add_argument("--style", default="realistic", help="renderer style (cartoon: an easy control)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--contact-sheet", type=Path, help="also (or, without --out, only) write this PNG")
    args = parser.parse_args()
    if args.out is None and args.contact_sheet is None:
        parser.error("give --out and/or --contact-sheet")

    start = time.time()
    plan = split_plan(args.n_basic, args.n_compound_train, args.n_compound_test, tuple(args.identities))
    if args.contact_sheet is not None:
        write_contact_sheet(args.contact_sheet, plan, args.seed, args.image_size, args.style)
    if args.out is None:
        return
    out = Path(args.out)
    jobs = []
    for split in plan:
        for label in split["labels"]:
            (out / split["split"] / folder_name(label)).mkdir(parents=True, exist_ok=True)
        count = split["per_class"] * len(split["labels"])
        jobs += [(str(out), split["split"], split["labels"], split["identities"], split["offset"] + i,
                  args.seed, args.image_size, args.style) for i in range(count)]
    if args.workers > 1:
        with multiprocessing.get_context("fork").Pool(args.workers) as pool:
            ids = pool.map(_write, jobs, chunksize=64)
    else:
        ids = [_write(job) for job in jobs]

    meta = {"seed": args.seed, "image_size": args.image_size, "style": args.style, "splits": []}
    position = 0
    for split in plan:
        count = split["per_class"] * len(split["labels"])
        used = sorted(set(ids[position:position + count]))
        position += count
        first, stop = split["identities"]
        meta["splits"].append({"split": split["split"], "images": count, "per_class": split["per_class"],
                               "identities": [first, stop], "people_used": len(used)})
        print(f"{split['split']:15s} {count:5d} images ({split['per_class']} per class), "
              f"identities [{first}, {stop}) - {len(used)} people used")
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    print(f"wrote {out} in {time.time() - start:.1f} s")


if __name__ == "__main__":
    main()
