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

    def summary(self) -> dict[str, Any]:
        """JSON-ready counts (saved in the model metadata)."""
        return {
            "unit": self.unit,
            "seed": self.seed,
            "n_train": int(len(self.train_index)),
            "n_val": int(len(self.val_index)),
            "n_train_learners": self.n_train_learners,
            "n_val_learners": self.n_val_learners,
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
    learners: pd.Series | np.ndarray | None, n: int, val_frac: float, seed: int
) -> SplitInfo:
    """Assign whole learners to validation: about ``val_frac`` of learners, chosen by the seeded
    learner hash of :func:`learnops.data.splits.learner_split_mask` (namespace ``validation``),
    so a learner's side does not move when the data grow."""
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
    return SplitInfo(
        train_index=np.flatnonzero(~is_val),
        val_index=np.flatnonzero(is_val),
        unit=unit,
        n_train_learners=n_groups - n_val,
        n_val_learners=n_val,
        seed=seed,
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
    validation loss; a temperature is then fitted on the validation split. Same data, config and
    seed give byte-identical weights. ``live_dir`` turns on DVCLive logging per epoch.
    """
    config = config or MlpConfig()
    t_start = time.perf_counter()
    if len(decisions) == 0:
        raise NoTrainingData("the decisions table is empty")
    require_columns(decisions, ("action",), what="decisions")
    X_raw = feature_matrix(decisions)
    y = encode_actions(decisions["action"])
    learners = decisions["learner_hash"] if "learner_hash" in decisions.columns else None
    split = split_by_learner(learners, len(decisions), config.val_split, seed)
    tr, va = split.train_index, split.val_index

    stats = FeatureStats.fit(X_raw[tr])
    Z = stats.transform(X_raw)

    # difficulty_delta target (standardized on the training split), only for adjust_difficulty rows.
    delta = np.full(len(decisions), np.nan)
    if "difficulty_delta" in decisions.columns:
        delta = pd.to_numeric(decisions["difficulty_delta"], errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan
        )
    has_delta = (y == ADJUST) & np.isfinite(delta)
    delta_on = int(has_delta[tr].sum()) >= 2
    d_mean, d_std = 0.0, 1.0
    if delta_on:
        d_mean = float(delta[tr][has_delta[tr]].mean())
        d_std = float(delta[tr][has_delta[tr]].std())
        d_std = d_std if d_std > 1e-9 else 1.0
    target = np.where(has_delta, (np.nan_to_num(delta) - d_mean) / d_std, 0.0)

    cw = _class_weights(y[tr], config.class_weights)

    prev_threads = torch.get_num_threads()
    prev_det = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    live = None
    try:
        if live_dir is not None:
            from dvclive import Live

            live = Live(dir=str(live_dir), save_dvc_exp=False, dvcyaml=None)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = DecisionNet(hidden=tuple(config.hidden), dropout=config.dropout)
        history, best_epoch = _fit(
            net,
            torch.from_numpy(Z[tr]),
            torch.from_numpy(y[tr]),
            torch.from_numpy(target[tr].astype(np.float32)),
            torch.from_numpy(has_delta[tr].astype(np.float32)),
            torch.from_numpy(Z[va]),
            torch.from_numpy(y[va]),
            torch.from_numpy(cw.astype(np.float32)),
            config,
            seed,
            delta_on,
            live,
            progress,
        )
        net.eval()
        with torch.inference_mode():
            val_logits_t, val_delta_t = net(torch.from_numpy(Z[va]))
        val_logits = val_logits_t.double().numpy()
    finally:
        torch.set_num_threads(prev_threads)
        torch.use_deterministic_algorithms(prev_det)

    temperature = fit_temperature(y[va], val_logits)
    cal = classification_metrics(y[va], apply_temperature(val_logits, temperature))
    uncal = classification_metrics(y[va], apply_temperature(val_logits, 1.0))
    seconds = time.perf_counter() - t_start
    metrics: dict[str, Any] = {
        **cal,
        "ece_uncalibrated": uncal["ece"],
        "nll_uncalibrated": uncal["nll"],
        "temperature": temperature,
        "best_epoch": best_epoch,
        "epochs_run": int(len(history)),
        "n_train": int(len(tr)),
        "n_val": int(len(va)),
        "train_seconds": seconds,
    }
    if delta_on:
        vm = has_delta[va]
        if vm.any():
            pred = val_delta_t.double().numpy()[vm] * d_std + d_mean
            metrics["difficulty_delta_mae"] = float(np.abs(pred - delta[va][vm]).mean())
    pcs = per_class_accuracy(y[va], apply_temperature(val_logits, temperature))
    metrics["per_class_recall"] = {
        r.action: (None if np.isnan(r.recall) else float(r.recall)) for r in pcs.itertuples()
    }
    if live is not None:
        for key in ("accuracy", "nll", "ece", "ece_uncalibrated", "macro_f1", "temperature"):
            live.summary[f"val/{key}"] = float(metrics[key])
        live.end()

    metadata = {
        "format": "learnops.mlp/1",
        "features": list(FEATURES),
        "feature_stats": stats.to_dict(),
        "actions": list(ACTIONS),
        "action_index": {a: i for i, a in enumerate(ACTIONS)},
        "architecture": {
            "input": len(FEATURES),
            "hidden": list(config.hidden),
            "outputs": len(ACTIONS),
            "activation": "relu",
            "dropout": config.dropout,
        },
        "temperature": temperature,
        "difficulty_delta": {
            "trained": delta_on,
            "mean": d_mean,
            "std": d_std,
            "n_train": int(has_delta[tr].sum()),
        },
        "class_weights": [float(v) for v in cw],
        "params": config.model_dump(mode="json"),
        "seed": seed,
        "data": {
            "fingerprint": data_fingerprint(decisions),
            "n_rows": int(len(decisions)),
            "action_counts": {a: int((y == i).sum()) for i, a in enumerate(ACTIONS)},
        },
        "split": split.summary(),
        # no wall-clock values: same data + params + seed must give byte-identical artifacts
        "metrics": {k: v for k, v in metrics.items() if k != "train_seconds"},
        "versions": _versions(),
    }
    model = MlpModel(
        net=net,
        stats=stats,
        temperature=temperature,
        delta_trained=delta_on,
        delta_mean=d_mean,
        delta_std=d_std,
        metadata=metadata,
    )
    return TrainResult(
        model=model,
        history=history,
        temperature=temperature,
        metrics=metrics,
        split=split,
        val_y=y[va],
        val_logits=val_logits,
    )


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


def _adam_step(P: torch.Tensor, G: torch.Tensor, lr: float, wd: float) -> Any:
    """One Adam update of P from gradient G (PyTorch semantics, L2 weight decay): step(t)."""
    mom, vel = torch.zeros_like(P), torch.zeros_like(P)
    fused = getattr(torch, "_fused_adam_", None)
    if fused is not None:
        step_t = torch.zeros((), dtype=torch.float32)

        def fused_step(step: int) -> None:
            step_t.fill_(step)
            fused(
                [P], [G], [mom], [vel], [], [step_t],
                lr=lr, beta1=_BETA1, beta2=_BETA2, weight_decay=wd, eps=_EPS,
                amsgrad=False, maximize=False,
            )  # fmt: skip

        return fused_step

    def step_fn(step: int) -> None:
        g = G.add(P, alpha=wd) if wd else G
        mom.lerp_(g, 1.0 - _BETA1)
        vel.mul_(_BETA2).addcmul_(g, g, value=1.0 - _BETA2)
        denom = vel.sqrt().div_(math.sqrt(1.0 - _BETA2**step)).add_(_EPS)
        P.addcdiv_(mom, denom, value=-lr / (1.0 - _BETA1**step))

    return step_fn


def _fit(
    net: DecisionNet,
    X: torch.Tensor,
    y: torch.Tensor,
    target: torch.Tensor,
    delta_mask: torch.Tensor,
    Xv: torch.Tensor,
    yv: torch.Tensor,
    class_w: torch.Tensor,
    config: MlpConfig,
    seed: int,
    delta_on: bool,
    live: Any,
    progress: bool,
) -> tuple[pd.DataFrame, int]:
    """Minibatch Adam with hand-written backprop; restores the best-validation weights into net."""
    flat = _Flat(net)
    ws, bs = flat.p_views[0::2], flat.p_views[1::2]
    n, k = len(X), len(ACTIONS)
    B = config.batch_size
    p_drop = config.dropout
    grads = _GradFn(flat, p_drop, delta_on, B)
    onehot = F.one_hot(y, k).to(torch.float32)
    weighted = bool(config.class_weights)
    row_w = class_w[y].unsqueeze(1)
    tgt = target.unsqueeze(1)
    dmask = (delta_mask * (2.0 * DELTA_LOSS_WEIGHT)).unsqueeze(1)
    gen = torch.Generator().manual_seed(seed)
    adam = _adam_step(flat.P, flat.G, config.lr, config.weight_decay)
    step = 0
    best_loss, best_epoch, best_P = math.inf, 0, flat.P.clone()
    rows: list[dict[str, float]] = []
    epochs = range(1, config.epochs + 1)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(epochs, desc="train mlp", unit="epoch")
        epochs = bar

    for epoch in epochs:
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=gen)
        Xp, OHp, TP, DMp = X[perm], onehot[perm], tgt[perm], dmask[perm]
        RWp = row_w[perm] if weighted else None
        masks = (
            [(torch.rand(n, h, generator=gen) >= p_drop).to(torch.float32) for h in net.hidden]
            if p_drop > 0
            else []
        )
        parts = [Xp.split(B), OHp.split(B)]
        parts.append(TP.split(B) if delta_on else repeat(None))
        parts.append(DMp.split(B) if delta_on else repeat(None))
        parts.append(RWp.split(B) if RWp is not None else repeat(None))
        parts.append(zip(*(m.split(B) for m in masks), strict=True) if masks else repeat(()))
        for xb, ohb, tb, dmb, rwb, mbs in zip(*parts, strict=False):  # repeat() is endless
            grads(xb, ohb, tb, dmb, rwb, mbs)
            step += 1
            adam(step)

        cw = class_w if weighted else None
        logits, _ = _eval_forward(ws, bs, X)
        train_loss = float(F.cross_entropy(logits, y, weight=cw))
        train_acc = float((logits.argmax(1) == y).float().mean())
        vlogits, _ = _eval_forward(ws, bs, Xv)
        val_loss = float(F.cross_entropy(vlogits, yv, weight=cw))
        val_acc = float((vlogits.argmax(1) == yv).float().mean())
        if not math.isfinite(train_loss):
            raise LearnopsError(f"training diverged at epoch {epoch} (loss {train_loss}); lower lr")
        rows.append(
            {
                "epoch": epoch,
                "train_loss": train_loss,
                "train_accuracy": train_acc,
                "val_loss": val_loss,
                "val_accuracy": val_acc,
                "seconds": time.perf_counter() - t0,
            }
        )
        if live is not None:
            live.log_metric("train/loss", train_loss)
            live.log_metric("train/accuracy", train_acc)
            live.log_metric("val/loss", val_loss)
            live.log_metric("val/accuracy", val_acc)
            live.next_step()
        if bar is not None:
            bar.set_postfix(train_loss=f"{train_loss:.4f}", val_loss=f"{val_loss:.4f}")
        if val_loss < best_loss:
            best_loss, best_epoch = val_loss, epoch
            best_P.copy_(flat.P)
        elif epoch - best_epoch >= config.patience:
            break
    if bar is not None:
        bar.close()

    off = 0
    with torch.no_grad():
        for prm in net.parameters():
            k = prm.numel()
            prm.copy_(best_P[off : off + k].view_as(prm))
            off += k
    return pd.DataFrame(rows), best_epoch
