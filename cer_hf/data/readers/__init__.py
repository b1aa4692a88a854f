"""Readers of labelled face datasets as they sit on users' disks, one module per family.

`base` holds what every reader shares (errors naming file and line, skip reports, the row schema,
label cells, target filtering); `files` the generic sources (image folders, CSV/JSON tables,
parquet, Hub datasets); `rafdb`, `affectnet`, `fer2013` and `affwild2` (Aff-Wild2 and C-EXPR-DB)
the public datasets. `cer_hf.data.labelled` turns a source spec into one of these calls.
"""

from cer_hf.data.readers import affwild2
from cer_hf.data.readers.affectnet import read_affectnet
from cer_hf.data.readers.base import (
    FilterReport,
    LabelFileError,
    ReadReport,
    build_dataset,
    drop_unreadable_images,
    filter_targets,
    row_features,
)
from cer_hf.data.readers.fer2013 import FER2013_USAGES, read_fer2013
from cer_hf.data.readers.files import normalise_dataset, read_hub, read_image_folder, read_parquet, read_table
from cer_hf.data.readers.rafdb import read_rafdb_basic, read_rafdb_compound

__all__ = [
    "FER2013_USAGES",
    "FilterReport",
    "LabelFileError",
    "ReadReport",
    "affwild2",
    "build_dataset",
    "drop_unreadable_images",
    "filter_targets",
    "normalise_dataset",
    "read_affectnet",
    "read_fer2013",
    "read_hub",
    "read_image_folder",
    "read_parquet",
    "read_rafdb_basic",
    "read_rafdb_compound",
    "read_table",
    "row_features",
]
