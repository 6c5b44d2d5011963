"""vae_lesson.vae: the VAE's distributions, ELBO, importance-weighted bounds and log p(x) (against
1-D quadrature), input checks, checkpoints, the training recipe, per-datapoint refinement,
amortization gaps and the cached trained models. Tiny models only (hidden 16, one layer)."""
import copy
import math
import statistics

import pytest
import torch
import torch.nn.functional as F
from torch import distributions as D

import vae_lesson
from vae_lesson import vae as vae_mod
from vae_lesson.checkpoints import load_checkpoint, save_checkpoint
from vae_lesson.data import load_digits
from vae_lesson.vae import (VAE, Recipe, amortization_gaps, elbo_draws_of_q, elbo_of_q, jittered_binarize,
                            refine, train_vae, trained_vae)

TINY = dict(hidden=16, layers=1)


# ----------------------------------------------------------------------------------------------
# Fixtures and independent references


@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.fixture(scope="module")
def binary():
    return load_digits(binarized=True)


def untrained(latent_dim: int = 2, seed: int = 0) -> VAE:
    torch.manual_seed(seed)
    return VAE(latent_dim=latent_dim, **TINY)


@pytest.fixture(scope="module")
def trained_1d(digits):
    """A VAE with a 1-D latent, briefly trained (300 steps), so p(z | x) is narrow and off 0."""
    vae_lesson.seed_everything(0)
    model, _ = train_vae(Recipe(latent_dim=1, n_steps=300, batch_size=64, **TINY), digits.x_train,
                         progress=False)
    return model


@pytest.fixture(scope="module")
def trained_2d(digits, binary):
    """A VAE with a 2-D latent trained 200 steps, with its history (evaluated every 50 steps)."""
    vae_lesson.seed_everything(0)
    return train_vae(Recipe(latent_dim=2, n_steps=200, batch_size=64, **TINY), digits.x_train,
                     x_test=binary.x_test, x_train_binary=binary.x_train, eval_every=50, progress=False)


def bernoulli_log_lik(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """sum_j [x_j log sigmoid(l_j) + (1 - x_j) log sigmoid(-l_j)], by hand."""
    return (x * F.logsigmoid(logits) + (1 - x) * F.logsigmoid(-logits)).sum(-1)


GRID = torch.linspace(-10.0, 10.0, 20001, dtype=torch.float64)


def quadrature_1d(model: VAE, x: torch.Tensor):
    """For a 1-D latent, by quadrature on z in [-10, 10] (20001 points, float64):
    log p(x) = log int N(z; 0, 1) p(x | z) dz, and the ELBO and reconstruction of the encoder's q,
    int q(z) [log p(x, z) - log q(z)] dz and int q(z) log p(x | z) dz. Each (N,)."""
    assert model.latent_dim == 1
    md = copy.deepcopy(model).double()
    xd = x.double()
    dz = GRID[1] - GRID[0]
    with torch.no_grad():
        log_lik = bernoulli_log_lik(md.decoder.net(GRID[:, None])[:, None, :], xd).T  # (N, G)
        log_prior = -0.5 * GRID ** 2 - 0.5 * math.log(2 * math.pi)
        log_px = torch.logsumexp(log_lik + log_prior, dim=1) + dz.log()
        mean, log_std = md.encoder.net(xd).chunk(2, dim=-1)  # (N, 1) each
        std = log_std.exp()
        log_q = -0.5 * ((GRID - mean) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)  # (N, G)
        q_dz = log_q.exp() * dz
        recon = (q_dz * log_lik).sum(1)
        elbo = (q_dz * (log_lik + log_prior - log_q)).sum(1)
    return log_px, elbo, recon


# ----------------------------------------------------------------------------------------------
# The three distributions


def test_encoder_is_a_diagonal_gaussian_over_z(binary):
    """encoder(x): Normal with batch (N,), event (d,), mean and std from params() = (mu, log sigma)."""
    model = untrained(latent_dim=3)
    x = binary.x_test[:5]
    q = model.encoder(x)
    assert q.batch_shape == (5,) and q.event_shape == (3,)
    mu, log_std = model.encoder.params(x)
    assert mu.shape == log_std.shape == (5, 3)
    out = model.encoder.net(x)
    torch.testing.assert_close(q.mean, out[:, :3])
    torch.testing.assert_close(q.stddev, out[:, 3:].exp())
    z = torch.randn(5, 3)
    ref = D.Normal(out[:, :3], out[:, 3:].exp()).log_prob(z).sum(-1)
    torch.testing.assert_close(q.log_prob(z), ref)


def test_decoder_is_a_product_of_bernoullis_over_pixels(binary):
    """decoder(z): batch (..., ) event (64,), log_prob = sum of per-pixel Bernoulli log-probs."""
    model = untrained(latent_dim=2)
    z = torch.randn(7, 4, 2)
    p = model.decoder(z)
    assert p.batch_shape == (7, 4) and p.event_shape == (64,)
    x = binary.x_test[:4]
    logits = model.decoder.net(z)
    torch.testing.assert_close(p.log_prob(x), bernoulli_log_lik(logits, x))
    torch.testing.assert_close(p.mean, torch.sigmoid(logits))


def test_prior_is_a_standard_normal():
    """prior: N(0, I_d) with event shape (d,), no batch."""
    model = untrained(latent_dim=4)
    prior = model.prior
    assert prior.batch_shape == () and prior.event_shape == (4,)
    z = torch.randn(10, 4)
    ref = (-0.5 * z ** 2 - 0.5 * math.log(2 * math.pi)).sum(-1)
    torch.testing.assert_close(prior.log_prob(z), ref)


def test_joint_log_prob_is_prior_plus_likelihood(binary):
    """joint_log_prob(x, z) for z (K, N, d) is (K, N): log N(z; 0, I) + Bernoulli log-lik."""
    model = untrained(latent_dim=2)
    x = binary.x_test[:3]
    z = torch.randn(5, 3, 2)
    got = model.joint_log_prob(x, z)
    assert got.shape == (5, 3)
    ref = D.Normal(0.0, 1.0).log_prob(z).sum(-1) + bernoulli_log_lik(model.decoder.net(z), x)
    torch.testing.assert_close(got, ref)


# ----------------------------------------------------------------------------------------------
# ELBO


def test_elbo_terms_by_hand(binary):
    """With seed s, reconstruction = (1/S) sum_s log p(x | mu + sigma eps_s) with eps drawn by
    torch.manual_seed(s); kl = kl_divergence(encoder(x), prior); elbo = reconstruction - kl."""
    model = untrained(latent_dim=2)
    x = binary.x_test[:6]
    terms = model.elbo(x, n_samples=4, seed=3)
    assert terms.elbo.shape == terms.reconstruction.shape == terms.kl.shape == (6,)

    with torch.no_grad():
        out = model.encoder.net(x)
        mu, std = out[:, :2], out[:, 2:].exp()
        torch.manual_seed(3)
        eps = torch.randn(4, 6, 2)
        z = mu + std * eps
        recon = bernoulli_log_lik(model.decoder.net(z), x).mean(0)
        kl_closed = 0.5 * (std ** 2 + mu ** 2 - 1 - 2 * std.log()).sum(-1)
        kl_torch = D.kl_divergence(model.encoder(x), model.prior)
    torch.testing.assert_close(terms.reconstruction.detach(), recon)
    torch.testing.assert_close(terms.kl.detach(), kl_torch)
    torch.testing.assert_close(terms.kl.detach(), kl_closed)
    torch.testing.assert_close(terms.elbo, terms.reconstruction - terms.kl, rtol=0, atol=0)


def test_elbo_matches_quadrature_in_expectation(trained_1d, binary):
    """For a 1-D latent the exact ELBO and reconstruction of q are integrals; the Monte Carlo
    terms with many samples agree within a few standard errors, and the KL is exact."""
    model = trained_1d
    x = binary.x_test[:20]
    _, elbo_q, recon_q = quadrature_1d(model, x)
    S = 4000
    with torch.no_grad():
        terms = model.elbo(x, n_samples=S, seed=1)
        single = model.elbo(x.repeat(400, 1), n_samples=1, seed=2).reconstruction.view(400, 20)
    se = single.std(0) / math.sqrt(S)  # standard error of the S-sample mean, per image
    z_recon = (terms.reconstruction.double() - recon_q) / se.double()
    assert z_recon.abs().max() < 5, z_recon
    z_elbo = (terms.elbo.double() - elbo_q) / se.double()
    assert z_elbo.abs().max() < 5, z_elbo


def test_elbo_averages_independent_draws(binary):
    """n_samples = 16 averages 16 independent draws: across seeds its spread is about 1/4 of the
    one-sample spread (it would be 1 if the same draw were reused)."""
    model = untrained(latent_dim=2)
    x = binary.x_test[:1]
    with torch.no_grad():
        one = torch.stack([model.elbo(x, n_samples=1, seed=s).elbo for s in range(300)])
        sixteen = torch.stack([model.elbo(x, n_samples=16, seed=s).elbo for s in range(300)])
    ratio = (sixteen.std() / one.std()).item()
    assert 0.18 < ratio < 0.33, ratio
    assert abs(sixteen.mean() - one.mean()) < 4 * one.std() / math.sqrt(300)


def test_elbo_seed_is_reproducible_and_leaves_the_global_rng_alone(binary):
    """seed= fixes the draws (same seed, same values; another seed, other values) and leaves
    torch's global random state as it was; seed=None draws from (and advances) the global state."""
    model = untrained()
    x = binary.x_test[:4]
    state = torch.get_rng_state()
    a = model.elbo(x, n_samples=3, seed=5).elbo
    b = model.elbo(x, n_samples=3, seed=5).elbo
    c = model.elbo(x, n_samples=3, seed=6).elbo
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    torch.manual_seed(5)
    d = model.elbo(x, n_samples=3).elbo
    assert torch.equal(a, d)
    assert not torch.equal(torch.get_rng_state(), state)


def test_elbo_is_differentiable_in_encoder_and_decoder(binary):
    """The ELBO is reparameterized: its gradient reaches every encoder and decoder parameter."""
    model = untrained()
    model.elbo(binary.x_test[:8], seed=0).elbo.sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("n", [0, -1, 1.5, True])
def test_elbo_bad_n_samples(n, binary):
    with pytest.raises(ValueError, match="n_samples"):
        untrained().elbo(binary.x_test[:2], n_samples=n)


# ----------------------------------------------------------------------------------------------
# Importance-weighted bound and log p(x)


def test_log_marginal_matches_quadrature(trained_1d, binary):
    """K = 5000 importance samples estimate log p(x) within 0.1 nats of the quadrature value for
    every image and seed, and on average the estimate is not above the truth beyond noise."""
    model = trained_1d
    x = binary.x_test[:30]
    log_px, _, _ = quadrature_1d(model, x)
    est = torch.stack([model.log_marginal(x, n_samples=5000, seed=s) for s in range(6)]).double()
    assert est.shape == (6, 30)
    diff = est - log_px
    assert diff.abs().max() < 0.1, diff.abs().max()
    assert diff.mean() < 3 * diff.std() / math.sqrt(diff.numel()) + 1e-4


def test_log_marginal_chunk_size_only_changes_the_draws(trained_1d, binary):
    """Different chunk sizes (250, 1000, 333, larger than K) give estimates that are all close to
    the quadrature log p(x) and to each other. (The draws themselves may differ by chunking: torch
    draws normals in blocks, so the same seed split differently is not the same stream.)"""
    model = trained_1d
    x = binary.x_test[:15]
    log_px, _, _ = quadrature_1d(model, x)
    ests = [model.log_marginal(x, n_samples=2000, chunk_size=c, seed=0).double() for c in (250, 1000, 333, 5000)]
    for e in ests:
        assert (e - log_px).abs().max() < 0.1
        assert (e - ests[0]).abs().max() < 0.15


def test_log_marginal_is_seeded_and_leaves_the_global_rng_alone(binary):
    """Same seed: same estimate; another seed: another one; the global RNG state is untouched."""
    model = untrained()
    x = binary.x_test[:3]
    state = torch.get_rng_state()
    a = model.log_marginal(x, n_samples=300, chunk_size=64)
    b = model.log_marginal(x, n_samples=300, chunk_size=64)
    c = model.log_marginal(x, n_samples=300, chunk_size=64, seed=1)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_log_marginal_with_the_prior_as_proposal(binary):
    """proposal= replaces q_phi(z | x): naive Monte Carlo from p(z) (batch (N,)) also reaches the
    quadrature log p(x) of an untrained 1-D model, and differs from the default estimate's draws."""
    model = untrained(latent_dim=1)
    x = binary.x_test[:10]
    log_px, _, _ = quadrature_1d(model, x)
    prior = D.Independent(D.Normal(torch.zeros(10, 1), torch.ones(10, 1)), 1)
    est = model.log_marginal(x, n_samples=5000, proposal=prior).double()
    assert (est - log_px).abs().max() < 0.1
    assert not torch.equal(est, model.log_marginal(x, n_samples=5000).double())


def test_log_marginal_of_the_test_set_in_bounded_memory(binary, monkeypatch):
    """K = 2000 for all 360 test images with chunk_size = 100: the decoder never sees more than
    100 draws at once (20 calls), and the result is finite, (360,), above the ELBO on average."""
    model = untrained(latent_dim=2)
    x = binary.x_test
    assert x.shape[0] == 360
    leading = []
    original = model.decoder.forward

    def recording(z):
        leading.append(z.shape[0])
        return original(z)

    monkeypatch.setattr(model.decoder, "forward", recording)
    est = model.log_marginal(x, n_samples=2000, chunk_size=100)
    assert est.shape == (360,) and torch.isfinite(est).all()
    assert leading == [100] * 20
    leading.clear()
    model.log_marginal(x, n_samples=2000)  # the default: about 2048 (draw, image) pairs per pass
    assert leading == [5] * 400
    monkeypatch.undo()
    with torch.no_grad():
        elbo = model.elbo(x, n_samples=50, seed=1).elbo
    assert est.mean() > elbo.mean()


# ----------------------------------------------------------------------------------------------
# Input checks, decode, encode_mean, sample


def test_check_x_refuses_grey_levels_with_a_hint(binary):
    model = untrained()
    with pytest.raises(ValueError, match="binarize"):
        model.check_x(torch.full((2, 64), 0.5))


@pytest.mark.parametrize("shape", [(3, 63), (3, 65), (64, 3), (2, 8, 8)])
def test_check_x_refuses_wrong_shapes(shape):
    with pytest.raises(ValueError, match="64 pixels|dimension"):
        untrained().check_x(torch.zeros(shape))


def test_check_x_refuses_nan():
    x = torch.zeros(2, 64)
    x[1, 5] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        untrained().check_x(x)


def test_check_x_accepts_one_image_and_other_dtypes(binary):
    """A 1-D image is one image (1, 64); int, bool and list inputs become float tensors."""
    model = untrained()
    one = binary.x_test[0]
    got = model.check_x(one)
    assert got.shape == (1, 64) and got.dtype == torch.float32
    torch.testing.assert_close(got[0], one)
    assert model.elbo(one, seed=0).elbo.shape == (1,)
    for x in (one.long(), one.bool(), one.tolist()):
        assert torch.equal(model.check_x(x), got)


def test_decode_gives_pixel_probabilities():
    """decode(z) = sigmoid(decoder logits) = the Bernoulli means, shape (..., 64), in [0, 1]."""
    model = untrained(latent_dim=2)
    z = 3 * torch.randn(4, 5, 2)
    p = model.decode(z)
    assert p.shape == (4, 5, 64)
    assert (p >= 0).all() and (p <= 1).all()
    torch.testing.assert_close(p, D.Bernoulli(logits=model.decoder.net(z).detach()).probs)
    assert not p.requires_grad


@pytest.mark.parametrize("bad", [torch.zeros(4, 3), torch.zeros(1), torch.zeros(2, 2, 1)])
def test_decode_rejects_a_wrong_latent_size(bad):
    with pytest.raises(ValueError, match="last dimension 2"):
        untrained(latent_dim=2).decode(bad)


def test_encode_mean_is_the_encoders_mean(binary):
    model = untrained(latent_dim=3)
    x = binary.x_test[:7]
    mu = model.encode_mean(x)
    assert mu.shape == (7, 3)
    torch.testing.assert_close(mu, model.encoder(x).mean.detach())


def test_sample_decodes_prior_draws():
    """sample(n, seed) = decode(z) for z ~ N(0, I) drawn after torch.manual_seed(seed); (n, 64) in
    [0, 1]; reproducible and leaving the global RNG alone; n must be positive."""
    model = untrained(latent_dim=2)
    state = torch.get_rng_state()
    s = model.sample(6, seed=4)
    assert torch.equal(torch.get_rng_state(), state)
    assert s.shape == (6, 64) and (s >= 0).all() and (s <= 1).all()
    torch.manual_seed(4)
    z = torch.randn(6, 2)
    torch.testing.assert_close(s, torch.sigmoid(model.decoder.net(z)).detach())
    assert torch.equal(s, model.sample(6, seed=4))
    assert not torch.equal(s, model.sample(6, seed=5))
    with pytest.raises(ValueError, match="n"):
        model.sample(0)


# ----------------------------------------------------------------------------------------------
# Config and checkpoints


def test_from_config_round_trip():
    """from_config(model.config) rebuilds the same architecture (same config, same parameter shapes)."""
    model = VAE(latent_dim=3, hidden=12, layers=2, activation="tanh")
    again = VAE.from_config(model.config)
    assert again.config == model.config == {"latent_dim": 3, "hidden": 12, "layers": 2,
                                            "activation": "tanh", "data_dim": 64}
    assert {k: v.shape for k, v in again.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    assert isinstance(again.encoder.net[1], torch.nn.Tanh)


def test_from_config_unknown_key():
    with pytest.raises(ValueError, match="unknown VAE config keys.*latent_size"):
        VAE.from_config({"latent_size": 2})


@pytest.mark.parametrize("kwargs, word", [({"latent_dim": 0}, "latent_dim"), ({"activation": "gelu"}, "activation"),
                                          ({"layers": -1}, "layers"), ({"hidden": 0}, "hidden")])
def test_bad_architecture(kwargs, word):
    with pytest.raises(ValueError, match=word):
        VAE(**{**TINY, **kwargs})


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path, binary):
    """save_checkpoint + load_checkpoint(path, VAE.from_config): same config, same ELBO values,
    same decoded images, same log p(x) estimate."""
    model = untrained(latent_dim=2, seed=3)
    path = save_checkpoint(tmp_path / "vae.pt", model, model.config)
    loaded, config = load_checkpoint(path, VAE.from_config)
    assert config == model.config
    x = binary.x_test[:5]
    z = torch.randn(4, 2)
    assert torch.equal(loaded.elbo(x, seed=0).elbo, model.elbo(x, seed=0).elbo)
    assert torch.equal(loaded.decode(z), model.decode(z))
    assert torch.equal(loaded.log_marginal(x, 200), model.log_marginal(x, 200))
    assert not torch.equal(untrained(latent_dim=2, seed=4).decode(z), model.decode(z))  # outputs are not trivial


def test_checkpoint_of_another_latent_size_is_a_clear_error(tmp_path):
    """A latent-2 checkpoint loaded into a latent-3 VAE raises ValueError naming the mismatch."""
    model = untrained(latent_dim=2)
    path = save_checkpoint(tmp_path / "vae.pt", model, model.config)
    with pytest.raises(ValueError, match="does not fit this model"):
        load_checkpoint(path, lambda c: VAE.from_config({**c, "latent_dim": 3}))


# ----------------------------------------------------------------------------------------------
# jittered_binarize


def test_jitter_zero_is_thresholding_at_one_half(digits):
    grey = digits.x_train[:100]
    assert torch.equal(jittered_binarize(grey, 0.0), (grey >= 0.5).float())


def test_jittered_binarize_uses_one_threshold_per_image(digits):
    """Each row is grey >= t for a single t in [0.3, 0.7]: every on-pixel is at least as grey as
    every off-pixel, on >= 0.3, off < 0.7; the thresholds do vary between images."""
    grey = digits.x_train[:300]
    x = jittered_binarize(grey, 0.2, torch.Generator().manual_seed(1))
    assert x.shape == grey.shape and set(x.unique().tolist()) <= {0.0, 1.0}
    for g, row in zip(grey, x):
        on, off = g[row == 1], g[row == 0]
        if len(on) and len(off):
            assert off.max() < on.min()
        if len(on):
            assert on.min() >= 0.3 - 1e-6
        if len(off):
            assert off.max() < 0.7 + 1e-6
    differs = (x != (grey >= 0.5).float()).any(1)
    thicker = (x.sum(1) > (grey >= 0.5).sum(1))
    thinner = (x.sum(1) < (grey >= 0.5).sum(1))
    assert differs.sum() > 50 and thicker.any() and thinner.any()


def test_jittered_binarize_generator_reproducibility(digits):
    grey = digits.x_train[:50]
    a = jittered_binarize(grey, 0.2, torch.Generator().manual_seed(7))
    b = jittered_binarize(grey, 0.2, torch.Generator().manual_seed(7))
    c = jittered_binarize(grey, 0.2, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("jitter", [-0.1, 0.5, 0.7, float("nan")])
def test_jittered_binarize_bad_jitter(jitter, digits):
    with pytest.raises(ValueError, match="threshold_jitter"):
        jittered_binarize(digits.x_train[:2], jitter)


# ----------------------------------------------------------------------------------------------
# train_vae


def test_train_vae_history_and_improvement(trained_2d, binary):
    """Evaluated at 0, 50, ..., 200: both sets have one value per evaluation for each term, elbo =
    reconstruction - kl, the test ELBO climbs by > 5 nats, and the last record is the returned model."""
    model, h = trained_2d
    assert h.steps == [0, 50, 100, 150, 200] and h.n_steps == 200
    for part in (h.train, h.test):
        assert set(part) == {"elbo", "reconstruction", "kl"}
        assert all(len(v) == 5 for v in part.values())
        for e, r, k in zip(part["elbo"], part["reconstruction"], part["kl"]):
            assert e == pytest.approx(r - k, abs=1e-4)
    assert h.test["elbo"][-1] > h.test["elbo"][0] + 5
    assert h.train["elbo"][-1] > h.train["elbo"][0] + 5
    assert h.seconds > 0
    assert not model.training
    with torch.no_grad():
        final = model.elbo(binary.x_test, seed=0).elbo.mean().item()
    assert h.test["elbo"][-1] == pytest.approx(final, abs=1e-5)


def test_train_vae_is_deterministic_and_evaluation_does_not_disturb_it(trained_2d, digits, binary):
    """Training the same recipe again, with or without evaluations (another eval_every), gives the
    very same parameters; another seed gives other parameters."""
    model, _ = trained_2d
    recipe = Recipe(latent_dim=2, n_steps=200, batch_size=64, **TINY)
    again, h = train_vae(recipe, digits.x_train, x_test=binary.x_test, eval_every=75, progress=False)
    assert h.steps == [0, 75, 150, 200] and h.train == {} and len(h.test["elbo"]) == 4
    bare, h_bare = train_vae(recipe, digits.x_train, progress=False)
    assert h_bare.steps == [0, 200] and h_bare.test == {} and h_bare.train == {}
    for k, v in model.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k
        assert torch.equal(v, bare.state_dict()[k]), k
    other, _ = train_vae(Recipe(latent_dim=2, n_steps=200, batch_size=64, seed=1, **TINY), digits.x_train,
                         progress=False)
    assert any(not torch.equal(v, other.state_dict()[k]) for k, v in model.state_dict().items())


def test_train_vae_time_budget(digits):
    """With a 1 s budget training stops within 2 s of it, having made some steps, and the
    history ends at the steps actually completed."""
    recipe = Recipe(latent_dim=2, n_steps=10, batch_size=64, **TINY)  # n_steps ignored under a budget
    model, h = train_vae(recipe, digits.x_train, eval_every=10**6, time_budget=1.0, progress=False)
    assert 1.0 <= h.seconds < 1.0 + 2.0
    assert h.n_steps > 10 and h.steps == [0, h.n_steps]


@pytest.mark.parametrize("bad", ["raw", "negative", "nan", "1d"])
def test_train_vae_refuses_bad_grey_input(bad, digits):
    grey = digits.x_train[:100].clone()
    if bad == "raw":
        grey = grey * 16  # raw 0-16 levels
    elif bad == "negative":
        grey[0, 0] = -0.1
    elif bad == "nan":
        grey[3, 3] = float("nan")
    else:
        grey = grey[0]
    with pytest.raises(ValueError, match="grey_train"):
        train_vae(Recipe(latent_dim=2, n_steps=5, **TINY), grey, progress=False)


def test_train_vae_refuses_grey_test_data(digits):
    with pytest.raises(ValueError, match="binary"):
        train_vae(Recipe(latent_dim=2, n_steps=5, **TINY), digits.x_train, x_test=digits.x_test, progress=False)


@pytest.mark.parametrize("change, word", [({"kl_weight": -0.5}, "kl_weight"), ({"n_steps": 0}, "n_steps"),
                                          ({"lr": 0.0}, "lr"), ({"batch_size": 0}, "batch_size"),
                                          ({"threshold_jitter": 0.5}, "threshold_jitter")])
def test_train_vae_bad_recipe(change, word, digits):
    with pytest.raises(ValueError, match=word):
        train_vae(Recipe(**{**dict(latent_dim=2, n_steps=5, **TINY), **change}), digits.x_train[:200],
                  progress=False)


def test_kl_weight_zero_is_allowed_and_lets_the_kl_grow(trained_2d, digits, binary):
    """kl_weight = 0 trains (a plain autoencoder with noise): its test KL ends far above the
    KL of the same recipe with kl_weight = 1."""
    _, h1 = trained_2d
    _, h0 = train_vae(Recipe(latent_dim=2, n_steps=200, batch_size=64, kl_weight=0.0, **TINY), digits.x_train,
                      x_test=binary.x_test, eval_every=100, progress=False)
    assert h0.test["kl"][0] == pytest.approx(h1.test["kl"][0])  # same start
    assert h0.test["kl"][-1] > 3 * h1.test["kl"][-1]


# ----------------------------------------------------------------------------------------------
# Per-datapoint refinement


def test_elbo_of_q_by_hand(binary):
    """elbo_of_q = (1/S) sum_s [log p(z_s) + log p(x | z_s) - log q(z_s)], z_s = mean + sigma eps_s,
    computed image by image with torch.distributions."""
    model = untrained(latent_dim=2)
    x = binary.x_test[:4]
    mean, log_std = torch.randn(4, 2), 0.3 * torch.randn(4, 2)
    eps = torch.randn(5, 4, 2)
    got = elbo_of_q(model, x, mean, log_std, eps)
    assert got.shape == (4,)
    for i in range(4):
        q = D.Normal(mean[i], log_std[i].exp())
        terms = []
        for s in range(5):
            z = mean[i] + log_std[i].exp() * eps[s, i]
            log_lik = D.Bernoulli(logits=model.decoder.net(z)).log_prob(x[i]).sum()
            terms.append(D.Normal(0.0, 1.0).log_prob(z).sum() + log_lik - q.log_prob(z).sum())
        torch.testing.assert_close(got[i], torch.stack(terms).mean())


def test_elbo_of_q_gradient_matches_an_explicit_elbo(binary):
    """The gradient of elbo_of_q in (mean, log_std), the direction refine follows, equals that of
    the explicit ELBO log N(z; 0, I) + log p(x | z) - log N(z; mean, sigma^2), z = mean + sigma eps
    (the entropy term included)."""
    model = untrained(latent_dim=2)
    x = binary.x_test[:3]
    eps = torch.randn(6, 3, 2)
    mean0, log_std0 = torch.randn(3, 2), 0.3 * torch.randn(3, 2)
    mean, log_std = mean0.clone().requires_grad_(), log_std0.clone().requires_grad_()
    elbo_of_q(model, x, mean, log_std, eps).sum().backward()
    m, ls = mean0.clone().requires_grad_(), log_std0.clone().requires_grad_()
    z = m + ls.exp() * eps
    log_q = (-0.5 * eps ** 2 - ls - 0.5 * math.log(2 * math.pi)).sum(-1)
    log_joint = (-0.5 * z ** 2 - 0.5 * math.log(2 * math.pi)).sum(-1) + bernoulli_log_lik(model.decoder.net(z), x)
    (log_joint - log_q).mean(0).sum().backward()
    torch.testing.assert_close(mean.grad, m.grad)
    torch.testing.assert_close(log_std.grad, ls.grad)


def test_refine_raises_the_elbo(trained_2d, binary):
    """200 Adam steps per image raise the ELBO on average (and for most images), both on the fixed
    evaluation draws and when the refined q is evaluated afresh with independent draws."""
    model, _ = trained_2d
    x = binary.x_test[:12]
    r = refine(model, x, n_steps=200, record_at=[50, 100])
    assert r.steps == [0, 50, 100, 200]
    assert r.elbo.shape == (4, 12) and r.mean.shape == r.log_std.shape == (12, 2)
    gain = r.elbo[-1] - r.elbo[0]
    assert gain.mean() > 0.03 and (gain > 0).float().mean() >= 0.75, gain
    # independent check: 2000 fresh draws, one at a time, paired between the two q's
    eps = torch.randn(2000, 12, 2, generator=torch.Generator().manual_seed(123))
    with torch.no_grad():
        mu, log_std = model.encoder.params(x)
        before = torch.stack([elbo_of_q(model, x, mu, log_std, e[None]) for e in eps])  # (2000, 12)
        after = torch.stack([elbo_of_q(model, x, r.mean, r.log_std, e[None]) for e in eps])
    diff = (after - before).mean(1)  # per draw, averaged over images
    assert diff.mean() > 5 * diff.std() / math.sqrt(2000), (diff.mean(), diff.std())
    before = before.mean(0)
    torch.testing.assert_close(r.elbo[0], before, atol=0.5, rtol=0)  # 200 vs 2000 draws of the same q
    assert isinstance(r.q, D.Independent) and torch.equal(r.q.mean, r.mean)


def test_elbo_draws_of_q_are_the_draws_that_refine_averages(binary):
    """elbo_draws_of_q gives one ELBO estimate per draw, (S, N), each equal to elbo_of_q with that single
    draw, in any chunking; with the refinement's own eval_eps their averages are its recorded ELBOs
    (the encoder's q at step 0, the refined q at the end)."""
    model = untrained()
    x = binary.x_test[:6]
    r = refine(model, x, n_steps=15, eval_samples=50, seed=2)
    assert r.eval_eps.shape == (50, 6, 2)
    with torch.no_grad():
        mu, log_std = model.encoder.params(x)
        draws = elbo_draws_of_q(model, x, mu, log_std, r.eval_eps, chunk_size=7)
        one_by_one = torch.stack([elbo_of_q(model, x, mu, log_std, e[None]) for e in r.eval_eps])
        refined = elbo_draws_of_q(model, x, r.mean, r.log_std, r.eval_eps)
    assert draws.shape == (50, 6)
    torch.testing.assert_close(draws, one_by_one, atol=1e-5, rtol=0)
    assert draws.std(0).min() > 0.01  # a real spread between draws, not one value repeated
    torch.testing.assert_close(draws.mean(0), r.elbo[0], atol=1e-4, rtol=0)
    torch.testing.assert_close(refined.mean(0), r.elbo[-1], atol=1e-4, rtol=0)
    assert not torch.allclose(refined.mean(0), draws.mean(0), atol=1e-3)  # refinement moved the q's


def test_refine_steps_always_include_zero_and_n_steps(binary):
    model = untrained()
    x = binary.x_test[:3]
    assert refine(model, x, n_steps=10).steps == [0, 10]
    assert refine(model, x, n_steps=10, record_at=[10, 3, 3]).steps == [0, 3, 10]
    with pytest.raises(ValueError, match="record_at"):
        refine(model, x, n_steps=10, record_at=[11])
    with pytest.raises(ValueError, match="n_steps"):
        refine(model, x, n_steps=-1)


def test_refine_with_zero_steps_returns_the_encoders_q(binary):
    """n_steps = 0: the refined parameters are the encoder's (mu, log sigma), and the single
    recorded ELBO is that q's ELBO, close to the model's own Monte Carlo ELBO."""
    model = untrained()
    x = binary.x_test[:5]
    r = refine(model, x, n_steps=0, eval_samples=2000)
    out = model.encoder.net(x).detach()
    torch.testing.assert_close(r.mean, out[:, :2], rtol=0, atol=0)
    torch.testing.assert_close(r.log_std, out[:, 2:], rtol=0, atol=0)
    assert r.steps == [0] and r.elbo.shape == (1, 5)
    with torch.no_grad():
        ref = model.elbo(x, n_samples=4000, seed=9).elbo
    torch.testing.assert_close(r.elbo[0], ref, atol=0.3, rtol=0)


def test_refine_keeps_the_model_fixed_and_trainable(binary):
    """Refinement changes no parameter of the model, leaves them requiring gradients, is
    reproducible by seed and does not touch the global random state."""
    model = untrained()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = torch.get_rng_state()
    a = refine(model, binary.x_test[:4], n_steps=20, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.requires_grad for p in model.parameters())
    b = refine(model, binary.x_test[:4], n_steps=20, seed=3)
    c = refine(model, binary.x_test[:4], n_steps=20, seed=4)
    assert torch.equal(a.mean, b.mean) and not torch.equal(a.mean, c.mean)


def test_refine_restores_each_parameters_own_requires_grad(binary):
    """refine puts every parameter's requires_grad back as it was: a model frozen by the caller stays
    frozen, a partly frozen one keeps its pattern (it used to set them all to True)."""
    model = untrained().requires_grad_(False)
    refine(model, binary.x_test[:2], n_steps=2)
    assert not any(p.requires_grad for p in model.parameters())
    model = untrained()
    model.decoder.requires_grad_(False)
    refine(model, binary.x_test[:2], n_steps=2)
    assert all(p.requires_grad for p in model.encoder.parameters())
    assert not any(p.requires_grad for p in model.decoder.parameters())


def test_refine_refuses_grey_images(digits):
    with pytest.raises(ValueError, match="binar"):
        refine(untrained(), digits.x_test[:2], n_steps=1)


# ----------------------------------------------------------------------------------------------
# Amortization gaps


def test_amortization_gaps_by_hand():
    """Means and standard errors (sample std with n - 1, over sqrt(n)) of the three gaps, computed
    with the statistics module; approximation + amortization = total."""
    enc = torch.tensor([-50.0, -42.0, -61.5, -47.25, -55.0])
    ref = torch.tensor([-49.0, -41.5, -59.0, -47.0, -53.5])
    lpx = torch.tensor([-48.0, -41.0, -57.5, -46.5, -53.0])
    gaps = amortization_gaps(enc, ref, lpx)
    assert set(gaps) == {"approximation", "amortization", "total"}
    parts = {"approximation": lpx - ref, "amortization": ref - enc, "total": lpx - enc}
    for name, v in parts.items():
        values = v.tolist()
        value, se = gaps[name]
        assert float(value) == pytest.approx(statistics.fmean(values), abs=1e-6)
        assert float(se) == pytest.approx(statistics.stdev(values) / math.sqrt(5), abs=1e-6)
    assert float(gaps["approximation"].value + gaps["amortization"].value) == pytest.approx(
        float(gaps["total"].value), abs=1e-6)
    assert float(gaps["amortization"].value) == pytest.approx(1.15, abs=1e-6)


# ----------------------------------------------------------------------------------------------
# trained_vae: the cache


TINY_RECIPES = {"tiny": Recipe(latent_dim=2, n_steps=20, batch_size=64, **TINY)}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache folder, a tiny recipe, and a count of the trainings."""
    monkeypatch.setenv("VAE_LESSON_CACHE", str(tmp_path))
    monkeypatch.setattr(vae_mod, "RECIPES", dict(TINY_RECIPES))
    calls = []
    original = vae_mod.train_vae

    def counting(*args, **kwargs):
        calls.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(vae_mod, "train_vae", counting)
    return tmp_path, calls


def _no_training(*args, **kwargs):
    raise AssertionError("trained again although a good checkpoint was cached")


def test_trained_vae_trains_once_then_loads(cache, monkeypatch, binary):
    """The first call trains and writes vae-tiny.pt; the second loads it (training would fail)
    and returns the same parameters, in eval mode."""
    folder, calls = cache
    first = trained_vae("tiny", progress=False)
    assert calls == [TINY_RECIPES["tiny"]]
    path = folder / "vae-tiny.pt"
    assert path.is_file()
    monkeypatch.setattr(vae_mod, "train_vae", _no_training)
    second = trained_vae("tiny", progress=False)
    assert not second.training
    for k, v in first.state_dict().items():
        assert torch.equal(v, second.state_dict()[k]), k
    x = binary.x_test[:3]
    assert torch.equal(first.elbo(x, seed=0).elbo, second.elbo(x, seed=0).elbo)


def test_trained_vae_asked_twice_at_once_trains_once(cache):
    """Two kernels (here two threads) that need the same model at the same time: one trains under
    the cache's file lock, the other waits and loads the checkpoint; both get the same model."""
    import threading

    folder, calls = cache
    models, started = [], threading.Barrier(2)

    def ask():
        started.wait()
        models.append(trained_vae("tiny", progress=False))

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(models) == 2 and len(calls) == 1
    assert torch.equal(models[0].decode(torch.zeros(1, 2)), models[1].decode(torch.zeros(1, 2)))


def test_trained_vae_without_cache_writes_nothing(cache):
    folder, calls = cache
    trained_vae("tiny", cache=False, progress=False)
    trained_vae("tiny", cache=False, progress=False)
    assert len(calls) == 2
    assert list(folder.iterdir()) == []


def test_trained_vae_retrains_over_a_corrupt_file(cache, monkeypatch):
    folder, calls = cache
    (folder / "vae-tiny.pt").write_bytes(b"not a checkpoint at all")
    model = trained_vae("tiny", progress=False)
    assert len(calls) == 1
    monkeypatch.setattr(vae_mod, "train_vae", _no_training)
    again = trained_vae("tiny", progress=False)  # the corrupt file was replaced by a good one
    assert torch.equal(model.decode(torch.zeros(1, 2)), again.decode(torch.zeros(1, 2)))


def test_trained_vae_retrains_over_another_recipe(cache, monkeypatch):
    """A checkpoint of the same architecture but made by another recipe (another seed) is not
    loaded: the model is trained by the current recipe, and its checkpoint replaces the old one."""
    folder, calls = cache
    other = Recipe(latent_dim=2, n_steps=20, batch_size=64, seed=5, **TINY)
    old_model = untrained(latent_dim=2, seed=11)
    from dataclasses import asdict
    save_checkpoint(folder / "vae-tiny.pt", old_model, {**other.model_config(), "recipe": asdict(other)})
    model = trained_vae("tiny", progress=False)
    assert len(calls) == 1
    assert not torch.equal(model.decode(torch.zeros(1, 2)), old_model.decode(torch.zeros(1, 2)))
    _, config = load_checkpoint(folder / "vae-tiny.pt",
                                lambda c: VAE.from_config({k: v for k, v in c.items() if k not in ("recipe", "history")}))
    assert config["recipe"]["seed"] == 0


def test_trained_vae_retrains_over_another_architecture(cache):
    """A checkpoint of a latent-3 VAE under the same name is retrained over, giving a latent-2 VAE."""
    folder, calls = cache
    big = untrained(latent_dim=3)
    save_checkpoint(folder / "vae-tiny.pt", big, big.config)
    model = trained_vae("tiny", progress=False)
    assert len(calls) == 1 and model.latent_dim == 2


def test_trained_vae_unknown_name(cache):
    with pytest.raises(ValueError, match="tiny"):
        trained_vae("course-typo", progress=False)


def test_course_recipes_are_as_documented():
    """The real recipes: "course" has a 20-D latent, "2d" a 2-D one (for the explorer)."""
    assert vae_mod.RECIPES["course"].latent_dim == 20
    assert vae_mod.RECIPES["2d"].latent_dim == 2


def test_trained_vae_keeps_its_training_history(cache):
    """with_history returns the history of the run that made the model, the same after a reload
    from the cache (what notebook 07 shows when notebook 06 trained the model)."""
    model, history = trained_vae("tiny", progress=False, with_history=True)
    assert history.steps[0] == 0 and history.steps[-1] == history.n_steps
    assert len(history.test["elbo"]) == len(history.train["elbo"]) == len(history.steps)
    again, loaded = trained_vae("tiny", progress=False, with_history=True)
    assert loaded == history
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


# ----------------------------------------------------------------------------------------------
# Notebook 06's loops and their package twins: refine, fit_encoder


def _refine_as_the_notebook_writes_it(model, x, n_steps, record_at, lr=0.005, n_samples=8, eval_samples=200, seed=0):
    """Notebook 06, section 4: the refinement loop, written independently of vae.refine."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        mean, log_std = model.encoder.params(x)
    mean, log_std = mean.clone().requires_grad_(), log_std.clone().requires_grad_()
    eval_eps = torch.randn((eval_samples, *mean.shape), generator=generator)
    optimizer = torch.optim.Adam([mean, log_std], lr=lr)
    elbos = []
    for step in range(n_steps + 1):
        if step in record_at:
            with torch.no_grad():
                z = mean + log_std.exp() * eval_eps
                elbos.append((model.joint_log_prob(x, z) - D.Normal(mean, log_std.exp()).log_prob(z).sum(-1)).mean(0))
        if step == n_steps:
            break
        z = mean + log_std.exp() * torch.randn((n_samples, *mean.shape), generator=generator)
        loss = -(model.joint_log_prob(x, z) - D.Normal(mean, log_std.exp()).log_prob(z).sum(-1)).mean(0).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return mean.detach(), log_std.detach(), torch.stack(elbos)


def test_refine_is_the_notebooks_loop(binary):
    """vae.refine and the loop notebook 06 writes out give the same phi_i and the same recorded
    ELBOs, to round-off, from the same seed; another seed gives other numbers."""
    model = untrained(latent_dim=3)
    x = binary.x_test[:6]
    mean, log_std, elbo = _refine_as_the_notebook_writes_it(model, x, 15, [0, 5, 15], seed=1)
    twin = refine(model, x, n_steps=15, record_at=[5], seed=1)
    torch.testing.assert_close(twin.mean, mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(twin.log_std, log_std, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(twin.elbo, elbo, rtol=1e-5, atol=1e-5)
    other = refine(model, x, n_steps=15, record_at=[5], seed=2)
    assert (other.mean - mean).abs().max() > 1e-3


def _fit_encoder_as_the_notebook_writes_it(model, grey, n_steps, lr=0.02, batch_size=128, jitter=0.2, seed=0):
    """Notebook 06, section 5: a fresh encoder trained for the frozen decoder, written independently."""
    torch.manual_seed(seed)
    c = model.config
    encoder = vae_mod.Encoder(c["data_dim"], c["latent_dim"], c["hidden"], c["layers"], c["activation"])
    optimizer = torch.optim.Adam(encoder.parameters(), lr=lr, fused=True)
    generator = torch.Generator().manual_seed(seed)
    model.requires_grad_(False)
    for step in range(n_steps):
        optimizer.param_groups[0]["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / n_steps))
        batch = grey[torch.randint(len(grey), (batch_size,), generator=generator)]
        x = jittered_binarize(batch, jitter, generator)
        mean, log_std = encoder.params(x)
        std = log_std.exp()
        z = mean + std * torch.randn(mean.shape, generator=generator)
        elbo = D.Bernoulli(logits=model.decoder.logits(z)).log_prob(x).sum(-1) - D.kl_divergence(
            D.Normal(mean, std), D.Normal(0.0, 1.0)).sum(-1)
        optimizer.zero_grad()
        (-elbo.mean()).backward()
        optimizer.step()
    model.requires_grad_(True)
    return encoder


def test_fit_encoder_is_the_notebooks_loop(digits):
    """vae.fit_encoder and the loop of notebook 06 end at the same weights from the same seed."""
    model = untrained(latent_dim=3)
    mine = _fit_encoder_as_the_notebook_writes_it(model, digits.x_train, n_steps=30, batch_size=32, seed=5)
    twin = vae_mod.fit_encoder(model, digits.x_train, n_steps=30, batch_size=32, seed=5)
    for a, b in zip(mine.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    other = vae_mod.fit_encoder(model, digits.x_train, n_steps=30, batch_size=32, seed=6)
    assert any((a - b).abs().max() > 1e-3 for a, b in zip(other.parameters(), twin.parameters()))


def test_fit_encoder_learns_inference_for_the_fixed_decoder(trained_2d, digits, binary):
    """A fresh encoder trained for a trained decoder raises the held-out ELBO far above that of its
    random start; the decoder, every requires_grad flag and the global random state stay as they were."""
    model, _ = trained_2d
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.decoder.net[0].weight.requires_grad_(False)  # a pattern of flags, to be restored as it is
    flags = [p.requires_grad for p in model.parameters()]
    state = torch.get_rng_state()
    x = binary.x_test[:100]
    eps = torch.randn(50, 100, 2, generator=torch.Generator().manual_seed(0))

    def test_elbo(encoder):
        with torch.no_grad():
            return float(elbo_of_q(model, x, *encoder.params(x), eps).mean())

    start = test_elbo(vae_mod.fit_encoder(model, digits.x_train, n_steps=1, lr=1e-12, seed=0))  # its random start
    trained = vae_mod.fit_encoder(model, digits.x_train, n_steps=300, batch_size=64, seed=0)
    assert not trained.training
    assert test_elbo(trained) > start + 5
    assert torch.equal(torch.get_rng_state(), state)
    assert [p.requires_grad for p in model.parameters()] == flags
    model.decoder.net[0].weight.requires_grad_(True)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize("kwargs, match", [
    (dict(grey_train=torch.rand(10, 63)), "grey_train must be"),
    (dict(grey_train=torch.rand(10)), "grey_train"),
    (dict(grey_train=torch.full((4, 64), float("nan"))), "grey_train"),
    (dict(grey_train=torch.rand(4, 64) * 255), r"\[0, 1\]"),
    (dict(n_steps=0), "n_steps"),
    (dict(batch_size=-1), "batch_size"),
    (dict(lr=-0.1), "lr must be a positive"),
    (dict(lr=float("nan")), "lr must be a positive"),
    (dict(threshold_jitter=0.7), "threshold_jitter"),
])
def test_fit_encoder_rejects_bad_input_clearly(kwargs, match):
    args = dict(grey_train=torch.rand(20, 64), n_steps=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        vae_mod.fit_encoder(untrained(), **args)


def test_fit_encoder_needs_a_vae():
    with pytest.raises(ValueError, match="model must be a vae.VAE"):
        vae_mod.fit_encoder(torch.nn.Linear(2, 2), torch.rand(4, 64))


def test_refine_with_one_seed_per_image_refines_each_as_its_own_call(binary):
    """A batch refined with seed=[s_0, ..., s_N-1] gives image i what refine(x[i:i+1], seed=s_i) gives
    (the posterior explorer refines every test digit at once that way), up to batched round-off."""
    torch.manual_seed(0)
    model = VAE(latent_dim=2, hidden=16, layers=1).eval()
    x, seeds = binary.x_test[:5], [7, 3, 11, 0, 42]
    together = refine(model, x, n_steps=30, lr=0.01, eval_samples=20, seed=seeds)
    for i, s in enumerate(seeds):
        alone = refine(model, x[i:i + 1], n_steps=30, lr=0.01, eval_samples=20, seed=s)
        torch.testing.assert_close(together.mean[i:i + 1], alone.mean, rtol=0, atol=1e-5)
        torch.testing.assert_close(together.log_std[i:i + 1], alone.log_std, rtol=0, atol=1e-5)
        torch.testing.assert_close(together.eval_eps[:, i:i + 1], alone.eval_eps, rtol=0, atol=0)
    shared = refine(model, x, n_steps=30, lr=0.01, eval_samples=20, seed=7)  # one seed: another noise stream
    assert not torch.allclose(shared.mean[1:], together.mean[1:])
    with pytest.raises(ValueError, match="one integer per image"):
        refine(model, x, n_steps=3, seed=[1, 2])
