"""The decision network (18 → hidden → 5 actions, plus a difficulty_delta head), model bundle."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from learnops.contracts import ACTIONS, FEATURES
from learnops.mlp.features import FeatureStats

__all__ = ["DecisionNet", "MlpModel"]


class DecisionNet(nn.Module):
    """ReLU MLP with dropout; ``forward`` returns (action logits, standardized difficulty_delta)."""

    def __init__(
        self,
        n_in: int = len(FEATURES),
        hidden: tuple[int, ...] = (64, 32, 16),
        n_out: int = len(ACTIONS),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.hidden = tuple(int(h) for h in hidden)
        self.dropout = float(dropout)
        sizes = (n_in, *self.hidden)
        self.layers = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        )
        self.out = nn.Linear(sizes[-1], n_out)
        self.delta = nn.Linear(sizes[-1], 1)
        self.drop = nn.Dropout(self.dropout)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = self.drop(torch.relu(layer(x)))
        return x

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x)
        return self.out(h), self.delta(h).squeeze(-1)


@dataclass
class MlpModel:
    """A trained decision model: network, feature statistics, temperature and metadata."""

    net: DecisionNet
    stats: FeatureStats
    temperature: float = 1.0
    delta_trained: bool = False
    delta_mean: float = 0.0
    delta_std: float = 1.0
    metadata: dict[str, Any] = field(default_factory=dict)
    actions: tuple[str, ...] = ACTIONS
    _np_layers: list[tuple[np.ndarray, np.ndarray]] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.net.eval()
        self.refresh()

    def refresh(self) -> None:
        """Rebuild the cached numpy weights (after changing the network's parameters)."""
        layers = [*self.net.layers, self.out_layer_for_numpy()]
        self._np_layers = [
            (
                m.weight.detach().cpu().numpy().T.astype(np.float64).copy(),
                m.bias.detach().cpu().numpy().astype(np.float64).copy(),
            )
            for m in layers
        ]
        self._mean = self.stats.mean
        self._inv_std = 1.0 / self.stats.std

    def out_layer_for_numpy(self) -> nn.Linear:
        # Output and delta heads stacked: one matmul gives 5 logits + the delta.
        w = torch.cat([self.net.out.weight, self.net.delta.weight], 0)
        b = torch.cat([self.net.out.bias, self.net.delta.bias], 0)
        lin = nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(w)
            lin.bias.copy_(b)
        return lin

    def raw_outputs_np(self, x: np.ndarray) -> np.ndarray:
        """Logits and standardized delta (k + 1 values per row) for raw features, in numpy."""
        z = (x - self._mean) * self._inv_std
        np.clip(z, -self.stats.clip, self.stats.clip, out=z)
        assert self._np_layers is not None  # type narrowing (set in __post_init__)  # nosec B101
        for w, b in self._np_layers[:-1]:
            z = z @ w
            z += b
            np.maximum(z, 0.0, out=z)
        w, b = self._np_layers[-1]
        return z @ w + b

    @torch.inference_mode()
    def logits_and_delta(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Uncalibrated logits (n × 5) and difficulty_delta predictions (n,) for raw features."""
        if len(X) == 0:
            return np.empty((0, len(self.actions))), np.empty(0)
        x = torch.from_numpy(self.stats.transform(X))
        logits, d = self.net(x)
        delta = d.double().numpy() * self.delta_std + self.delta_mean
        return logits.double().numpy(), delta
