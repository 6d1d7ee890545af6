"""Temperature: samples from one trained MDN at τ = 0.5, 1.0 and 1.5.

Temperature reshapes the mixture as the dream does (wm_fast.mdnrnn.mixture_params and
sample_mdn): mixture weights softmax(logits / τ) and standard deviations σ·√τ. Cold (τ < 1)
sharpens towards the likeliest component with narrow spread — an easy, exploitable dream;
hot (τ > 1) evens the components out and widens them — a harder dream.

    python examples/temperature.py --out temperature.png
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from _common import parse, save
from t_junction import fit
from wm_fast.mdnrnn import mixture_params, sample_mdn


def skewed_data(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """y is -1 with probability 0.7 and +1 with probability 0.3 (plus noise), whatever x is."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, generator=g)
    y = torch.where(torch.rand(n, 1, generator=g) < 0.7, -1.0, 1.0) + 0.15 * torch.randn(n, 1, generator=g)
    return x, y


def main() -> None:
    args = parse(__doc__.splitlines()[0], "temperature.png")
    x, y = skewed_data(2000)
    model = fit(2, x, y, 300 if args.small else 1500)
    n = 2000 if args.small else 20_000
    taus = (0.5, 1.0, 1.5)
    fig, axes = plt.subplots(1, 3, figsize=(9, 3), sharey=True)
    with torch.no_grad():
        logit, mu, logsigma = model(torch.full((n, 1), 0.5))
        for ax, tau in zip(axes, taus):
            z = sample_mdn((logit, mu, logsigma), tau, "shared", generator=torch.Generator().manual_seed(0))
            log_pi, sigma = mixture_params(logit[:1], logsigma[:1], tau, "shared")
            ax.hist(z[:, 0].numpy(), bins=80, range=(-3, 3), density=True, color="C0")
            ax.set_title(f"τ = {tau}: π' = {[round(p, 2) for p in log_pi.exp()[0].tolist()]}", fontsize=8)
            ax.set_xlabel("z")
            print(f"tau={tau}: weights {log_pi.exp()[0].tolist()}, sigmas {sigma[0, :, 0].tolist()}")
    axes[0].set_ylabel("density")
    save(fig, args.out)


if __name__ == "__main__":
    main()
