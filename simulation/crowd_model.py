"""A seeded crowd of simulated Fashion-MNIST inspectors, for tests and benchmarks.

No Django. Behaviour is meant to look like real inspection work rather than like textbook
Dawid–Skene data:

* errors concentrate on the confusable garment groups (T-shirt/shirt/pullover/coat, dress/coat,
  sandal/sneaker/ankle boot) and on the harder classes (shirt worst, trouser and bag easiest);
* errors cluster on hard images: each item has a difficulty ``z`` (0 = typical, positive =
  harder) that raises every inspector's error log-odds by ``slope · z``, so answers on the same
  item are correlated, which is exactly what Dawid–Skene's independence assumption ignores;
* careless inspectors also slip to random keys; spammers answer uniformly at random or always
  press the same key, whatever the image;
* adversaries and oddities for the trust checks: near-chance inspectors (25-35 % right), a
  class-biased one (an average inspector who calls every T-shirt a shirt), and colluding pairs
  (:func:`assign_pairs_together` puts them on the same images, :func:`copy_within_pairs` makes
  whoever answers second copy the first).
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
K = len(CLASS_NAMES)

# How much harder each class is than average (mean 1). Shirt is the class people and models
# miss most on Fashion-MNIST; trousers and bags are almost never wrong.
CLASS_HARDNESS = np.array([1.3, 0.25, 1.4, 1.0, 1.4, 0.6, 2.25, 0.7, 0.3, 0.8])
CLASS_HARDNESS = CLASS_HARDNESS / CLASS_HARDNESS.mean()

# Where a mistake on a true class goes (row = true class), before normalization.
_SIMILAR = {
    0: {6: 6, 2: 2, 3: 2, 4: 1},  # T-shirt -> shirt, pullover, dress
    1: {3: 3, 0: 1},  # trouser -> dress
    2: {4: 5, 6: 5, 0: 2},  # pullover -> coat, shirt
    3: {4: 3, 0: 2, 6: 2, 1: 1},  # dress -> coat, T-shirt, shirt
    4: {2: 5, 6: 4, 3: 2},  # coat -> pullover, shirt, dress
    5: {7: 5, 9: 4},  # sandal -> sneaker, ankle boot
    6: {0: 5, 2: 3, 4: 3, 3: 1},  # shirt -> T-shirt, pullover, coat
    7: {5: 4, 9: 5},  # sneaker -> sandal, ankle boot
    8: {0: 1, 5: 1, 2: 1, 4: 1},  # bag -> anything
    9: {7: 5, 5: 3},  # ankle boot -> sneaker, sandal
}

# kind -> (accuracy range, share of errors that are random keys, difficulty slope)
KINDS: Mapping[str, tuple[tuple[float, float], float, float]] = {
    "expert": ((0.97, 0.99), 0.05, 1.2),
    "average": ((0.85, 0.90), 0.10, 1.2),
    "careless": ((0.65, 0.75), 0.40, 0.8),
    "good": ((0.92, 0.96), 0.05, 1.2),
    "near_chance": ((0.25, 0.35), 0.60, 0.5),
    "class_biased": ((0.85, 0.90), 0.10, 1.2),
}
# The class-biased inspector answers this label for every image of that class.
BIAS = (0, 6)  # T-shirt/top -> Shirt
SPAMMER_KINDS = ("spammer_uniform", "spammer_constant")
DEFAULT_MIX: Mapping[str, int] = {
    "expert": 3,
    "average": 10,
    "careless": 4,
    "spammer_uniform": 2,
    "spammer_constant": 1,
}

# Standard-normal quadrature nodes for solving the base error log-odds (see _base_logit).
_Z_NODES, _Z_WEIGHTS = np.polynomial.hermite_e.hermegauss(40)
_Z_WEIGHTS = _Z_WEIGHTS / _Z_WEIGHTS.sum()


def read_idx_labels(path: str | Path) -> np.ndarray:
    """Labels from an IDX1 file (optionally gzipped): magic 0x00000801, count, then uint8s."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    magic = int.from_bytes(data[:4], "big")
    count = int.from_bytes(data[4:8], "big")
    if magic != 0x0801:
        raise ValueError(f"{path}: not an IDX1 label file (magic {magic:#x})")
    labels = np.frombuffer(data, dtype=np.uint8, count=count, offset=8)
    return labels.astype(np.int64)


def fashion_mnist_labels(split: str = "t10k", root: str | Path = FASHION_MNIST_DIR) -> np.ndarray:
    """Ground-truth labels of Fashion-MNIST's ``train`` (60k) or ``t10k`` (10k) split."""
    return read_idx_labels(Path(root) / f"{split}-labels-idx1-ubyte.gz")


def error_destinations(random_share: float) -> np.ndarray:
    """K×K: where an error on each true class goes (diagonal 0, rows sum to 1)."""
    dest = np.zeros((K, K))
    for true, targets in _SIMILAR.items():
        for label, weight in targets.items():
            dest[true, label] = weight
    dest /= dest.sum(axis=1, keepdims=True)
    uniform = (1.0 - np.eye(K)) / (K - 1)
    return (1.0 - random_share) * dest + random_share * uniform


@dataclass(frozen=True)
class Inspector:
    id: int
    kind: str
    accuracy: float  # target accuracy on a typical, class-balanced stream (nan for spammers)
    base_logit: np.ndarray  # K: error log-odds per true class on a z = 0 image
    slope: float  # how much harder images raise the error log-odds
    destinations: np.ndarray  # K×K, where errors go
    constant_label: int = -1  # spammer_constant's key

    @property
    def is_spammer(self) -> bool:
        return self.kind in SPAMMER_KINDS


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _base_logit(target_error: np.ndarray, slope: float) -> np.ndarray:
    """Per-class log-odds b with E_z[sigmoid(b + slope z)] = target error, z ~ N(0, 1)."""
    lo = np.full_like(target_error, -15.0)
    hi = np.full_like(target_error, 5.0)
    for _ in range(60):  # bisection; the mean error is increasing in b
        mid = (lo + hi) / 2
        mean_err = _sigmoid(mid[:, None] + slope * _Z_NODES[None]) @ _Z_WEIGHTS
        too_high = mean_err > target_error
        hi = np.where(too_high, mid, hi)
        lo = np.where(too_high, lo, mid)
    return (lo + hi) / 2


def make_inspector(id: int, kind: str, rng: np.random.Generator) -> Inspector:
    """One inspector of ``kind`` with individual accuracy drawn from the kind's range."""
    if kind in SPAMMER_KINDS:
        constant = int(rng.integers(K)) if kind == "spammer_constant" else -1
        return Inspector(id, kind, float("nan"), np.zeros(K), 0.0, np.zeros((K, K)), constant)
    (low, high), random_share, slope = KINDS[kind]
    accuracy = float(rng.uniform(low, high))
    # Spread the error over classes by hardness, capped so no class is worse than a coin flip
    # (near-chance inspectors are worse than that everywhere).
    cap = 0.5 if accuracy > 0.5 else 0.95
    class_error = np.clip((1.0 - accuracy) * CLASS_HARDNESS, 1e-4, cap)
    base_logit = _base_logit(class_error, slope)
    destinations = error_destinations(random_share)
    if kind == "class_biased":
        true, given = BIAS
        base_logit[true] = 30.0  # always "wrong" on this class ...
        destinations[true] = np.eye(K)[given]  # ... and always the same way
    return Inspector(
        id=id,
        kind=kind,
        accuracy=accuracy,
        base_logit=base_logit,
        slope=slope,
        destinations=destinations,
    )


def make_crowd(n: int | None = None, mix: Mapping[str, int] | None = None, seed: int = 0):
    """A seeded list of inspectors.

    ``mix`` maps kind (``expert``, ``average``, ``careless``, ``spammer_uniform``,
    ``spammer_constant``) to a count; with ``n`` as well, the mix is scaled to ``n`` people.
    """
    mix = dict(DEFAULT_MIX if mix is None else mix)
    if n is not None:
        total = sum(mix.values())
        scaled = {kind: int(round(count * n / total)) for kind, count in mix.items()}
        # put rounding drift on the largest group so the crowd has exactly n people
        largest = max(scaled, key=lambda kind: mix[kind])
        scaled[largest] += n - sum(scaled.values())
        mix = scaled
    rng = np.random.default_rng(seed)
    crowd: list[Inspector] = []
    for kind, count in mix.items():
        for _ in range(count):
            crowd.append(make_inspector(len(crowd), kind, rng))
    return crowd


def item_difficulty(n: int, rng: np.random.Generator) -> np.ndarray:
    """Per-item difficulty z ~ N(0, 1); inspectors' error log-odds rise by ``slope · z``."""
    return rng.standard_normal(n)


def answer(
    inspector: Inspector, true_label: int, item_difficulty: float, rng: np.random.Generator
) -> int:
    """The label ``inspector`` gives an image of ``true_label`` with difficulty ``z``."""
    if inspector.kind == "spammer_constant":
        return inspector.constant_label
    if inspector.kind == "spammer_uniform":
        return int(rng.integers(K))
    p_error = _sigmoid(inspector.base_logit[true_label] + inspector.slope * item_difficulty)
    if rng.random() >= p_error:
        return int(true_label)
    return int(rng.choice(K, p=inspector.destinations[true_label]))


@dataclass(frozen=True)
class CrowdTables:
    """The crowd stacked into arrays, for answering many items at once."""

    base_logit: np.ndarray  # A×K
    slope: np.ndarray  # A
    destinations_cdf: np.ndarray  # A×K×K cumulative, for inverse-CDF sampling
    kind_code: np.ndarray  # A: 0 human, 1 uniform spammer, 2 constant spammer
    constant_label: np.ndarray  # A

    @classmethod
    def of(cls, crowd: list[Inspector]) -> CrowdTables:
        codes = {"spammer_uniform": 1, "spammer_constant": 2}
        cdf = np.cumsum(np.stack([i.destinations for i in crowd]), axis=2)
        cdf[..., -1] = 1.0
        return cls(
            base_logit=np.stack([i.base_logit for i in crowd]),
            slope=np.array([i.slope for i in crowd]),
            destinations_cdf=cdf,
            kind_code=np.array([codes.get(i.kind, 0) for i in crowd]),
            constant_label=np.array([i.constant_label for i in crowd]),
        )


def answer_batch(
    tables: CrowdTables,
    inspectors: np.ndarray,
    true_labels: np.ndarray,
    difficulty: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Vectorized :func:`answer` for parallel arrays (same model, different random stream)."""
    inspectors = np.asarray(inspectors, dtype=np.intp)
    true_labels = np.asarray(true_labels, dtype=np.intp)
    m = inspectors.size
    u_error, u_dest, u_spam = rng.random(m), rng.random(m), rng.random(m)
    p_error = _sigmoid(
        tables.base_logit[inspectors, true_labels] + tables.slope[inspectors] * difficulty
    )
    cdf = tables.destinations_cdf[inspectors, true_labels]  # m×K
    wrong = np.minimum((u_dest[:, None] > cdf).sum(axis=1), K - 1)
    out = np.where(u_error < p_error, wrong, true_labels)
    code = tables.kind_code[inspectors]
    out = np.where(code == 1, np.minimum((u_spam * K).astype(np.intp), K - 1), out)
    return np.where(code == 2, tables.constant_label[inspectors], out)


def assign_inspectors(
    n_items: int, per_item: int, n_inspectors: int, rng: np.random.Generator
) -> np.ndarray:
    """``n_items × per_item`` distinct random inspectors per item (nobody sees an item twice)."""
    keys = rng.random((n_items, n_inspectors))
    return np.argsort(keys, axis=1)[:, :per_item]


def assign_pairs_together(
    inspectors: np.ndarray,
    pairs: list[tuple[int, int]],
    rng: np.random.Generator,
    *,
    together: float = 0.5,
) -> np.ndarray:
    """Colluders take the same images: where one of a pair is among an item's inspectors, the
    other replaces a random other slot with probability ``together``."""
    out = np.array(inspectors, copy=True)
    for a, b in pairs:
        for first, second in ((a, b), (b, a)):
            has_first = (out == first).any(axis=1)
            has_second = (out == second).any(axis=1)
            rows = np.flatnonzero(has_first & ~has_second & (rng.random(len(out)) < together / 2))
            for row in rows:
                free = np.flatnonzero(out[row] != first)
                out[row, rng.choice(free)] = second
    return out


def copy_within_pairs(
    inspectors: np.ndarray, labels: np.ndarray, pairs: list[tuple[int, int]]
) -> np.ndarray:
    """Whoever of a colluding pair answers an item second gives the first one's answer
    (slots are in answer order)."""
    out = np.array(labels, copy=True)
    for a, b in pairs:
        for row in np.flatnonzero((inspectors == a).any(axis=1) & (inspectors == b).any(axis=1)):
            slot_a = int(np.flatnonzero(inspectors[row] == a)[0])
            slot_b = int(np.flatnonzero(inspectors[row] == b)[0])
            lead, follow = sorted((slot_a, slot_b))
            out[row, follow] = out[row, lead]
    return out


def _class_embedding(rho: float = 0.7) -> np.ndarray:
    """K×K rows = class centres; similar classes (per _SIMILAR, symmetrized) lie closer."""
    sim = error_destinations(0.0)
    sim = (sim + sim.T) / 2
    sim = sim / sim.max()
    gram = (1.0 - rho) * np.eye(K) + rho * (np.eye(K) + (1.0 - np.eye(K)) * sim * 0.9)
    return np.linalg.cholesky(gram)


def simulate_model_probs(
    true_labels: np.ndarray,
    difficulty: np.ndarray,
    rng: np.random.Generator,
    *,
    noise: float = 0.25,
    slope: float = 0.35,
) -> np.ndarray:
    """Probabilities of a simulated classifier, calibrated by construction (~90% accurate).

    The classifier sees a noisy point ``x = centre[y] + σ_i ε`` in a space where confusable
    classes have nearby centres, and reports the exact Bayes posterior over classes (uniform
    prior, known noise). Hard images and hard classes are noisier (``σ_i = noise · √hardness ·
    exp(slope · z_i)``), so the model errs on the same images the inspectors do and is less
    confident there, as real models are. Because σ depends on the class the posterior is only
    nearly calibrated; :func:`fit_temperature` on a held-out draw finishes the job.
    """
    centres = _class_embedding()
    true_labels = np.asarray(true_labels, dtype=np.intp)
    # Harder classes (shirt) are noisier too; the model then misreads them more, as real ones do.
    scale = np.sqrt(CLASS_HARDNESS[true_labels]) * np.exp(slope * np.asarray(difficulty))
    sigma = noise * scale[:, None]
    x = centres[true_labels] + sigma * rng.standard_normal((true_labels.size, K))
    sq_dist = ((x[:, None, :] - centres[None]) ** 2).sum(axis=2)
    log_p = -sq_dist / (2 * sigma**2)
    p = np.exp(log_p - log_p.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def fit_temperature(probs: np.ndarray, truth: np.ndarray) -> float:
    """Temperature T minimizing the NLL of softmax(log p / T) on held-out labelled items."""
    log_p = np.log(np.clip(probs, 1e-12, None))

    def nll(t: float) -> float:
        z = log_p / t
        z = z - z.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(z).sum(axis=1))
        return float(-(z[np.arange(truth.size), truth] - log_norm).mean())

    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 200))
    best = grid[int(np.argmin([nll(t) for t in grid]))]
    fine = best * np.exp(np.linspace(-0.05, 0.05, 41))
    return float(fine[int(np.argmin([nll(t) for t in fine]))])


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    z = np.log(np.clip(probs, 1e-12, None)) / temperature
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)
