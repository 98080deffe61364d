"""A two-dimensional embedding of feature vectors for a figure: t-SNE (scikit-learn's, van der Maaten & Hinton 2008),
seeded, so the same features give the same picture."""

from __future__ import annotations

import numpy as np


def tsne(points: np.ndarray, seed: int, perplexity: float = 30.0) -> np.ndarray:
    """(N, 2) t-SNE of (N, D) points; the perplexity is capped below N / 3 (t-SNE needs perplexity < N), PCA
    initialisation (stable across runs). Fewer than 3 points: their first two coordinates, zero-padded."""
    from sklearn.manifold import TSNE

    points = np.asarray(points, dtype=np.float64)
    if len(points) < 3:
        return np.pad(points[:, :2], ((0, 0), (0, max(0, 2 - points.shape[1]))))
    return TSNE(n_components=2, perplexity=min(perplexity, (len(points) - 1) / 3), init="pca", random_state=seed,
                n_jobs=1).fit_transform(points)
