"""The variational autoencoder on binarized digits (Lecture 6, 17:45, 1:10:00 to the end).

Who's who in this module (the same names as everywhere in the course):

- ``VAE.prior``      p(z) = N(0, I), z in R^d
- ``VAE.decoder``    p(x | z; theta) = prod_j Bernoulli(x_j; sigmoid(f_theta(z))_j), x in {0, 1}^64
- ``VAE.encoder``    q_phi(z | x) = N(z; mu_phi(x), diag sigma_phi(x)^2), the amortized variational
                     posterior (one network for every x instead of one phi_i per data point)
- the true posterior p(z | x; theta) is *not* here: nothing in a VAE computes it.

All log-probabilities are in nats per image. The training loss is the negative ELBO, a bound,
never "the negative log-likelihood"; ``log_marginal`` estimates log p(x) by importance sampling
with K samples from q_phi(z | x) (the importance-weighted bound, tight as K grows).
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator, Sequence

import torch
from torch import distributions as D
from torch import nn

from .data import N_PIXELS
from .estimators import log_marginal_importance
from .objectives import Estimate, kl_to_standard_normal
from .seeding import with_training_threads
from .validation import as_tensor, check_binary, check_finite, check_ndim, check_positive_int

ACTIVATIONS = {"silu": nn.SiLU, "relu": nn.ReLU, "tanh": nn.Tanh}


@contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    """Run a block with torch's global generator seeded, then put the caller's random state back."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def mlp(n_in: int, n_out: int, hidden: int, layers: int, activation: str) -> nn.Sequential:
    """n_in -> [Linear(hidden) -> activation] * layers -> Linear(n_out)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    check_positive_int(hidden, "hidden")
    if isinstance(layers, bool) or not isinstance(layers, int) or layers < 0:
        raise ValueError(f"layers must be an integer >= 0, got {layers!r}")
    parts: list[nn.Module] = []
    width = n_in
    for _ in range(layers):
        parts += [nn.Linear(width, hidden), ACTIVATIONS[activation]()]
        width = hidden
    parts.append(nn.Linear(width, n_out))
    return nn.Sequential(*parts)


class Encoder(nn.Module):
    """q_phi(z | x) = N(z; mu_phi(x), diag sigma_phi(x)^2): x (N, D) -> a distribution over z (N, d).

    One network outputs [mu, log sigma] for every x: the regression from x_i to its best phi_i
    (1:10:00). ``params(x)`` returns (mu, log_sigma), each (N, d); calling the encoder returns
    the distribution (batch shape (N,), event shape (d,)).
    """

    def __init__(self, data_dim: int, latent_dim: int, hidden: int, layers: int, activation: str):
        super().__init__()
        self.latent_dim = latent_dim
        self.net = mlp(data_dim, 2 * latent_dim, hidden, layers, activation)

    def params(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.net(x).chunk(2, dim=-1)
        return mean, log_std

    def forward(self, x: torch.Tensor) -> D.Independent:
        mean, log_std = self.params(x)
        return gaussian_q(mean, log_std)


class BernoulliDecoder(nn.Module):
    """p(x | z; theta) = prod_j Bernoulli(x_j; sigmoid(f_theta(z))_j): z (..., d) -> a distribution over x (..., D).

    Binarized pixels are 0 or 1, so a Bernoulli is their natural likelihood. A Gaussian on 0/1
    values has a density that grows without bound as its sigma shrinks around them, so its
    "log-likelihood" can be made as large as we like and means nothing.
    """

    def __init__(self, latent_dim: int, data_dim: int, hidden: int, layers: int, activation: str):
        super().__init__()
        self.net = mlp(latent_dim, data_dim, hidden, layers, activation)

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)

    def forward(self, z: torch.Tensor) -> D.Independent:
        return D.Independent(D.Bernoulli(logits=self.net(z), validate_args=False), 1)


def gaussian_q(mean: torch.Tensor, log_std: torch.Tensor) -> D.Independent:
    """N(mean, diag exp(log_std)^2) as a distribution over vectors: mean, log_std (..., d)."""
    return D.Independent(D.Normal(mean, log_std.exp()), 1)


@dataclass(frozen=True)
class ElboTerms:
    """Per-image ELBO and its two parts, in nats: elbo = reconstruction - kl, each (N,).

    reconstruction = E_q[log p(x | z)] (Monte Carlo), kl = KL(q_phi(z | x) || p(z)) (closed form).
    """

    elbo: torch.Tensor
    reconstruction: torch.Tensor
    kl: torch.Tensor


class VAE(nn.Module):
    """A VAE for binarized 8x8 digits: prior p(z) = N(0, I), ``decoder`` p(x | z; theta) (Bernoulli),
    ``encoder`` q_phi(z | x) (diagonal Gaussian). Built from a small config (see ``config``)."""

    def __init__(self, latent_dim: int = 20, hidden: int = 200, layers: int = 2, activation: str = "silu",
                 data_dim: int = N_PIXELS):
        super().__init__()
        check_positive_int(latent_dim, "latent_dim")
        check_positive_int(data_dim, "data_dim")
        self.config = {"latent_dim": latent_dim, "hidden": hidden, "layers": layers,
                       "activation": activation, "data_dim": data_dim}
        self.encoder = Encoder(data_dim, latent_dim, hidden, layers, activation)
        self.decoder = BernoulliDecoder(latent_dim, data_dim, hidden, layers, activation)

    @classmethod
    def from_config(cls, config: dict) -> "VAE":
        """Rebuild a VAE from ``config`` (what ``load_checkpoint`` calls)."""
        allowed = {"latent_dim", "hidden", "layers", "activation", "data_dim"}
        unknown = set(config) - allowed
        if unknown:
            raise ValueError(f"unknown VAE config keys {sorted(unknown)}; expected some of {sorted(allowed)}")
        return cls(**config)

    @property
    def latent_dim(self) -> int:
        return self.config["latent_dim"]

    @property
    def data_dim(self) -> int:
        return self.config["data_dim"]

    @property
    def prior(self) -> D.Independent:
        """p(z) = N(0, I_d)."""
        zeros = torch.zeros(self.latent_dim)
        return D.Independent(D.Normal(zeros, torch.ones(self.latent_dim)), 1)

    def check_x(self, x) -> torch.Tensor:
        """x as a float tensor (N, D) of 0s and 1s, or a clear error saying what to fix."""
        x = check_finite(as_tensor(x, "x"), "x")
        if x.dim() == 1:
            x = x.unsqueeze(0)
        check_ndim(x, "x", 2, "(images, pixels)")
        if x.shape[-1] != self.data_dim:
            raise ValueError(f"x must have {self.data_dim} pixels per image (flattened 8x8), got shape {tuple(x.shape)}")
        return check_binary(x, "x (the Bernoulli decoder's pixels)").float()

    def joint_log_prob(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x, z; theta) = log p(z) + log p(x | z; theta): x (N, D), z (..., N, d) -> (..., N)."""
        return self.prior.log_prob(z) + self.decoder(z).log_prob(x)

    def elbo(self, x, n_samples: int = 1, seed: int | None = None) -> ElboTerms:
        """ELBO(x; theta, phi) = E_{q_phi(z|x)}[log p(x | z)] - KL(q_phi(z | x) || p(z)), per image (N,).

        The expectation uses ``n_samples`` reparameterized draws z = mu + sigma * eps (so the result
        can be differentiated for training); the KL between two Gaussians is exact (closed form).
        ``seed`` fixes the draws without touching the global random state.
        """
        check_positive_int(n_samples, "n_samples")
        with _seeded(seed):
            return self._elbo_terms(self.check_x(x), n_samples)

    def _elbo_terms(self, x: torch.Tensor, n_samples: int = 1) -> ElboTerms:
        """``elbo`` without the argument checks (the training loop's fast path)."""
        mean, log_std = self.encoder.params(x)
        std = log_std.exp()
        z = mean + std * torch.randn((n_samples, *mean.shape))  # reparameterized: (K, N, d)
        reconstruction = self.decoder(z).log_prob(x).mean(0)  # (1/K) sum_k log p(x | z_k)
        kl = kl_to_standard_normal(mean, std)  # closed form, = D.kl_divergence(q, prior)
        return ElboTerms(reconstruction - kl, reconstruction, kl)

    @torch.no_grad()
    def log_marginal(self, x, n_samples: int = 5000, chunk_size: int | None = None, seed: int | None = 0,
                     proposal: D.Distribution | None = None) -> torch.Tensor:
        """log p(x; theta) estimated by importance sampling with K = ``n_samples`` draws per image:
        log (1/K) sum_k p(x, z_k) / q(z_k), z_k ~ q = q_phi(z | x) unless another ``proposal`` (batch (N,)).

        A lower bound on average that tightens as K grows. Drawn ``chunk_size`` at a time (by
        default about 2048 / N, so that each pass through the decoder holds about 2048 (draw,
        image) pairs and stays in the CPU's cache): K = 5000 for all 360 test images needs
        (chunk_size x N x D) floats at once, not (K x N x D).
        """
        x = self.check_x(x)
        q = self.encoder(x) if proposal is None else proposal
        if chunk_size is None:
            chunk_size = max(1, 2048 // x.shape[0])
        with _seeded(seed):
            return log_marginal_importance(lambda z: self.joint_log_prob(x, z), q, n_samples, chunk_size)

    @torch.no_grad()
    def decode(self, z) -> torch.Tensor:
        """The decoder's pixel probabilities sigmoid(f_theta(z)): z (..., d) -> (..., D) in [0, 1]."""
        z = check_finite(as_tensor(z, "z"), "z")
        if z.shape[-1] != self.latent_dim:
            raise ValueError(f"z must have last dimension {self.latent_dim} (the latent size), got shape {tuple(z.shape)}")
        return torch.sigmoid(self.decoder.logits(z))

    @torch.no_grad()
    def encode_mean(self, x) -> torch.Tensor:
        """The encoder's mean mu_phi(x): x (N, D) -> (N, d). Where q_phi(z | x) puts each image."""
        return self.encoder.params(self.check_x(x))[0]

    @torch.no_grad()
    def sample(self, n: int, seed: int | None = None) -> torch.Tensor:
        """Generation (32:10) uses theta only: z ~ p(z), then the decoder's pixel probabilities (n, D)."""
        check_positive_int(n, "n")
        with _seeded(seed):
            z = self.prior.sample((n,))
        return self.decode(z)


# ----------------------------------------------------------------------------------------------
# Training


@dataclass(frozen=True)
class Recipe:
    """How the course trains its VAE: everything that decides the result, in one place.

    Minibatch Adam on the negative ELBO (nats per image, averaged over the batch), learning rate
    decayed along a half cosine to 0, and one regularizer against overfitting 1,437 images:
    each time an image is used its grey levels are binarized at a random threshold in
    0.5 +- ``threshold_jitter`` (strokes come out a little thicker or thinner). ``kl_weight``
    scales the KL term (1 is the ELBO; notebook 07's question 1 tries 0).
    """

    latent_dim: int = 20
    hidden: int = 200
    layers: int = 2
    activation: str = "silu"
    n_steps: int = 6000
    batch_size: int = 128
    lr: float = 2e-3
    threshold_jitter: float = 0.2
    kl_weight: float = 1.0
    seed: int = 0

    def model_config(self) -> dict:
        return {"latent_dim": self.latent_dim, "hidden": self.hidden, "layers": self.layers,
                "activation": self.activation, "data_dim": N_PIXELS}


def jittered_binarize(grey: torch.Tensor, jitter: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """x_j = 1[grey_j >= t], one threshold t ~ U(0.5 - jitter, 0.5 + jitter) per image: grey (N, D) -> (N, D)."""
    if not 0 <= jitter < 0.5:
        raise ValueError(f"threshold_jitter must lie in [0, 0.5), got {jitter}")
    t = 0.5 + jitter * (2 * torch.rand(grey.shape[0], 1, generator=generator) - 1)
    return (grey >= t).float()


def training_step(model: VAE, x_batch: torch.Tensor, optimizer: torch.optim.Optimizer,
                  kl_weight: float = 1.0) -> dict[str, float]:
    """One step of minibatch training on the ELBO (the loop of notebook 07, section 3).

    For binary images x_batch (B, 64): z_b = mu_phi(x_b) + sigma_phi(x_b) * eps_b ~ q_phi(z | x_b), one
    reparameterized draw per image (``rsample``, so the reconstruction's gradient reaches phi);
    reconstruction_b = log p(x_b | z_b; theta) = sum over the 64 pixels of log Bernoulli;
    kl_b = KL(q_phi(z | x_b) || N(0, I)) in closed form;
    loss = -(1/B) sum_b (reconstruction_b - kl_weight * kl_b), nats per image (kl_weight = 1: minus the ELBO).
    Then ``optimizer.zero_grad()``, ``loss.backward()``, ``optimizer.step()``: theta and phi move together.
    Returns {"loss", "elbo", "reconstruction", "kl"}: batch averages (floats, nats per image).
    With the same random state it is exactly one step of ``train_vae`` (tests/test_training_step.py).
    """
    if not isinstance(model, VAE):
        raise ValueError(f"model must be a vae.VAE, got {type(model).__name__}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ValueError(f"optimizer must be a torch.optim.Optimizer over the model's parameters, got {type(optimizer).__name__}")
    if isinstance(kl_weight, bool) or not isinstance(kl_weight, (int, float)) or not kl_weight >= 0:
        raise ValueError(f"kl_weight must be a number >= 0 (1 for the ELBO), got {kl_weight!r}")
    x = model.check_x(x_batch)
    mean, log_std = model.encoder.params(x)
    std = log_std.exp()
    z = D.Independent(D.Normal(mean, std), 1).rsample()  # (B, d): mean + std * eps, differentiable in phi
    reconstruction = model.decoder(z).log_prob(x)  # (B,): summed over the 64 pixels
    kl = kl_to_standard_normal(mean, std)  # (B,), closed form
    reconstruction, kl = reconstruction.mean(), kl.mean()
    loss = -(reconstruction - kl_weight * kl)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    rec, kl = float(reconstruction.detach()), float(kl.detach())
    return {"loss": float(loss.detach()), "elbo": rec - kl, "reconstruction": rec, "kl": kl}


LR_SCHEDULES = {"cosine": lambda f: 0.5 * (1 + math.cos(math.pi * f)), "constant": lambda f: 1.0}


@dataclass
class TrainingHistory:
    """What ``train_vae`` recorded. ``steps``: the steps at which both sets were evaluated;
    ``train``/``test``: {"elbo", "reconstruction", "kl"} -> one float per evaluation (nats per
    image, averaged over the whole set); ``seconds``: wall time of the training loop."""

    steps: list[int] = field(default_factory=list)
    train: dict[str, list[float]] = field(default_factory=dict)
    test: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    n_steps: int = 0


@torch.no_grad()
def evaluate_elbo(model: VAE, x, n_samples: int = 1, seed: int = 0) -> dict[str, float]:
    """Averages over the images of x of the ELBO and its two terms (nats per image), fixed noise."""
    was_training = model.training
    model.eval()
    terms = model.elbo(x, n_samples=n_samples, seed=seed)
    model.train(was_training)
    return {name: float(getattr(terms, name).mean()) for name in ("elbo", "reconstruction", "kl")}


@with_training_threads
def train_vae(recipe: Recipe, grey_train: torch.Tensor, x_test: torch.Tensor | None = None,
              x_train_binary: torch.Tensor | None = None, eval_every: int = 250,
              time_budget: float | None = None, progress: bool = True,
              lr_schedule: str = "cosine") -> tuple[VAE, TrainingHistory]:
    """Train a VAE by ``recipe`` on grey training digits (N, 64) in [0, 1] (binarized per batch).

    Each step: a minibatch, the per-image ELBO averaged over it, loss = -(reconstruction -
    kl_weight * KL), one Adam step (``training.fit``: progress bar, clear stop on NaN). Every
    ``eval_every`` steps the ELBO and its terms on the whole training set (``x_train_binary``,
    thresholded at 0.5) and on ``x_test`` are recorded (one fixed noise draw, so curves are
    smooth). With ``time_budget`` (seconds) training stops when the budget is used up and the
    learning rate follows elapsed time instead of steps (the benchmark's equal-wall-time
    comparison). ``lr_schedule="constant"`` keeps the learning rate at ``recipe.lr`` (the benchmark's
    ablation). Single-threaded runs of the same recipe give the same model.
    """
    from .training import fit

    grey = check_finite(as_tensor(grey_train, "grey_train"), "grey_train")
    check_ndim(grey, "grey_train", 2, "(images, pixels)")
    if grey.numel() and (grey.min() < 0 or grey.max() > 1):
        raise ValueError("grey_train must hold grey levels in [0, 1] (load_digits(binarized=False)); "
                         "it is binarized afresh at every step")
    check_positive_int(recipe.n_steps, "n_steps")
    check_positive_int(recipe.batch_size, "batch_size")
    if not recipe.lr > 0:
        raise ValueError(f"lr must be positive, got {recipe.lr}")
    if not recipe.kl_weight >= 0:
        raise ValueError(f"kl_weight must be >= 0, got {recipe.kl_weight}")
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {sorted(LR_SCHEDULES)}, got {lr_schedule!r}")
    generator = torch.Generator().manual_seed(recipe.seed)
    torch.manual_seed(recipe.seed)
    model = VAE.from_config(recipe.model_config())
    for name, x in (("x_test", x_test), ("x_train_binary", x_train_binary)):
        if x is not None:
            model.check_x(x)
    history = TrainingHistory()
    n, bs = grey.shape[0], min(recipe.batch_size, grey.shape[0])
    order, pos = torch.randperm(n, generator=generator), 0

    def loss_fn(step: int) -> dict[str, torch.Tensor]:
        nonlocal order, pos
        if pos + bs > n:  # a new epoch: reshuffle
            order, pos = torch.randperm(n, generator=generator), 0
        x = jittered_binarize(grey[order[pos:pos + bs]], recipe.threshold_jitter, generator)
        pos += bs
        terms = model._elbo_terms(x)
        reconstruction, kl = terms.reconstruction.mean(), terms.kl.mean()
        return {"loss": -(reconstruction - recipe.kl_weight * kl), "ELBO": reconstruction.detach() - kl.detach()}

    def record(step: int) -> dict[str, float]:
        history.steps.append(step)
        for name, x in (("train", x_train_binary), ("test", x_test)):
            if x is not None:
                for k, v in evaluate_elbo(model, x).items():
                    getattr(history, name).setdefault(k, []).append(v)
        return {"test ELBO": history.test["elbo"][-1]} if x_test is not None else {}

    start = time.perf_counter()
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr, fused=True)  # fused: same Adam, ~15% faster on a CPU
    fit(model, loss_fn, n_steps=recipe.n_steps if time_budget is None else 10**8, optimizer=optimizer,
        desc="training the VAE", progress=progress, lr_schedule=LR_SCHEDULES[lr_schedule],
        time_budget=time_budget, callback=record, callback_every=eval_every)
    history.seconds = time.perf_counter() - start
    history.n_steps = history.steps[-1]
    model.eval()
    return model, history


# ----------------------------------------------------------------------------------------------
# Per-datapoint refinement (notebook 06): semi-amortized inference


@dataclass
class Refinement:
    """Per-image variational parameters after refinement, and how the ELBO climbed.

    mean, log_std: (N, d), the refined phi_i; steps: the step counts at which the ELBO was
    measured; elbo: (len(steps), N) ELBO per image at those steps (steps[0] = 0 is the encoder's
    own q_phi(z | x)), each with ``eval_samples`` fixed draws; eval_eps: those draws, the noise
    (eval_samples, N, d) of every recorded ELBO (``elbo_draws_of_q`` with it gives the per-draw
    values, for Monte Carlo standard errors).
    """

    mean: torch.Tensor
    log_std: torch.Tensor
    steps: list[int]
    elbo: torch.Tensor
    eval_eps: torch.Tensor | None = None

    @property
    def q(self) -> D.Independent:
        return gaussian_q(self.mean, self.log_std)


def elbo_of_q(model: VAE, x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """ELBO of q = N(mean, diag exp(log_std)^2) for each image, with given noise eps (K, N, d):
    (1/K) sum_k [log p(x, z_k) - log q(z_k)], z_k = mean + exp(log_std) * eps_k. Returns (N,)."""
    z = mean + log_std.exp() * eps
    return (model.joint_log_prob(x, z) - gaussian_q(mean, log_std).log_prob(z)).mean(0)


def elbo_draws_of_q(model: VAE, x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor, eps: torch.Tensor,
                    chunk_size: int = 20) -> torch.Tensor:
    """The K one-draw ELBO estimates log p(x, z_k) - log q(z_k), z_k = mean + exp(log_std) * eps_k,
    for noise eps (K, N, d), ``chunk_size`` draws at a time (activations small enough to stay in the
    CPU's cache: about twice as fast as all 200 at once): (K, N). Their average over k is ``elbo_of_q``; their spread gives its Monte Carlo standard error, std / sqrt(K). Two q's
    evaluated with the same eps give paired draws, whose differences have a much smaller spread."""
    out = []
    for e in eps.split(chunk_size):
        z = mean + log_std.exp() * e
        out.append(model.joint_log_prob(x, z) - gaussian_q(mean, log_std).log_prob(z))
    return torch.cat(out)


@with_training_threads
def refine(model: VAE, x, n_steps: int = 200, lr: float = 0.005, n_samples: int = 8,
           record_at: list[int] | None = None, eval_samples: int = 200, seed: int | Sequence[int] = 0) -> Refinement:
    """Per-datapoint refinement: start at the encoder's phi(x) = (mu, log sigma) and take ``n_steps``
    Adam steps on each image's own ELBO (``n_samples`` fresh draws per step), decoder fixed.

    Adam works coordinate-wise and the images' ELBOs share no parameters, so refining a batch of
    N images together is exactly N separate optimizations, done at once. The ELBO is measured
    (with ``eval_samples`` fixed draws, the same at every step) at the steps in ``record_at``.
    ``seed``: one seed for the batch's noise, or one seed per image (N of them): image i then gets
    the noise that ``refine(model, x[i:i+1], ..., seed=seed[i])`` would draw, so a batch refines each
    image as its own call would (up to the round-off of batched arithmetic).
    """
    x = model.check_x(x)
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 0:
        raise ValueError(f"n_steps must be an integer >= 0, got {n_steps!r}")
    check_positive_int(n_samples, "n_samples")
    check_positive_int(eval_samples, "eval_samples")
    record = sorted(set(record_at if record_at is not None else [0, n_steps]) | {0, n_steps})
    if record[0] < 0 or record[-1] > n_steps:
        raise ValueError(f"record_at must lie in [0, n_steps={n_steps}], got {record_at}")
    if isinstance(seed, int) and not isinstance(seed, bool):
        generators = [torch.Generator().manual_seed(seed)]
    else:
        seeds = list(seed)
        if len(seeds) != x.shape[0] or not all(isinstance(v, int) and not isinstance(v, bool) for v in seeds):
            raise ValueError(f"seed must be an integer or one integer per image ({x.shape[0]}), got {seed!r}")
        generators = [torch.Generator().manual_seed(v) for v in seeds]

    def noise(samples: int) -> torch.Tensor:  # (samples, N, d)
        if len(generators) == 1:
            return torch.randn((samples, *mean.shape), generator=generators[0])
        return torch.cat([torch.randn((samples, 1, mean.shape[1]), generator=g) for g in generators], 1)

    with torch.no_grad():
        mean, log_std = model.encoder.params(x)
    mean, log_std = mean.clone().requires_grad_(True), log_std.clone().requires_grad_(True)
    eval_eps = noise(eval_samples)
    optimizer = torch.optim.Adam([mean, log_std], lr=lr)
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():  # theta (and the encoder) stay fixed
        p.requires_grad_(False)
    elbos = []
    try:
        for step in range(n_steps + 1):
            if step in record:
                with torch.no_grad():
                    elbos.append(elbo_draws_of_q(model, x, mean, log_std, eval_eps).mean(0))
            if step == n_steps:
                break
            eps = noise(n_samples)
            loss = -elbo_of_q(model, x, mean, log_std, eps).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    finally:
        for p, flag in zip(model.parameters(), flags):  # as they were
            p.requires_grad_(flag)
    return Refinement(mean.detach(), log_std.detach(), record, torch.stack(elbos), eval_eps)


@with_training_threads
def fit_encoder(model: VAE, grey_train, n_steps: int = 600, lr: float = 0.02, batch_size: int = 128,
                threshold_jitter: float = 0.2, seed: int = 0) -> Encoder:
    """Amortized inference for a FIXED decoder (the form of the CS236 notes): a fresh encoder f_phi
    (the model's architecture, initialized with torch seed ``seed``) trained by

        max_phi  sum_i ELBO(x_i; theta, f_phi(x_i)),  theta (``model``) frozen,

    ELBO(x; theta, (mu, log sigma)) = log p(x | z; theta) - KL(N(mu, sigma^2) || N(0, I)), z = mu + sigma * eps,
    one draw per image. Minibatch Adam (``batch_size`` images of grey_train (N, 64) in [0, 1],
    binarized afresh as the course recipe does, ``jittered_binarize``), learning rate ``lr`` decayed
    along a half cosine to 0 over ``n_steps``. Minibatches, thresholds and eps come from one
    generator seeded with ``seed``; the global random state is left as it was. No parameter of
    ``model`` changes. Returns the trained encoder (eval mode), an ``Encoder``: x (N, 64) -> q.
    """
    if not isinstance(model, VAE):
        raise ValueError(f"model must be a vae.VAE (its decoder is the fixed theta), got {type(model).__name__}")
    grey = check_finite(as_tensor(grey_train, "grey_train"), "grey_train")
    check_ndim(grey, "grey_train", 2, "(images, pixels)")
    if grey.shape[-1] != model.data_dim or len(grey) == 0:
        raise ValueError(f"grey_train must be (N >= 1, {model.data_dim}) grey digits, got shape {tuple(grey.shape)}")
    if grey.min() < 0 or grey.max() > 1:
        raise ValueError("grey_train must hold grey levels in [0, 1] (data.load_digits().x_train); "
                         "it is binarized afresh at every step")
    check_positive_int(n_steps, "n_steps")
    check_positive_int(batch_size, "batch_size")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    cfg = model.config
    with _seeded(seed):
        encoder = Encoder(cfg["data_dim"], cfg["latent_dim"], cfg["hidden"], cfg["layers"], cfg["activation"])
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(encoder.parameters(), lr=lr, fused=True)  # fused: the same Adam, faster on a CPU
    flags = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)  # theta fixed: gradients only for the new encoder's weights
    try:
        for step in range(n_steps):
            optimizer.param_groups[0]["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / n_steps))
            x = jittered_binarize(grey[torch.randint(len(grey), (batch_size,), generator=generator)],
                                  threshold_jitter, generator)
            mean, log_std = encoder.params(x)
            std = log_std.exp()
            z = mean + std * torch.randn(mean.shape, generator=generator)
            kl = 0.5 * (std ** 2 + mean ** 2 - 1 - 2 * log_std).sum(-1)  # KL(q || N(0, I)), closed form
            elbo = model.decoder(z).log_prob(x) - kl
            loss = -elbo.mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
    return encoder.eval()


# ----------------------------------------------------------------------------------------------
# Trained models, cached


RECIPES = {
    "course": Recipe(),
    "2d": Recipe(latent_dim=2, n_steps=5000),
    "2d-ae": Recipe(latent_dim=2, n_steps=5000, kl_weight=0.0),  # notebook 07: the 2-D recipe without the KL, as long
}


def trained_vae(name: str = "course", cache: bool = True, progress: bool = True, with_history: bool = False):
    """The course's trained VAE ``name`` ("course": latent 20; "2d": latent 2, for the explorer; "2d-ae":
    the 2-D recipe with kl_weight = 0 and the same steps, an autoencoder, for notebook 07's comparison).

    Loaded from the cache (``checkpoints.cache_dir()``) when a checkpoint made with the same
    recipe is there; otherwise trained (about 10-15 s) on the fixed split, with the training and
    test ELBO recorded, and saved with that history. So notebook 06 trains the course model once
    and notebook 07 (and the app) load it. A checkpoint from another recipe or architecture is
    retrained over, never loaded silently. Two kernels asking for the same model at once (a
    class on one hub, parallel test workers) take turns under a file lock: one trains, the other
    loads. Returns the model, or (model, TrainingHistory) with ``with_history``.
    """
    from .checkpoints import cache_dir, exclusive, load_checkpoint, save_checkpoint

    if name not in RECIPES:
        raise ValueError(f"name must be one of {sorted(RECIPES)}, got {name!r}")
    recipe = RECIPES[name]
    if not cache:
        return _train_by_recipe(recipe, progress, with_history)
    path = cache_dir() / f"vae-{name}.pt"
    wanted = {**recipe.model_config(), "recipe": asdict(recipe)}
    with exclusive(path):  # another kernel training this model right now: wait for it, then load
        if path.exists():
            try:
                model, config = load_checkpoint(path, lambda c: VAE.from_config(
                    {k: v for k, v in c.items() if k not in ("recipe", "history")}))
                if {k: v for k, v in config.items() if k != "history"} == wanted and "history" in config:
                    history = TrainingHistory(**config["history"])
                    return (model.eval(), history) if with_history else model.eval()
            except (ValueError, TypeError):
                pass  # corrupt or from another version: train again below
        model, history = _train_by_recipe(recipe, progress, True)
        try:
            save_checkpoint(path, model, {**wanted, "history": asdict(history)})
        except OSError as exc:  # a shared cache this user may only read (a class's hub): keep it in memory
            import warnings

            warnings.warn(f"the trained model {name!r} could not be saved in {path.parent} ({exc.strerror or exc}): "
                          "it is kept in memory for this kernel only and trained again next time. On a class hub, "
                          "the instructor fills the shared cache once: python3 dev.py hub --prepare-models",
                          stacklevel=2)
    return (model, history) if with_history else model


def recipe_ablation() -> dict:
    """What each extra of the course recipe buys, as ``benchmarks/run.py --only ablation`` measured it
    (vae_lesson/ablation.json): {"n_steps", "seed", "logpx_samples", "rows": {name: {"test_elbo",
    "test_logpx", "train_elbo", and for each ablation "elbo_gain", "logpx_gain" (course minus the
    ablation, nats per image, paired over the test images) with their "_se"}}}."""
    import json
    from importlib.resources import files

    table = json.loads(files("vae_lesson").joinpath("ablation.json").read_text())
    if "course recipe" not in table.get("rows", {}):
        raise ValueError("vae_lesson/ablation.json has no 'course recipe' row: run benchmarks/run.py --only ablation")
    return table


def _train_by_recipe(recipe: Recipe, progress: bool, with_history: bool):
    """``train_vae`` on the fixed split: grey training digits, binarized train and test sets for the curves."""
    from .data import load_digits

    grey, binary = load_digits(), load_digits(binarized=True)
    model, history = train_vae(recipe, grey.x_train, x_test=binary.x_test, x_train_binary=binary.x_train,
                               progress=progress)
    return (model, history) if with_history else model


def amortization_gaps(encoder_elbo: torch.Tensor, refined_elbo: torch.Tensor,
                      log_px: torch.Tensor) -> dict[str, Estimate]:
    """Averages over images, with standard errors, of the two gaps (nats per image):

    approximation gap = log p(x) - refined ELBO   (a diagonal Gaussian cannot fit p(z | x) exactly)
    amortization gap  = refined ELBO - encoder ELBO (one network instead of a phi_i per image)
    total             = log p(x) - encoder ELBO.
    """
    parts = {"approximation": log_px - refined_elbo, "amortization": refined_elbo - encoder_elbo,
             "total": log_px - encoder_elbo}
    n = encoder_elbo.numel()
    return {k: Estimate(v.mean(), v.std() / math.sqrt(n)) for k, v in parts.items()}
