"""Exercise checks of notebooks 02 (marginal likelihood) and 03 (ELBO): right answers pass,
unfinished ones say "not done yet", and each typical wrong answer is caught with a message that
names the mistake. The right answers are written here, independently of vae_lesson."""
import math

import numpy as np
import pytest
import torch
from conftest import assert_caught
from scipy import stats
from scipy.special import logsumexp
from torch import distributions as D

from vae_lesson import checks
from vae_lesson.checks import CheckResult, ExerciseError
from vae_lesson.models import LinearGaussianModel


def not_done(*args):
    raise NotImplementedError


# --- the students' answers, right ones first --------------------------------------------------------

def naive_right(lw):
    return torch.logsumexp(lw, dim=0) - math.log(lw.shape[0])


def naive_right_numpy(lw):
    lw = np.asarray(lw)
    return logsumexp(lw, axis=0) - np.log(lw.shape[0])  # a float64 NumPy array is fine too


def importance_right(lj, lq):
    lw = lj - lq
    return torch.logsumexp(lw, dim=0) - math.log(lw.shape[0])


def elbo_right(log_joint, q, n):
    z = q.sample((n,))
    return (log_joint(z) - q.log_prob(z)).mean()


def elbo_right_rsample(log_joint, q, n):
    z = q.rsample((n,))
    return (log_joint(z) - q.log_prob(z)).mean()


def kl_right(m, s):
    return 0.5 * (s**2 + m**2 - 1 - 2 * torch.log(s)).sum(-1)


def kl_right_by_formula_per_dim(m, s):
    """KL summed over independent 1-D Gaussians, each log(1/s) + (s^2 + m^2)/2 - 1/2."""
    return (-torch.log(s) + (s**2 + m**2) / 2 - 0.5).sum(-1)


def ppca_right(x, W, b, sigma):
    """Conditioning the joint Gaussian of (z, x): gain = W^T (W W^T + sigma^2 I)^{-1} (not M^{-1} W^T)."""
    x, W, b = (np.asarray(a, dtype=np.float64) for a in (x, W, b))
    gain = np.linalg.solve(W @ W.T + sigma**2 * np.eye(len(b)), W).T
    return torch.tensor((x - b) @ gain.T), torch.tensor(np.eye(W.shape[1]) - gain @ W)


# A 1-D-latent PPCA model for good_proposal (NumPy float64 truth), its data point and its posterior.
_rng = np.random.default_rng(8)
GP_W, GP_B, GP_SIGMA = _rng.normal(size=(20, 1)), _rng.normal(size=20), np.float64(0.3)
GP_X = (GP_W @ np.array([1.2]) + GP_B + GP_SIGMA * _rng.normal(size=20))[None]
_gain = np.linalg.solve(GP_W @ GP_W.T + GP_SIGMA**2 * np.eye(20), GP_W).T
GP_PM = float(((GP_X - GP_B) @ _gain.T)[0, 0])
GP_PS = math.sqrt(float((1 - _gain @ GP_W)[0, 0]))


def gp_model():
    return LinearGaussianModel(torch.tensor(GP_W), torch.tensor(GP_B), GP_SIGMA)


def gp_kwargs():
    return dict(model=gp_model(), x=torch.tensor(GP_X))


GP_RIGHT = (GP_PM, 1.5 * GP_PS)
GP_FAR = (GP_PM + 5 * GP_PS, GP_PS)
GP_NARROW = (GP_PM, 0.2 * GP_PS)
GP_WIDE = (GP_PM, 20 * GP_PS)


def ess_fraction_by_hand(m, s, n=10_000):
    """The ESS / K that good_proposal documents (K = 10,000, noise from torch.Generator().manual_seed(0)),
    with scipy densities."""
    eps = torch.randn(n, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64).numpy()[:, 0]
    z = m + s * eps
    log_w = (stats.norm.logpdf(z) + stats.norm.logpdf(GP_X[0], z[:, None] * GP_W[:, 0] + GP_B, GP_SIGMA).sum(1)
             - stats.norm.logpdf(z, m, s))
    w = np.exp(log_w - log_w.max())
    return w.sum() ** 2 / (w**2).sum() / n


def test_good_proposal_cases_are_what_they_claim():
    """The test's proposals: the right one has ESS well above 50%, the wrong ones well below, and they sit
    where the check's diagnosis expects (far: > 2 posterior stds away; narrow / wide: centred)."""
    assert ess_fraction_by_hand(*GP_RIGHT) > 0.7
    for q in (GP_FAR, GP_NARROW, GP_WIDE):
        assert ess_fraction_by_hand(*q) < 0.2
    assert abs(GP_FAR[0] - GP_PM) > 2 * GP_PS and GP_NARROW[1] < GP_PS < GP_WIDE[1]
    post = gp_model().posterior(torch.tensor(GP_X))
    assert post.mean.item() == pytest.approx(GP_PM, rel=1e-10)
    assert post.covariance_matrix.sqrt().item() == pytest.approx(GP_PS, rel=1e-10)


def test_right_answers_are_right():
    """The right answers above agree with references built from scipy and torch.distributions."""
    lw = torch.randn(9, 4, dtype=torch.float64) * 3 - 50
    np.testing.assert_allclose(naive_right(lw).numpy(), logsumexp(lw.numpy(), 0) - math.log(9), rtol=1e-13)
    m, s = torch.randn(5, 3, dtype=torch.float64), torch.rand(5, 3, dtype=torch.float64) + 0.1
    expected = D.kl_divergence(D.Independent(D.Normal(m, s), 1),
                               D.Independent(D.Normal(torch.zeros_like(m), torch.ones_like(s)), 1))
    torch.testing.assert_close(kl_right(m, s), expected)
    torch.testing.assert_close(kl_right_by_formula_per_dim(m, s), expected)
    model = LinearGaussianModel.random(5, 2, 0.5, seed=1)
    x, _ = model.sample(3, generator=torch.Generator().manual_seed(0))
    mean, cov = ppca_right(x, model.W, model.b, 0.5)
    # Bayes by hand: p(z | x) proportional to p(z) p(x | z), checked at random z (log-density differences)
    z = torch.randn(4, 3, 2, dtype=torch.float64)
    lp = model.joint_log_prob(x, z)
    lq = D.MultivariateNormal(mean, covariance_matrix=cov).log_prob(z)
    torch.testing.assert_close(lp - lq, (lp - lq)[:1].expand(4, 3), rtol=1e-9, atol=1e-9)


# --- right answers and unfinished ones ------------------------------------------------------------

def _good_proposal(q_mean, q_std):
    return lambda: checks.good_proposal(q_mean, q_std, **gp_kwargs())


RIGHT = {
    "naive": lambda: checks.naive_log_marginal(naive_right),
    "naive numpy": lambda: checks.naive_log_marginal(naive_right_numpy),
    "importance": lambda: checks.importance_log_marginal(importance_right),
    "elbo": lambda: checks.elbo_monte_carlo(elbo_right),
    "elbo rsample": lambda: checks.elbo_monte_carlo(elbo_right_rsample),
    "kl": lambda: checks.kl_to_standard_normal(kl_right),
    "kl per dim": lambda: checks.kl_to_standard_normal(kl_right_by_formula_per_dim),
    "ppca": lambda: checks.ppca_posterior(ppca_right),
}


def _assert_passes(run, capsys):
    result = run()
    assert isinstance(result, CheckResult)
    assert result.passed is True and bool(result)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("✅") and result.message.startswith("✅")
    return lines


@pytest.mark.parametrize("name", sorted(RIGHT))
def test_right_answer_passes(name, capsys):
    _assert_passes(RIGHT[name], capsys)


def test_good_proposal_passes(capsys):
    lines = _assert_passes(_good_proposal(*GP_RIGHT), capsys)
    # the ESS it reports is the one computed here with scipy from the documented fixed noise
    assert f"effective sample size: {ess_fraction_by_hand(*GP_RIGHT):.1%} of K" in lines


NOT_DONE = {
    "naive": lambda: checks.naive_log_marginal(not_done),
    "importance": lambda: checks.importance_log_marginal(not_done),
    "good_proposal": _good_proposal(None, None),
    "good_proposal mean only": _good_proposal(None, 0.5),
    "elbo": lambda: checks.elbo_monte_carlo(not_done),
    "kl": lambda: checks.kl_to_standard_normal(not_done),
    "ppca": lambda: checks.ppca_posterior(not_done),
}


@pytest.mark.parametrize("name", sorted(NOT_DONE))
def test_not_done_yet(name, capsys):
    result = NOT_DONE[name]()
    assert isinstance(result, CheckResult)
    assert result.passed is False and not result
    assert "not done yet" in capsys.readouterr().out
    assert "not done yet" in result.message


def test_other_exceptions_are_explained():
    def broken(lw):
        raise ZeroDivisionError

    with pytest.raises(checks.StudentError, match="raised ZeroDivisionError at line") as info:
        checks.naive_log_marginal(broken)
    assert isinstance(info.value.original, ZeroDivisionError)


def test_naive_sees_several_inputs():
    seen = []

    def spy(lw):
        seen.append(tuple(lw.shape))
        return naive_right(lw)

    checks.naive_log_marginal(spy)
    assert len(set(seen)) >= 3 and any(k == 1 for k, _ in seen)


# --- typical wrong answers --------------------------------------------------------------------------

def _lme(a):
    return torch.logsumexp(a, 0) - math.log(a.shape[0])


NAIVE_MISTAKES = [
    ("mean of logs", lambda lw: lw.mean(0), "average of the logs"),
    ("log mean exp underflows", lambda lw: torch.log(torch.exp(lw).mean(0)), "NaN or infinite"),
    ("log mean exp underflows (hint)", lambda lw: torch.log(torch.exp(lw).mean(0)), "logsumexp"),
    ("sum without -log K", lambda lw: torch.logsumexp(lw, 0), "subtract log K"),
    ("max only", lambda lw: lw.max(0).values, "largest weight only"),
    ("wrong axis", lambda lw: torch.logsumexp(lw, 1) - math.log(lw.shape[1]), "got shape (50,)"),
    ("sign", lambda lw: -naive_right(lw), "sign is wrong"),
    ("divides by N, not K", lambda lw: torch.logsumexp(lw, 0) - math.log(lw.shape[1]), "differ from the reference"),
    ("no return", lambda lw: None, "returned None"),
    ("one number", lambda lw: naive_right(lw).mean(), "one number"),
]

IMPORTANCE_MISTAKES = [
    ("mean of log weights", lambda lj, lq: (lj - lq).mean(0), "ELBO"),
    ("+ log q", lambda lj, lq: _lme(lj + lq), "subtract log q, do not add it"),
    ("missing -log K", lambda lj, lq: torch.logsumexp(lj - lq, 0), "subtract log K"),
    ("missing q", lambda lj, lq: _lme(lj), "left out q"),
    ("upside-down weights", lambda lj, lq: _lme(lq - lj), "upside down"),
    ("sign", lambda lj, lq: -importance_right(lj, lq), "sign is wrong"),
    ("exp underflows", lambda lj, lq: torch.log(torch.exp(lj - lq).mean(0)), "NaN or infinite"),
    ("wrong axis", lambda lj, lq: _lme((lj - lq).T), "got shape (50,)"),
]


def _elbo_forgot_log_q(log_joint, q, n):
    return log_joint(q.sample((n,))).mean()


def _elbo_shifted(log_joint, q, n):
    z = q.sample((n,)) + 0.5
    return (log_joint(z) - q.log_prob(z)).mean()


def _elbo_from_prior(log_joint, q, n):
    z = torch.randn((n,) + tuple(q.event_shape), dtype=torch.float64)
    return (log_joint(z) - q.log_prob(z)).mean()


def _elbo_per_sample(log_joint, q, n):
    z = q.sample((n,))
    return log_joint(z) - q.log_prob(z)


def _elbo_no_return(log_joint, q, n):
    elbo_right(log_joint, q, n)


ELBO_MISTAKES = [
    ("forgot -log q", _elbo_forgot_log_q, "entropy"),
    ("forgot -log q (what to do)", _elbo_forgot_log_q, "subtract log q(z_k)"),
    ("sign", lambda lj, q, n: -elbo_right(lj, q, n), "sign is wrong"),
    ("shifted samples", _elbo_shifted, "standard errors from the exact"),
    ("samples from the prior", _elbo_from_prior, "Are the samples drawn from q"),
    ("per-sample vector", _elbo_per_sample, "expected one number"),
    ("no return", _elbo_no_return, "returned None"),
    ("NaN", lambda lj, q, n: torch.tensor(float("nan")), "should be finite"),
]


def _kl_reversed(m, s):
    """KL(N(0, 1) || N(m, s^2)) per dimension: log s + (1 + m^2) / (2 s^2) - 1/2."""
    return (torch.log(s) + (1 + m**2) / (2 * s**2) - 0.5).sum(-1)


KL_MISTAKES = [
    ("std for variance", lambda m, s: 0.5 * (s + m**2 - 1 - torch.log(s)).sum(-1), "std where the variance belongs"),
    ("log std", lambda m, s: 0.5 * (s**2 + m**2 - 1 - torch.log(s)).sum(-1), "2 log std"),
    ("forgot -1", lambda m, s: 0.5 * (s**2 + m**2 - 2 * torch.log(s)).sum(-1), "forgot the -1"),
    ("forgot 1/2", lambda m, s: (s**2 + m**2 - 1 - 2 * torch.log(s)).sum(-1), "factor 1/2"),
    ("reversed KL", _kl_reversed, "the other direction"),
    ("not summed", lambda m, s: 0.5 * (s**2 + m**2 - 1 - 2 * torch.log(s)), "one axis too many"),
    ("sign", lambda m, s: -kl_right(m, s), "sign is wrong"),
    ("mean over dims", lambda m, s: 0.5 * (s**2 + m**2 - 1 - 2 * torch.log(s)).mean(-1), "differ from the reference"),
    ("summed over points", lambda m, s: 0.5 * (s**2 + m**2 - 1 - 2 * torch.log(s)).sum(0), "expected shape (5,)"),
    ("no return", lambda m, s: None, "returned None"),
]


def _ppca_parts(x, W, b, sigma):
    x, W, b = (np.asarray(a, dtype=np.float64) for a in (x, W, b))
    WtW, I = W.T @ W, np.eye(W.shape[1])
    return x, W, b, WtW, WtW + sigma**2 * I


def _ppca_no_sigma_in_m(x, W, b, sigma):
    x, W, b, WtW, _ = _ppca_parts(x, W, b, sigma)
    return torch.tensor(np.linalg.solve(WtW, W.T @ (x - b).T).T), torch.tensor(sigma**2 * np.linalg.inv(WtW))


def _ppca_forgot_b(x, W, b, sigma):
    x, W, b, _, M = _ppca_parts(x, W, b, sigma)
    return torch.tensor(np.linalg.solve(M, W.T @ x.T).T), torch.tensor(sigma**2 * np.linalg.inv(M))


def _ppca_cov_no_sigma(x, W, b, sigma):
    return ppca_right(x, W, b, sigma)[0], torch.tensor(np.linalg.inv(_ppca_parts(x, W, b, sigma)[4]))


def _ppca_cov_no_inverse(x, W, b, sigma):
    return ppca_right(x, W, b, sigma)[0], torch.tensor(sigma**2 * _ppca_parts(x, W, b, sigma)[4])


def _ppca_cov_per_point(x, W, b, sigma):
    mean, cov = ppca_right(x, W, b, sigma)
    return mean, cov.expand(len(mean), -1, -1)


PPCA_MISTAKES = [
    ("M without sigma^2 I", _ppca_no_sigma_in_m, "M must include sigma^2 I"),
    ("forgot -b", _ppca_forgot_b, "subtract b"),
    ("cov without sigma^2", _ppca_cov_no_sigma, "left out sigma^2"),
    ("cov = sigma^2 M", _ppca_cov_no_inverse, "not M itself"),
    ("one thing", lambda *a: ppca_right(*a)[0], "return two things"),
    ("three things", lambda *a: (*ppca_right(*a), None), "return two things"),
    ("transposed mean", lambda *a: (ppca_right(*a)[0].T, ppca_right(*a)[1]), "transposed"),
    ("cov per point", _ppca_cov_per_point, "one covariance shared by all data points"),
    ("mean sign", lambda *a: (-ppca_right(*a)[0], ppca_right(*a)[1]), "sign is wrong"),
]

GOOD_PROPOSAL_BAD_INPUT = [
    ("std zero", (GP_PM, 0.0), "must be > 0"),
    ("std negative", (GP_PM, -0.1), "must be > 0"),
    ("non-numeric", ("near the posterior", 0.1), "must be numbers"),
    ("NaN", (float("nan"), 0.1), "must be finite"),
]

GOOD_PROPOSAL_POOR = [
    ("far mean", GP_FAR, "too far from the posterior"),
    ("too narrow", GP_NARROW, "too narrow"),
    ("too wide", GP_WIDE, "too wide"),
]


def _assert_caught(run, phrase, capsys):
    assert_caught(run, phrase, capsys)


def _ids(cases):
    return [c[0] for c in cases]


FUNCTION_MISTAKES = [
    (check, case, wrong, phrase)
    for check, cases in ((checks.naive_log_marginal, NAIVE_MISTAKES), (checks.importance_log_marginal, IMPORTANCE_MISTAKES),
                         (checks.elbo_monte_carlo, ELBO_MISTAKES), (checks.kl_to_standard_normal, KL_MISTAKES),
                         (checks.ppca_posterior, PPCA_MISTAKES))
    for case, wrong, phrase in cases
]


@pytest.mark.parametrize("check, case, wrong, phrase", FUNCTION_MISTAKES,
                         ids=[f"{c.__name__}-{case}" for c, case, _, _ in FUNCTION_MISTAKES])
def test_typical_mistakes_are_caught(check, case, wrong, phrase, capsys):
    _assert_caught(lambda: check(wrong), phrase, capsys)


@pytest.mark.parametrize("case, q, phrase", GOOD_PROPOSAL_BAD_INPUT, ids=_ids(GOOD_PROPOSAL_BAD_INPUT))
def test_good_proposal_bad_input(case, q, phrase, capsys):
    _assert_caught(_good_proposal(*q), phrase, capsys)


@pytest.mark.parametrize("case, q, phrase", GOOD_PROPOSAL_POOR, ids=_ids(GOOD_PROPOSAL_POOR))
def test_good_proposal_poor_proposals(case, q, phrase, capsys):
    _assert_caught(_good_proposal(*q), phrase, capsys)
