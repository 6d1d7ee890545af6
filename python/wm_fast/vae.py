"""V: the convolutional VAE of World Models (Ha & Schmidhuber 2018). Model only, no training.

Architecture (as the original `carracing/vae/vae.py`):

    encoder  x (B, 3, 64, 64) in [0, 1]
             conv 32, 64, 128, 256 (kernel 4, stride 2, ReLU)  -> (B, 256, 2, 2) -> flatten 1024
             linear mu, linear logvar                          -> (B, Z) each
    decoder  z (B, Z) -> linear 1024 -> reshape (B, 1024, 1, 1)
             deconv 128 (k5), 64 (k5), 32 (k6) with ReLU, 3 (k6) with sigmoid, all stride 2
                                                               -> (B, 3, 64, 64) in (0, 1)

Loss (as the original): squared error summed over pixels and averaged over the batch, plus
the closed-form KL to N(0, I) summed over latent dimensions, clamped from below at
`kl_tolerance * z_dim` ("free bits") per sample, then averaged over the batch.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

FRAME_SIZE = 64
"""Frames are square RGB images of this side length."""


class ConvVAE(nn.Module):
    """The World Models ConvVAE.

    Args:
        z_dim: latent size Z (32 in the paper).
    """

    def __init__(self, z_dim: int = 32) -> None:
        super().__init__()
        if z_dim <= 0:
            raise ValueError(f"z_dim must be positive, got {z_dim}")
        self.z_dim = int(z_dim)
        self.enc_conv1 = nn.Conv2d(3, 32, 4, stride=2)
        self.enc_conv2 = nn.Conv2d(32, 64, 4, stride=2)
        self.enc_conv3 = nn.Conv2d(64, 128, 4, stride=2)
        self.enc_conv4 = nn.Conv2d(128, 256, 4, stride=2)
        self.fc_mu = nn.Linear(2 * 2 * 256, z_dim)
        self.fc_logvar = nn.Linear(2 * 2 * 256, z_dim)
        self.dec_fc = nn.Linear(z_dim, 1024)
        self.dec_deconv1 = nn.ConvTranspose2d(1024, 128, 5, stride=2)
        self.dec_deconv2 = nn.ConvTranspose2d(128, 64, 5, stride=2)
        self.dec_deconv3 = nn.ConvTranspose2d(64, 32, 6, stride=2)
        self.dec_deconv4 = nn.ConvTranspose2d(32, 3, 6, stride=2)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior parameters of a batch of frames.

        Args:
            x: (B, 3, 64, 64) float in [0, 1].
        Returns:
            mu, logvar: (B, Z) each; logvar is log sigma^2.
        """
        h = F.relu(self.enc_conv1(x))
        h = F.relu(self.enc_conv2(h))
        h = F.relu(self.enc_conv3(h))
        h = F.relu(self.enc_conv4(h))
        h = h.flatten(1)  # (B, 1024)
        return self.fc_mu(h), self.fc_logvar(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Frames from latents.

        Args:
            z: (B, Z).
        Returns:
            (B, 3, 64, 64) float in (0, 1).
        """
        h = self.dec_fc(z).view(-1, 1024, 1, 1)
        h = F.relu(self.dec_deconv1(h))  # (B, 128, 5, 5)
        h = F.relu(self.dec_deconv2(h))  # (B, 64, 13, 13)
        h = F.relu(self.dec_deconv3(h))  # (B, 32, 30, 30)
        return torch.sigmoid(self.dec_deconv4(h))  # (B, 3, 64, 64)

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """Sample z = mu + exp(0.5 * logvar) * eps, eps ~ N(0, I) (global torch RNG).

        Args:
            mu, logvar: (B, Z).
        Returns:
            z: (B, Z), differentiable with respect to mu and logvar.
        """
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode, sample, decode.

        Args:
            x: (B, 3, 64, 64) float in [0, 1].
        Returns:
            recon (B, 3, 64, 64), mu (B, Z), logvar (B, Z).
        """
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) in closed form, summed over latent dimensions.

    Args:
        mu, logvar: (B, Z).
    Returns:
        (B,): -0.5 * sum(1 + logvar - mu^2 - exp(logvar)).
    """
    return -0.5 * torch.sum(1.0 + logvar - mu.pow(2) - logvar.exp(), dim=-1)


def vae_loss(
    recon: torch.Tensor,
    x: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    kl_tolerance: float,
    z_dim: int,
    kl_clamp: Literal["per_sample", "batch"] = "per_sample",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The World Models VAE loss.

    recon_loss = mean over the batch of the squared error summed over all pixels and channels.
    kl         = the KL term with free bits. With `kl_clamp="per_sample"` (the default, what
                 the original does: `tf.maximum` is applied to the per-sample KL vector and
                 `tf.reduce_mean` afterwards) it is mean_b(max(KL_b, kl_tolerance * z_dim)).
                 With `kl_clamp="batch"` it is max(mean_b(KL_b), kl_tolerance * z_dim).
                 `kl_tolerance=0` disables the clamp (KL >= 0 anyway).
    loss       = recon_loss + kl.

    Args:
        recon, x: (B, 3, 64, 64) float.
        mu, logvar: (B, Z).
        kl_tolerance: free nats per latent dimension (0.5 in the paper).
        z_dim: Z.
        kl_clamp: where the clamp is applied, see above.
    Returns:
        loss, recon_loss, kl: scalar tensors.
    """
    recon_loss = (recon - x).pow(2).flatten(1).sum(dim=1).mean()
    kl_b = kl_divergence(mu, logvar)
    floor = float(kl_tolerance) * int(z_dim)
    if kl_clamp == "per_sample":
        kl = torch.clamp(kl_b, min=floor).mean()
    elif kl_clamp == "batch":
        kl = torch.clamp(kl_b.mean(), min=floor)
    else:
        raise ValueError(f"kl_clamp must be 'per_sample' or 'batch', got {kl_clamp!r}")
    return recon_loss + kl, recon_loss, kl


def frames_to_tensor(
    frames: np.ndarray | torch.Tensor, device: torch.device | str | None = None
) -> torch.Tensor:
    """uint8 frames (B, 64, 64, 3) -> float32 (B, 3, 64, 64) in [0, 1].

    Args:
        frames: uint8 numpy array or tensor, (B, 64, 64, 3).
        device: where the result goes (default: where `frames` is, CPU for numpy).
    Raises:
        ValueError: wrong dtype or shape.
    """
    t = torch.from_numpy(np.ascontiguousarray(frames)) if isinstance(frames, np.ndarray) else frames
    if t.dtype != torch.uint8:
        raise ValueError(f"frames must be uint8, got {t.dtype}")
    if t.ndim != 4 or tuple(t.shape[1:]) != (FRAME_SIZE, FRAME_SIZE, 3):
        raise ValueError(f"frames must be (B, {FRAME_SIZE}, {FRAME_SIZE}, 3), got {tuple(t.shape)}")
    if device is not None:
        t = t.to(device, non_blocking=True)
    return t.permute(0, 3, 1, 2).to(torch.float32, memory_format=torch.contiguous_format).div_(255.0)
