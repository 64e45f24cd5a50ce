"""From frames to vectors: pooling, test-time views, augmentation, the labelled dataset, maps.

:mod:`core.features.pooling` (weights, :func:`pool_videos`, :func:`pool_views`,
:func:`augment_noise`) runs on :mod:`core.features.segment_means` (chunked weighted
segment means) and :mod:`core.features.half_float`; :mod:`core.features.pooled_videos`
stores pooled matrices; :mod:`core.features.dataset` joins features and ground truth
into :class:`LabelledVideos`; :mod:`core.features.projection` is the cached UMAP / PCA.
"""

from core.features.dataset import LabelledVideos, concat, open_split, subset_frames
from core.features.modalities import ModalFeatures, open_multimodal
from core.features.pooled_videos import PooledVideos, load_pooled, save_pooled
from core.features.pooling import VIEWS, WEIGHTINGS, augment_noise, frame_weights, pool_videos, pool_views
from core.features.segment_means import pool_segments

__all__ = ["VIEWS", "WEIGHTINGS", "LabelledVideos", "ModalFeatures", "open_multimodal", "PooledVideos", "augment_noise", "concat",
           "frame_weights", "load_pooled", "open_split", "pool_segments", "pool_videos", "pool_views",
           "save_pooled", "subset_frames"]
