"""Properties that must hold for ANY input, checked with hypothesis on the exact models:
KL >= 0, ELBO <= log p(x) with the gap equal to KL(q || posterior), responsibilities normalized."""
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import distributions as D

from vae_lesson.models import GaussianMixture, Latent1DModel, LinearGaussianModel
from vae_lesson.objectives import kl_to_standard_normal

finite = st.floats(min_value=-5, max_value=5, allow_nan=False, allow_infinity=False)
positive = st.floats(min_value=0.05, max_value=5, allow_nan=False, allow_infinity=False)
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True)

PCA = LinearGaussianModel.random(data_dim=4, latent_dim=2, sigma=0.7, seed=1)
X_PCA, _ = PCA.sample(1, generator=torch.Generator().manual_seed(2))
TOY = Latent1DModel(n_grid=20001)


@SETTINGS
@given(st.lists(finite, min_size=3, max_size=3), st.lists(positive, min_size=3, max_size=3))
def test_gaussian_kl_is_never_negative(mean, std):
    kl = kl_to_standard_normal(torch.tensor([mean]), torch.tensor([std]))
    assert kl.item() >= -1e-6


@SETTINGS
@given(finite, finite, positive, positive, st.floats(min_value=-0.9, max_value=0.9))
def test_elbo_never_exceeds_log_px_and_the_gap_is_the_kl(m1, m2, s1, s2, rho):
    cov = torch.tensor([[s1 * s1, rho * s1 * s2], [rho * s1 * s2, s2 * s2]], dtype=torch.float64)
    mean = torch.tensor([m1, m2], dtype=torch.float64)
    elbo = PCA.elbo(X_PCA, mean, cov)[0].item()
    log_px = PCA.log_marginal(X_PCA)[0].item()
    post = PCA.posterior(X_PCA)
    kl = D.kl_divergence(D.MultivariateNormal(mean, cov),
                         D.MultivariateNormal(post.mean[0], post.covariance_matrix[0])).item()
    assert elbo <= log_px + 1e-9
    assert abs(log_px - elbo - kl) < 1e-8 * max(1.0, abs(elbo))


@SETTINGS
@given(st.floats(min_value=-4, max_value=6), st.floats(min_value=0.2, max_value=3), st.floats(min_value=-1.9, max_value=1.9))
def test_elbo_plus_kl_is_log_px_on_the_skewed_posterior(q_mean, q_std, x):
    elbo, kl = TOY.elbo(x, q_mean, q_std), TOY.kl_to_posterior(x, q_mean, q_std)
    assert kl >= -1e-9
    assert abs(elbo + kl - TOY.log_marginal(x)) < 1e-7


@SETTINGS
@given(st.lists(st.floats(min_value=0.05, max_value=1.0), min_size=3, max_size=3), st.lists(finite, min_size=2, max_size=2))
def test_mixture_posterior_is_normalized_and_tight(raw_weights, point):
    w = torch.tensor(raw_weights, dtype=torch.float64)
    mixture = GaussianMixture(w / w.sum(), torch.tensor([[-1.0, 0.0], [1.0, 0.5], [0.0, 2.0]], dtype=torch.float64),
                              torch.eye(2, dtype=torch.float64).expand(3, 2, 2) * 0.5)
    x = torch.tensor([point], dtype=torch.float64)
    post = mixture.posterior(x)
    assert abs(post.sum().item() - 1) < 1e-12 and (post >= 0).all()
    assert abs(mixture.elbo(x, post).item() - mixture.log_marginal(x).item()) < 1e-9
    uniform = torch.full((1, 3), 1 / 3, dtype=torch.float64)
    assert mixture.elbo(x, uniform).item() <= mixture.log_marginal(x).item() + 1e-12
