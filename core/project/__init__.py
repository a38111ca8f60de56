"""Projects: the folder or store a user works on, and what in it trains and what is judged.

The store is the source of truth (issue: projects, not folders). A folder without a project store is read
through its layout with the same rules the store would apply, so `evaluate` on a benchmark folder needs no
store and agrees with the window on the same folder.

Modules: location (where a folder's project store lives), image_sets (the training and judged sets and
their rules), opening (open or create a folder's project store, importing what the layout says).
"""

from core.project.image_sets import (
    HOLDOUT_SHARE,
    ImageSets,
    TooFewTrainingImages,
    held_out,
    image_sets,
    project_items,
    role,
    sets_from_folder,
    sets_from_store,
    store_items,
)
from core.project.location import PROJECT_STORE_NAME, find_project_store, project_store_path

__all__ = [
    "HOLDOUT_SHARE", "ImageSets", "PROJECT_STORE_NAME", "TooFewTrainingImages", "find_project_store",
    "held_out", "image_sets", "project_items", "project_store_path", "role", "sets_from_folder", "sets_from_store",
    "store_items",
]
