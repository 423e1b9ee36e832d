"""Training of the decision model: learner-level validation split, seeded deterministic loop,
early stopping, temperature scaling.

The minibatch loop computes gradients by hand (forward/backward of the ReLU MLP, then fused Adam on
one flat parameter buffer) instead of autograd: with 32-row batches the per-op overhead dominates,
and this keeps 100k decisions × 50 epochs within a minute on two cores.
``tests/test_mlp_train.py`` checks the gradients against autograd and the update against
``torch.optim.Adam``.
"""

from __future__ import annotations

import math
import platform
import time
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from learnops.config import MlpConfig
from learnops.contracts import ACTIONS, FEATURES
from learnops.data.splits import learner_split_mask
from learnops.errors import LearnopsError, NoTrainingData
from learnops.evaluation.metrics import classification_metrics
from learnops.hashing import data_fingerprint
from learnops.io import require_columns
from learnops.mlp.calibration import apply_temperature, fit_temperature
from learnops.mlp.features import FeatureStats, feature_matrix
from learnops.mlp.metrics import encode_actions, per_class_accuracy
from learnops.mlp.model import DecisionNet, MlpModel

__all__ = ["SplitInfo", "TrainResult", "split_by_learner", "train"]

#: Weight of the masked difficulty_delta regression loss (standardized target) in the total loss.
DELTA_LOSS_WEIGHT = 1.0
ADJUST = ACTIONS.index("adjust_difficulty")
_BETA1, _BETA2, _EPS = 0.9, 0.999, 1e-8


@dataclass
class SplitInfo:
    """Row positions of the training and validation splits, and how they were drawn."""

    train_index: np.ndarray
    val_index: np.ndarray
    unit: str
    n_train_learners: int
    n_val_learners: int
    seed: int
    #: Rows of the learners the temperature is fitted on, apart from the early-stopping rows
    #: ``val_index`` (empty: the temperature is fitted on ``val_index`` too).
    cal_index: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    n_cal_learners: int = 0

    def summary(self) -> dict[str, Any]:
        """JSON-ready counts (saved in the model metadata)."""
        return {
            "unit": self.unit,
            "seed": self.seed,
            "n_train": int(len(self.train_index)),
            "n_val": int(len(self.val_index)),
            "n_cal": int(len(self.cal_index)),
            "n_train_learners": self.n_train_learners,
            "n_val_learners": self.n_val_learners,
            "n_cal_learners": self.n_cal_learners,
        }


@dataclass
class TrainResult:
    """A trained model and everything the report needs about its training."""

    model: MlpModel
    history: pd.DataFrame
    temperature: float
    metrics: dict[str, Any]
    split: SplitInfo
    val_y: np.ndarray = field(repr=False)
    val_logits: np.ndarray = field(repr=False)

    def val_proba(self, calibrated: bool = True) -> np.ndarray:
        """Validation-split class probabilities (temperature-scaled unless calibrated=False)."""
        return apply_temperature(self.val_logits, self.temperature if calibrated else 1.0)

    def per_class(self) -> pd.DataFrame:
        """Per-action recall and precision on the validation split."""
        return per_class_accuracy(self.val_y, self.val_proba())


def split_by_learner(
    learners: pd.Series | np.ndarray | None,
    n: int,
    val_frac: float,
    seed: int,
    cal_frac: float = 0.0,
) -> SplitInfo:
    """Assign whole learners to validation: about ``val_frac`` of learners, chosen by the seeded
    learner hash of :func:`learnops.data.splits.learner_split_mask` (namespace ``validation``),
    so a learner's side does not move when the data grow. With ``cal_frac`` > 0, about that
    share of the validation learners (namespace ``calibration``) form the calibration split the
    temperature is fitted on, apart from the early-stopping rows; with fewer than 2 validation
    learners the two share the validation split (a warning says so)."""
    if learners is None:
        warnings.warn("no learner_hash column: validation split by row", stacklevel=2)
        keys = np.arange(n).astype(str)
        unit = "row"
    else:
        keys = np.asarray(learners).astype(str)
        unit = "learner"
    n_groups = len(np.unique(keys)) if n else 0
    if n_groups < 2:
        raise LearnopsError(
            f"need at least 2 {unit}s for a validation split by {unit}, found {n_groups}"
        )
    is_val = learner_split_mask(keys, val_frac, seed, namespace="validation")
    n_val = len(np.unique(keys[is_val]))
    is_cal = np.zeros(n, dtype=bool)
    if cal_frac > 0 and n_val >= 2:
        is_cal[is_val] = learner_split_mask(keys[is_val], cal_frac, seed, namespace="calibration")
    elif cal_frac > 0:
        warnings.warn(
            f"1 validation {unit}: the temperature is fitted on the early-stopping split",
            stacklevel=2,
        )
    n_cal = len(np.unique(keys[is_cal]))
    return SplitInfo(
        train_index=np.flatnonzero(~is_val),
        val_index=np.flatnonzero(is_val & ~is_cal),
        unit=unit,
        n_train_learners=n_groups - n_val,
        n_val_learners=n_val - n_cal,
        seed=seed,
        cal_index=np.flatnonzero(is_cal),
        n_cal_learners=n_cal,
    )


class _Flat:
    """Views of the network's parameters (and gradients) inside one flat buffer."""

    def __init__(self, net: DecisionNet) -> None:
        params = list(net.parameters())
        self.P = torch.cat([p.detach().reshape(-1) for p in params]).contiguous()
        self.G = torch.zeros_like(self.P)
        self.shapes = [tuple(p.shape) for p in params]
        self.p_views = self._views(self.P)
        self.g_views = self._views(self.G)

    def _views(self, buf: torch.Tensor) -> list[torch.Tensor]:
        out, off = [], 0
        for shape in self.shapes:
            k = math.prod(shape)
            out.append(buf[off : off + k].view(shape))
            off += k
        return out


def _class_weights(y: np.ndarray, enabled: bool) -> np.ndarray:
    k = len(ACTIONS)
    if not enabled:
        return np.ones(k)
    counts = np.bincount(y, minlength=k).astype(np.float64)
    return np.where(counts > 0, len(y) / (k * np.maximum(counts, 1)), 1.0)


def _eval_forward(
    ws: list[torch.Tensor], bs: list[torch.Tensor], X: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    h = X
    for w, b in zip(ws[:-2], bs[:-2], strict=True):
        h = torch.addmm(b, h, w.t()).relu_()
    return torch.addmm(bs[-2], h, ws[-2].t()), torch.addmm(bs[-1], h, ws[-1].t()).squeeze(1)


def _versions() -> dict[str, str]:
    import safetensors
    import sklearn

    try:
        from importlib.metadata import version

        learnops_version = version("learnops")
    except Exception:
        learnops_version = "unknown"
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "scikit-learn": sklearn.__version__,
        "safetensors": getattr(safetensors, "__version__", "unknown"),
        "learnops": learnops_version,
    }


@dataclass
class _DeltaTarget:
    """The difficulty_delta regression target: standardized on the training split, only for
    adjust_difficulty rows; ``trained`` is False (mean 0, std 1) with fewer than 2 training rows."""

    raw: np.ndarray  # difficulty_delta per row, NaN where missing
    mask: np.ndarray  # adjust_difficulty rows with a finite difficulty_delta
    trained: bool
    mean: float
    std: float
    target: np.ndarray  # (raw - mean) / std on masked rows, 0 elsewhere


def _delta_target(decisions: pd.DataFrame, y: np.ndarray, tr: np.ndarray) -> _DeltaTarget:
    delta = np.full(len(decisions), np.nan)
    if "difficulty_delta" in decisions.columns:
        delta = pd.to_numeric(decisions["difficulty_delta"], errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan
        )
    has_delta = (y == ADJUST) & np.isfinite(delta)
    trained = int(has_delta[tr].sum()) >= 2
    mean, std = 0.0, 1.0
    if trained:
        mean = float(delta[tr][has_delta[tr]].mean())
        std = float(delta[tr][has_delta[tr]].std())
        std = std if std > 1e-9 else 1.0
    target = np.where(has_delta, (np.nan_to_num(delta) - mean) / std, 0.0)
    return _DeltaTarget(delta, has_delta, trained, mean, std, target)


@dataclass
class _Prepared:
    """Model inputs drawn from the decisions table (features standardized on the training split)."""

    y: np.ndarray
    split: SplitInfo
    stats: FeatureStats
    Z: np.ndarray
    delta: _DeltaTarget
    class_w: np.ndarray


def _prepare(decisions: pd.DataFrame, config: MlpConfig, seed: int) -> _Prepared:
    if len(decisions) == 0:
        raise NoTrainingData("the decisions table is empty")
    require_columns(decisions, ("action",), what="decisions")
    X_raw = feature_matrix(decisions)
    y = encode_actions(decisions["action"])
    learners = decisions["learner_hash"] if "learner_hash" in decisions.columns else None
    split = split_by_learner(
        learners, len(decisions), config.val_split, seed, cal_frac=config.calibration_split
    )
    tr = split.train_index
    stats = FeatureStats.fit(X_raw[tr])
    return _Prepared(
        y=y,
        split=split,
        stats=stats,
        Z=stats.transform(X_raw),
        delta=_delta_target(decisions, y, tr),
        class_w=_class_weights(y[tr], config.class_weights),
    )


@dataclass
class _FitData:
    """Tensors of the minibatch loop; ``class_w`` is None without class weighting."""

    X: torch.Tensor
    y: torch.Tensor
    target: torch.Tensor
    delta_mask: torch.Tensor
    Xv: torch.Tensor
    yv: torch.Tensor
    class_w: torch.Tensor | None
    delta_on: bool

    @classmethod
    def of(cls, prep: _Prepared, weighted: bool) -> _FitData:
        tr, va, d = prep.split.train_index, prep.split.val_index, prep.delta
        return cls(
            X=torch.from_numpy(prep.Z[tr]),
            y=torch.from_numpy(prep.y[tr]),
            target=torch.from_numpy(d.target[tr].astype(np.float32)),
            delta_mask=torch.from_numpy(d.mask[tr].astype(np.float32)),
            Xv=torch.from_numpy(prep.Z[va]),
            yv=torch.from_numpy(prep.y[va]),
            class_w=torch.from_numpy(prep.class_w.astype(np.float32)) if weighted else None,
            delta_on=d.trained,
        )


@dataclass
class _Validation:
    """Outputs of the trained network on the validation split, and the fitted temperature."""

    y: np.ndarray
    logits: np.ndarray
    delta_pred: np.ndarray  # standardized difficulty_delta head
    temperature: float = 1.0


@contextmanager
def _deterministic_torch() -> Iterator[None]:
    """One thread and deterministic algorithms, restored on exit: byte-identical weights."""
    prev_threads = torch.get_num_threads()
    prev_det = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(prev_threads)
        torch.use_deterministic_algorithms(prev_det)


def _open_live(live_dir: str | Path | None) -> Any:
    if live_dir is None:
        return None
    from dvclive import Live

    return Live(dir=str(live_dir), save_dvc_exp=False, dvcyaml=None)


def _init_net(config: MlpConfig, seed: int) -> DecisionNet:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return DecisionNet(hidden=tuple(config.hidden), dropout=config.dropout)


def _validate(net: DecisionNet, prep: _Prepared, rows: np.ndarray | None = None) -> _Validation:
    """The network's outputs on ``rows`` (default: the early-stopping validation split)."""
    va = prep.split.val_index if rows is None else rows
    net.eval()
    with torch.inference_mode():
        logits, delta = net(torch.from_numpy(prep.Z[va]))
    return _Validation(
        y=prep.y[va], logits=logits.double().numpy(), delta_pred=delta.double().numpy()
    )


def log_prior(y: np.ndarray) -> np.ndarray:
    """log of each action's share of ``y`` (ACTIONS order; an absent action counts as half a
    row, so the log stays finite)."""
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=len(ACTIONS)).astype(float)
    counts = np.where(counts > 0, counts, 0.5)
    return np.log(counts / counts.sum())


def adjust_logits(net: DecisionNet, y_train: np.ndarray, tau: float) -> None:
    """Post-hoc logit adjustment: subtract ``tau`` · log prior (of ``y_train``) from the action
    head's bias (no-op for ``tau`` 0)."""
    if tau:
        with torch.no_grad():
            net.out.bias.sub_(torch.from_numpy(tau * log_prior(y_train)).to(net.out.bias.dtype))


def train(
    decisions: pd.DataFrame,
    config: MlpConfig | None = None,
    seed: int = 0,
    live_dir: str | Path | None = None,
    progress: bool = False,
) -> TrainResult:
    """Train the decision model on logged decisions.

    ``decisions`` needs the 18 FEATURES, ``action`` and ``learner_hash`` (``difficulty_delta`` is
    used when present; other columns are ignored).

    Validation is a seeded split by learner; early stopping keeps the weights with the lowest
    validation loss; a temperature is then fitted on a calibration split of other validation
    learners (``config.calibration_split`` of them; 0: on the early-stopping split), and the
    validation metrics are computed on the early-stopping split. ``config.logit_adjustment`` τ > 0
    takes τ · log(training action share) off the logits before the temperature is fitted. Same
    data, config and seed give
    byte-identical weights. ``live_dir`` turns on DVCLive logging per epoch.
    """
    config = config or MlpConfig()
    t_start = time.perf_counter()
    prep = _prepare(decisions, config, seed)
    with _deterministic_torch():
        live = _open_live(live_dir)
        net = _init_net(config, seed)
        data = _FitData.of(prep, bool(config.class_weights))
        history, best_epoch = _fit(net, data, config, seed, live, progress)
        adjust_logits(net, prep.y[prep.split.train_index], config.logit_adjustment)
        val = _validate(net, prep)
        cal = _validate(net, prep, prep.split.cal_index) if len(prep.split.cal_index) else val
    # on learners early stopping never saw (mlp.calibration_split), so the validation metrics
    # below measure the calibration out of sample
    val.temperature = fit_temperature(cal.y, cal.logits)
    metrics = _metrics(prep, val, history, best_epoch, t_start)
    if live is not None:
        _log_summary(live, metrics)
    model = MlpModel(
        net=net,
        stats=prep.stats,
        temperature=val.temperature,
        delta_trained=prep.delta.trained,
        delta_mean=prep.delta.mean,
        delta_std=prep.delta.std,
        metadata=_metadata(decisions, prep, config, seed, metrics),
    )
    return TrainResult(
        model=model,
        history=history,
        temperature=val.temperature,
        metrics=metrics,
        split=prep.split,
        val_y=val.y,
        val_logits=val.logits,
    )


def _metrics(
    prep: _Prepared, val: _Validation, history: pd.DataFrame, best_epoch: int, t_start: float
) -> dict[str, Any]:
    """Validation metrics (calibrated, plus uncalibrated ECE/NLL) and training bookkeeping."""
    proba = apply_temperature(val.logits, val.temperature)
    cal = classification_metrics(val.y, proba)
    uncal = classification_metrics(val.y, apply_temperature(val.logits, 1.0))
    metrics: dict[str, Any] = {
        **cal,
        "ece_uncalibrated": uncal["ece"],
        "nll_uncalibrated": uncal["nll"],
        "temperature": val.temperature,
        "best_epoch": best_epoch,
        "epochs_run": int(len(history)),
        "n_train": int(len(prep.split.train_index)),
        "n_val": int(len(prep.split.val_index)),
        "n_cal": int(len(prep.split.cal_index)),
        "train_seconds": time.perf_counter() - t_start,
    }
    d = prep.delta
    vm = d.mask[prep.split.val_index]
    if d.trained and vm.any():
        pred = val.delta_pred[vm] * d.std + d.mean
        metrics["difficulty_delta_mae"] = float(
            np.abs(pred - d.raw[prep.split.val_index][vm]).mean()
        )
    pcs = per_class_accuracy(val.y, proba)
    metrics["per_class_recall"] = {
        r.action: (None if np.isnan(r.recall) else float(r.recall)) for r in pcs.itertuples()
    }
    return metrics


def _log_summary(live: Any, metrics: dict[str, Any]) -> None:
    for key in ("accuracy", "nll", "ece", "ece_uncalibrated", "macro_f1", "temperature"):
        live.summary[f"val/{key}"] = float(metrics[key])
    live.end()


def _metadata(
    decisions: pd.DataFrame,
    prep: _Prepared,
    config: MlpConfig,
    seed: int,
    metrics: dict[str, Any],
) -> dict[str, Any]:
    y, d = prep.y, prep.delta
    return {
        "format": "learnops.mlp/1",
        "features": list(FEATURES),
        "feature_stats": prep.stats.to_dict(),
        "actions": list(ACTIONS),
        "action_index": {a: i for i, a in enumerate(ACTIONS)},
        "architecture": {
            "input": len(FEATURES),
            "hidden": list(config.hidden),
            "outputs": len(ACTIONS),
            "activation": "relu",
            "dropout": config.dropout,
        },
        "temperature": metrics["temperature"],
        "difficulty_delta": {
            "trained": d.trained,
            "mean": d.mean,
            "std": d.std,
            "n_train": int(d.mask[prep.split.train_index].sum()),
        },
        "class_weights": [float(v) for v in prep.class_w],
        "params": config.model_dump(mode="json"),
        "seed": seed,
        "data": {
            "fingerprint": data_fingerprint(decisions),
            "n_rows": int(len(decisions)),
            "action_counts": {a: int((y == i).sum()) for i, a in enumerate(ACTIONS)},
        },
        "split": prep.split.summary(),
        # no wall-clock values: same data + params + seed must give byte-identical artifacts
        "metrics": {k: v for k, v in metrics.items() if k != "train_seconds"},
        "versions": _versions(),
    }


class _GradFn:
    """Gradient of the minibatch loss, written into the flat gradient buffer.

    Dropout masks are 0/1; the 1/(1 − p) scale of inverted dropout is folded into the ``alpha`` of
    the following matrix products. Loss: mean cross-entropy (or class-weighted mean) plus
    DELTA_LOSS_WEIGHT × masked squared error of the delta head, averaged over the batch.
    """

    def __init__(self, flat: _Flat, dropout: float, delta_on: bool, batch_size: int) -> None:
        self.ws, self.bs = flat.p_views[0::2], flat.p_views[1::2]
        self.gws, self.gbs = flat.g_views[0::2], flat.g_views[1::2]
        self.wts = [w.t() for w in self.ws]
        self.n_hidden = len(self.ws) - 2
        keep = 1.0 - dropout
        # scale[i]: factor on the input of layer i (inverted dropout on hidden activations)
        self.scale = [1.0] + [1.0 / keep if dropout > 0 else 1.0] * (self.n_hidden + 1)
        self.delta_on = delta_on
        self.ones = torch.ones(batch_size)
        self.zero = torch.zeros(())
        self.relu_backward = torch.ops.aten.threshold_backward

    def __call__(
        self,
        xb: torch.Tensor,
        ohb: torch.Tensor,
        tb: torch.Tensor | None,
        dmb: torch.Tensor | None,
        rwb: torch.Tensor | None,
        mbs: tuple[torch.Tensor, ...],
    ) -> None:
        ws, bs, wts, gws, gbs, sc = self.ws, self.bs, self.wts, self.gws, self.gbs, self.scale
        nh = self.n_hidden
        m = xb.shape[0]
        ones = self.ones if m == self.ones.shape[0] else self.ones[:m]
        h = xb
        acts = [h]
        for li in range(nh):
            h = torch.addmm(bs[li], h, wts[li], alpha=sc[li]).relu_()
            if mbs:
                h.mul_(mbs[li])
            acts.append(h)
        so = sc[nh]
        g = torch.softmax(torch.addmm(bs[nh], h, wts[nh], alpha=so), 1).sub_(ohb)
        if rwb is not None:
            g.mul_(rwb).div_(rwb.sum())
            c = 1.0
        else:
            c = 1.0 / m
        gt = g.t()
        gws[nh].addmm_(gt, h, beta=0.0, alpha=so * c)
        gbs[nh].addmv_(gt, ones, beta=0.0, alpha=c)
        d = torch.addmm(self.zero, g, ws[nh], beta=0.0, alpha=so * c)
        if self.delta_on:
            r = torch.addmm(bs[-1], h, wts[-1], alpha=so).sub_(tb).mul_(dmb)
            c = 1.0 / m
            rt = r.t()
            gws[-1].addmm_(rt, h, beta=0.0, alpha=so * c)
            gbs[-1].addmv_(rt, ones, beta=0.0, alpha=c)
            d.addmm_(r, ws[-1], alpha=so * c)
        for li in range(nh - 1, -1, -1):
            d = self.relu_backward(d, acts[li + 1], 0)  # also zeroes dropped units
            dt = d.t()
            gws[li].addmm_(dt, acts[li], beta=0.0, alpha=sc[li])
            gbs[li].addmv_(dt, ones, beta=0.0)
            if li > 0:
                d = torch.addmm(self.zero, d, ws[li], beta=0.0, alpha=sc[li])


@dataclass
class _Adam:
    """Adam update of P from gradient G (PyTorch semantics, L2 weight decay): ``adam(step)``.

    Uses torch's fused kernel when present, else the same update written out."""

    P: torch.Tensor
    G: torch.Tensor
    lr: float
    wd: float
    mom: torch.Tensor = field(init=False, repr=False)
    vel: torch.Tensor = field(init=False, repr=False)
    step_t: torch.Tensor = field(init=False, repr=False)
    fused: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.mom, self.vel = torch.zeros_like(self.P), torch.zeros_like(self.P)
        self.step_t = torch.zeros((), dtype=torch.float32)
        self.fused = getattr(torch, "_fused_adam_", None)

    def __call__(self, step: int) -> None:
        P, G, mom, vel, lr, wd = self.P, self.G, self.mom, self.vel, self.lr, self.wd
        if self.fused is not None:
            self.step_t.fill_(step)
            self.fused(
                [P], [G], [mom], [vel], [], [self.step_t],
                lr=lr, beta1=_BETA1, beta2=_BETA2, weight_decay=wd, eps=_EPS,
                amsgrad=False, maximize=False,
            )  # fmt: skip
            return
        g = G.add(P, alpha=wd) if wd else G
        mom.lerp_(g, 1.0 - _BETA1)
        vel.mul_(_BETA2).addcmul_(g, g, value=1.0 - _BETA2)
        denom = vel.sqrt().div_(math.sqrt(1.0 - _BETA2**step)).add_(_EPS)
        P.addcdiv_(mom, denom, value=-lr / (1.0 - _BETA1**step))


@dataclass
class _Minibatches:
    """Per-epoch shuffling, dropout masks and the minibatch updates (the step count spans epochs).

    ``target``/``dmask`` are None without the delta head, ``row_w`` without class weighting."""

    X: torch.Tensor
    onehot: torch.Tensor
    target: torch.Tensor | None
    dmask: torch.Tensor | None
    row_w: torch.Tensor | None
    hidden: tuple[int, ...]
    dropout: float
    batch_size: int
    gen: torch.Generator
    grads: _GradFn
    adam: _Adam
    step: int = 0

    @classmethod
    def of(
        cls, net: DecisionNet, flat: _Flat, data: _FitData, config: MlpConfig, seed: int
    ) -> _Minibatches:
        delta_on, B = data.delta_on, config.batch_size
        dmask = (data.delta_mask * (2.0 * DELTA_LOSS_WEIGHT)).unsqueeze(1)
        return cls(
            X=data.X,
            onehot=F.one_hot(data.y, len(ACTIONS)).to(torch.float32),
            target=data.target.unsqueeze(1) if delta_on else None,
            dmask=dmask if delta_on else None,
            row_w=data.class_w[data.y].unsqueeze(1) if data.class_w is not None else None,
            hidden=tuple(net.hidden),
            dropout=config.dropout,
            batch_size=B,
            gen=torch.Generator().manual_seed(seed),
            grads=_GradFn(flat, config.dropout, delta_on, B),
            adam=_Adam(flat.P, flat.G, config.lr, config.weight_decay),
        )

    def _split(self, t: torch.Tensor | None, perm: torch.Tensor) -> Iterable[Any]:
        return t[perm].split(self.batch_size) if t is not None else repeat(None)

    def run_epoch(self) -> None:
        n, p, B = len(self.X), self.dropout, self.batch_size
        perm = torch.randperm(n, generator=self.gen)
        masks = (
            [(torch.rand(n, h, generator=self.gen) >= p).to(torch.float32) for h in self.hidden]
            if p > 0
            else []
        )
        parts = [self._split(t, perm) for t in (self.X, self.onehot, self.target, self.dmask)]
        parts.append(self._split(self.row_w, perm))
        parts.append(zip(*(m.split(B) for m in masks), strict=True) if masks else repeat(()))
        for xb, ohb, tb, dmb, rwb, mbs in zip(*parts, strict=False):  # repeat() is endless
            self.grads(xb, ohb, tb, dmb, rwb, mbs)
            self.step += 1
            self.adam(self.step)


@dataclass
class _EarlyStopping:
    """Lowest validation loss so far, its epoch and a copy of its weights."""

    patience: int
    best_P: torch.Tensor
    best_loss: float = math.inf
    best_epoch: int = 0

    def update(self, epoch: int, val_loss: float, P: torch.Tensor) -> bool:
        """Record an epoch's validation loss; True when training should stop."""
        if val_loss < self.best_loss:
            self.best_loss, self.best_epoch = val_loss, epoch
            self.best_P.copy_(P)
            return False
        return epoch - self.best_epoch >= self.patience


def _evaluate(flat: _Flat, data: _FitData, epoch: int) -> dict[str, float]:
    """Training and validation loss/accuracy of the current weights (dropout off)."""
    ws, bs = flat.p_views[0::2], flat.p_views[1::2]
    logits, _ = _eval_forward(ws, bs, data.X)
    train_loss = float(F.cross_entropy(logits, data.y, weight=data.class_w))
    train_acc = float((logits.argmax(1) == data.y).float().mean())
    vlogits, _ = _eval_forward(ws, bs, data.Xv)
    val_loss = float(F.cross_entropy(vlogits, data.yv, weight=data.class_w))
    val_acc = float((vlogits.argmax(1) == data.yv).float().mean())
    if not math.isfinite(train_loss):
        raise LearnopsError(f"training diverged at epoch {epoch} (loss {train_loss}); lower lr")
    return {
        "epoch": epoch,
        "train_loss": train_loss,
        "train_accuracy": train_acc,
        "val_loss": val_loss,
        "val_accuracy": val_acc,
    }


def _log_epoch(live: Any, bar: Any, row: dict[str, float]) -> None:
    if live is not None:
        live.log_metric("train/loss", row["train_loss"], timestamp=False)
        live.log_metric("train/accuracy", row["train_accuracy"], timestamp=False)
        live.log_metric("val/loss", row["val_loss"], timestamp=False)
        live.log_metric("val/accuracy", row["val_accuracy"], timestamp=False)
        live.next_step()
    if bar is not None:
        bar.set_postfix(train_loss=f"{row['train_loss']:.4f}", val_loss=f"{row['val_loss']:.4f}")


def _epoch_range(n_epochs: int, progress: bool) -> tuple[Iterable[int], Any]:
    """Epoch numbers 1..n, and the tqdm bar iterating them (None without progress)."""
    epochs = range(1, n_epochs + 1)
    if not progress:
        return epochs, None
    from tqdm.auto import tqdm

    bar = tqdm(epochs, desc="train mlp", unit="epoch")
    return bar, bar


def _load_flat(net: DecisionNet, P: torch.Tensor) -> None:
    off = 0
    with torch.no_grad():
        for prm in net.parameters():
            k = prm.numel()
            prm.copy_(P[off : off + k].view_as(prm))
            off += k


def _fit(
    net: DecisionNet, data: _FitData, config: MlpConfig, seed: int, live: Any, progress: bool
) -> tuple[pd.DataFrame, int]:
    """Minibatch Adam with hand-written backprop; restores the best-validation weights into net."""
    flat = _Flat(net)
    batches = _Minibatches.of(net, flat, data, config, seed)
    stopping = _EarlyStopping(config.patience, flat.P.clone())
    rows: list[dict[str, float]] = []
    epochs, bar = _epoch_range(config.epochs, progress)
    for epoch in epochs:
        t0 = time.perf_counter()
        batches.run_epoch()
        row = _evaluate(flat, data, epoch)
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
        _log_epoch(live, bar, row)
        if stopping.update(epoch, row["val_loss"], flat.P):
            break
    if bar is not None:
        bar.close()
    _load_flat(net, stopping.best_P)
    return pd.DataFrame(rows), stopping.best_epoch
