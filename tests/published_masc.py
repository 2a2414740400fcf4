"""The authors' MASC algorithm, re-implemented plainly in numpy: the correctness reference.

As published: per class, ``np.cov`` of the class's points stacked with their negations, ``eigh``
in float64, components kept while the cumulative explained variance has not passed the
threshold (plus one); angles in batches of 100 points through the projection matrix
``P = B Bᵀ``, as ``diag(x @ (x @ P.T).T)`` over the norms. Used by the tests and by
``benchmarks/masc_bench.py``; deliberately not optimized.
"""

import numpy as np


def fit(X, y, variance_threshold=0.99):
    """Returns the sorted classes, each class's projection matrix (d, d) and its k."""
    classes = np.unique(y)
    projections, ks = [], []
    for c in classes:
        points = np.asarray(X[y == c], dtype=np.float64)
        stacked = np.vstack([points, -points])
        eigenvalues, eigenvectors = np.linalg.eigh(np.cov(stacked.T))
        order = np.argsort(eigenvalues)[::-1]
        eigenvalues, eigenvectors = eigenvalues[order], eigenvectors[:, order]
        explained = np.cumsum(eigenvalues) / np.sum(eigenvalues)
        k = int(np.sum(explained <= variance_threshold)) + 1
        basis = eigenvectors[:, :k]
        projections.append(basis @ basis.T)
        ks.append(k)
    return classes, projections, np.array(ks)


def angles(X, projections, batch=100):
    """Angles in degrees (n, n_classes)."""
    X = np.asarray(X, dtype=np.float64)
    out = np.zeros((len(X), len(projections)))
    for c, projection in enumerate(projections):
        for start in range(0, len(X), batch):
            x = X[start : start + batch]
            projected = x @ projection.T
            cosine = np.diag(x @ projected.T) / (np.linalg.norm(x, axis=1) * np.linalg.norm(projected, axis=1))
            out[start : start + batch, c] = np.degrees(np.arccos(np.clip(cosine, -1, 1)))
    return out


def predict(X, classes, projections):
    return classes[np.argmin(angles(X, projections), axis=1)]


def synthetic_relu_activations(n, d, n_classes=10, rank=None, seed=0, noise=0.3):
    """Class-structured ReLU features: ReLU of a class mean, ``rank`` latent class factors and
    isotropic noise of std ``noise``. The rank sets how many components 99 % of a class's variance
    needs (about 8 x rank after the ReLU, while the noise is small); large noise raises it.

    Returns float32 activations (n, d) and labels (n,), classes in random order, so that
    ``X[:m]`` and ``X[m:]`` are two samples of the same classes.
    """
    rng = np.random.default_rng(seed)
    rank = rank or max(4, d // 20)
    labels = rng.permutation(np.arange(n) % n_classes)  # balanced, in random order: any prefix is a sample
    means = rng.normal(size=(n_classes, d))
    factors = rng.normal(size=(n_classes, rank, d)) / np.sqrt(rank)
    latent = rng.normal(size=(n, rank))
    pre = means[labels] + np.einsum("nr,nrd->nd", latent, factors[labels]) + noise * rng.normal(size=(n, d))
    return np.maximum(pre, 0).astype(np.float32), labels
