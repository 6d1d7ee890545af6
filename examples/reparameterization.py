"""The reparameterization trick, numerically.

We want d/dmu and d/dsigma of E[f(z)] with z ~ N(mu, sigma^2) and f(z) = z^2, whose exact
values are 2*mu and 2*sigma (since E[z^2] = mu^2 + sigma^2).

- Reparameterized: z = mu + sigma * eps (wm_fast.vae.ConvVAE.reparameterize), eps ~ N(0, 1):
  autograd differentiates through z, and the Monte-Carlo gradient converges to the truth.
- A plain sample (torch.distributions.Normal(mu, sigma).sample()) is a constant to autograd:
  no gradient reaches mu or sigma at all.

    python examples/reparameterization.py --out reparameterization.png
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from _common import parse, save
from wm_fast.vae import ConvVAE


def gradients(n: int, mu0: float = 1.5, sigma0: float = 0.7, seed: int = 0) -> tuple[float, float]:
    """Monte-Carlo estimates of d/dmu and d/dsigma of E[z^2] through z = mu + sigma*eps."""
    torch.manual_seed(seed)
    mu = torch.tensor(mu0, requires_grad=True)
    sigma = torch.tensor(sigma0, requires_grad=True)
    logvar = 2 * torch.log(sigma)
    z = ConvVAE.reparameterize(mu.expand(n), logvar.expand(n))
    (z**2).mean().backward()
    return float(mu.grad), float(sigma.grad)


def plain_sample_has_no_gradient(mu0: float = 1.5, sigma0: float = 0.7) -> bool:
    mu = torch.tensor(mu0, requires_grad=True)
    z = torch.distributions.Normal(mu, sigma0).sample((100,))
    return not z.requires_grad


def main() -> None:
    args = parse(__doc__.splitlines()[0], "reparameterization.png")
    mu0, sigma0 = 1.5, 0.7
    sizes = [10, 100, 1000] if args.small else [10, 30, 100, 300, 1000, 3000, 10_000, 100_000]
    est = [gradients(n, mu0, sigma0) for n in sizes]
    assert plain_sample_has_no_gradient(), "a plain sample should carry no gradient"
    print(f"d/dmu  with n={sizes[-1]}: {est[-1][0]:.4f} (exact {2 * mu0})")
    print(f"d/dsigma with n={sizes[-1]}: {est[-1][1]:.4f} (exact {2 * sigma0})")
    print("plain Normal(mu, sigma).sample(): requires_grad = False, no gradient reaches mu")

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ax.semilogx(sizes, [e[0] for e in est], "o-", label="d/dμ via z = μ + σε")
    ax.semilogx(sizes, [e[1] for e in est], "s-", label="d/dσ via z = μ + σε")
    ax.axhline(2 * mu0, ls="--", c="C0", lw=0.8, label="exact 2μ")
    ax.axhline(2 * sigma0, ls="--", c="C1", lw=0.8, label="exact 2σ")
    ax.axhline(0, c="k", lw=1.5, label="plain sample: no gradient")
    ax.set_xlabel("Monte-Carlo samples")
    ax.set_ylabel("gradient of E[z²]")
    ax.set_title("Reparameterization: gradients flow through z")
    ax.legend(fontsize=7)
    save(fig, args.out)


if __name__ == "__main__":
    main()
