"""A T-junction: one Gaussian predicts the mean (straight ahead), a 2-component MDN both turns.

A car approaching a junction turns left (y = -1) or right (y = +1) with equal chance; y is
known only up to small noise. A model that outputs one Gaussian (trained by MSE / its NLL)
predicts y ≈ 0 — straight into the wall. A mixture density network trained with
wm_fast.mdnrnn.mdn_nll puts one component on each turn.

    python examples/t_junction.py --out t_junction.png
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from torch import nn

from _common import parse, save
from wm_fast.mdnrnn import mdn_nll, sample_mdn


class TinyMDN(nn.Module):
    """x (B, 1) → mixture over y (1 dim) with K components: logits (B, K), mu, logsigma (B, K, 1)."""

    def __init__(self, k: int):
        super().__init__()
        self.k = k
        self.net = nn.Sequential(nn.Linear(1, 32), nn.Tanh(), nn.Linear(32, 3 * k))

    def forward(self, x):
        out = self.net(x)
        return out[:, : self.k], out[:, self.k : 2 * self.k, None], out[:, 2 * self.k :, None]


def junction_data(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """x = distance to the junction in [0, 1]; y = lateral position after it: ±x (spreading)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, generator=g)
    turn = torch.randint(0, 2, (n, 1), generator=g) * 2.0 - 1.0
    y = turn * x + 0.05 * torch.randn(n, 1, generator=g)
    return x, y


def fit(k: int, x, y, steps: int, seed: int = 0) -> TinyMDN:
    torch.manual_seed(seed)
    model = TinyMDN(k)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        logit, mu, logsigma = model(x)
        loss = mdn_nll(logit, mu, logsigma, y, "shared").mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def main() -> None:
    args = parse(__doc__.splitlines()[0], "t_junction.png")
    steps = 300 if args.small else 1000
    x, y = junction_data(2000)
    single, mixture = fit(1, x, y, steps), fit(2, x, y, steps)
    xs = torch.linspace(0, 1, 400)[:, None]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.3), sharey=True)
    with torch.no_grad():
        for ax, model, title in ((axes[0], single, "one Gaussian"), (axes[1], mixture, "MDN, K = 2")):
            logit, mu, logsigma = model(xs)
            z = sample_mdn((logit, mu, logsigma), 1.0, "shared", generator=torch.Generator().manual_seed(1))
            ax.scatter(x[:, 0], y[:, 0], s=2, c="0.75", label="data")
            ax.scatter(xs[:, 0], z[:, 0], s=3, c="C3", label="model samples")
            for j in range(model.k):
                ax.plot(xs[:, 0], mu[:, j, 0], lw=2, label=f"μ_{j}")
            ax.set_title(title)
            ax.set_xlabel("distance past the junction")
        nll = [float(mdn_nll(*m(x), y, "shared").mean()) for m in (single, mixture)]
    axes[0].set_ylabel("lateral position (−1 left, +1 right)")
    axes[1].legend(fontsize=7, loc="upper left")
    print(f"mean NLL: one Gaussian {nll[0]:.3f}, MDN {nll[1]:.3f} (nats; lower is better)")
    save(fig, args.out)


if __name__ == "__main__":
    main()
