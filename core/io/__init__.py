"""Real files in and out: the iQIYI-VID pickles, ground truth, submissions.

Safe unpickling (:mod:`core.io.safe_pickle`), streaming pickle writer
(:mod:`core.io.pickle_stream`), ragged frames in one contiguous array
(:mod:`core.io.frames`, with the per-field checks in :mod:`core.io.frame_fields`),
the memory-mapped columnar cache (:mod:`core.io.npz_columns`) and canonical video
names (:mod:`core.io.names`). Nothing here imports another vidid package but
``core.errors`` / ``core.atomic``.
"""

from core.io.modalities import MODALITIES, read_modality, sibling_paths
from core.io.formats import (MAX_PER_LINE, GroundTruth, check_ground_truth, read_features,
                             read_ground_truth, read_submission, write_features,
                             write_ground_truth, write_submission)
from core.io.frames import FrameSet, frameset_from_videos, frameset_to_videos, load_frameset, save_frameset
from core.io.names import canonical_name, official_name
from core.io.safe_pickle import load_pickle_safe, require_file

__all__ = ["MAX_PER_LINE", "MODALITIES", "read_modality", "sibling_paths", "FrameSet", "GroundTruth", "canonical_name", "check_ground_truth",
           "frameset_from_videos", "frameset_to_videos", "load_frameset", "load_pickle_safe",
           "official_name", "read_features", "read_ground_truth", "read_submission",
           "require_file", "save_frameset", "write_features", "write_ground_truth",
           "write_submission"]
