"""The exercise checks of notebooks 06 and 07 (vae_lesson.checks.nb06, nb07): right answers, written here
independently of the package, pass; unfinished ones say "not done yet"; each known mistake of a check
and the usual generic slips raise ExerciseError with a message that names the mistake."""
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_caught
from torch import distributions as D

from vae_lesson import checks
from vae_lesson.checks import reference
from vae_lesson.data import load_digits
from vae_lesson.vae import VAE

LOG_2PI = math.log(2 * math.pi)


# --- the student's functions, right ------------------------------------------------------------

# 06.1 the ELBO of a per-datapoint q

def right_elbo_distributions(model, x, mean, log_std, eps):
    """With torch.distributions only: prior, Bernoulli likelihood on the decoder's logits, q."""
    std = log_std.exp()
    z = mean + std * eps
    d = mean.shape[-1]
    prior = D.Independent(D.Normal(torch.zeros(d), torch.ones(d)), 1)
    likelihood = D.Independent(D.Bernoulli(logits=model.decoder.logits(z)), 1)
    q = D.Independent(D.Normal(mean, std), 1)
    return (prior.log_prob(z) + likelihood.log_prob(x) - q.log_prob(z)).mean(0)


def right_elbo_formulas(model, x, mean, log_std, eps):
    """Every log-density written out; (z - mean) / std = eps, so log q needs no division."""
    z = mean + torch.exp(log_std) * eps
    logits = model.decoder.net(z)
    log_lik = (x * F.logsigmoid(logits) + (1 - x) * F.logsigmoid(-logits)).sum(-1)
    log_prior = (-0.5 * z**2 - 0.5 * LOG_2PI).sum(-1)
    log_q = (-0.5 * eps**2 - log_std - 0.5 * LOG_2PI).sum(-1)
    return (log_prior + log_lik - log_q).sum(0) / eps.shape[0]


# 06.2 the two gaps

def right_gaps_loop(encoder_elbo, refined_elbo, log_px):
    approx = torch.stack([log_px[i] - refined_elbo[i] for i in range(len(log_px))])
    amort = torch.stack([refined_elbo[i] - encoder_elbo[i] for i in range(len(log_px))])
    return approx, amort


def right_gaps_list(encoder_elbo, refined_elbo, log_px):
    """A list instead of a tuple, and the amortization gap as total minus approximation."""
    approx = log_px - refined_elbo
    return [approx, (log_px - encoder_elbo) - approx]


# 07.1 the negative ELBO loss

def right_loss_distributions(x, logits, mean, log_std):
    rec = D.Independent(D.Bernoulli(logits=logits), 1).log_prob(x)
    q = D.Independent(D.Normal(mean, log_std.exp()), 1)
    prior = D.Independent(D.Normal(torch.zeros_like(mean), torch.ones_like(mean)), 1)
    return -(rec - D.kl_divergence(q, prior)).mean()


def right_loss_formulas(x, logits, mean, log_std):
    """log sigmoid written out; the KL per dimension as -log sigma + (sigma^2 + mu^2 - 1) / 2."""
    rec = (x * F.logsigmoid(logits) + (1 - x) * F.logsigmoid(-logits)).sum(-1)
    kl = (-log_std + 0.5 * (log_std.exp() ** 2 + mean**2 - 1)).sum(-1)
    return (kl - rec).sum() / x.shape[0]


# 07.2 a reparameterized sample from the encoder

def right_sample_affine(model, x, eps):
    out = model.encoder.net(x)
    d = eps.shape[-1]
    mean, log_std = out[..., :d], out[..., d:]
    return D.AffineTransform(loc=mean, scale=log_std.exp())(eps)


def right_sample_from_q(model, x, eps):
    q = model.encoder(x)
    return q.mean + q.stddev * eps


# 07.3 the importance-weighted estimate of log p(x)

def right_iw_by_hand(model, x, eps):
    """Log-weights from formulas, log-mean-exp with the max trick written out."""
    mean, log_std = model.encoder.params(x)
    z = mean + log_std.exp() * eps
    logits = model.decoder.logits(z)
    log_lik = -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)
    log_prior = (-0.5 * z**2 - 0.5 * LOG_2PI).sum(-1)
    log_q = (-0.5 * eps**2 - log_std - 0.5 * LOG_2PI).sum(-1)
    log_w = log_prior + log_lik - log_q
    top = log_w.max(0).values
    return top + torch.log(torch.exp(log_w - top).mean(0))


def right_iw_distributions(model, x, eps):
    mean, log_std = model.encoder.params(x)
    q = D.Independent(D.Normal(mean, log_std.exp()), 1)
    z = q.mean + q.stddev * eps
    log_w = model.joint_log_prob(x, z) - q.log_prob(z)
    return torch.logsumexp(log_w - math.log(eps.shape[0]), 0)


# right answers per check; tests/test_checks_common.py runs the generic checks on them
CHECKS = {
    "elbo_of_q": (checks.elbo_of_q, [reference.elbo_of_q, right_elbo_distributions, right_elbo_formulas]),
    "gaps_per_image": (checks.gaps_per_image, [reference.gaps_per_image, right_gaps_loop, right_gaps_list]),
    "negative_elbo_loss": (checks.negative_elbo_loss,
                           [reference.negative_elbo_loss, right_loss_distributions, right_loss_formulas]),
    "encoder_sample": (checks.encoder_sample, [reference.encoder_sample, right_sample_affine, right_sample_from_q]),
    "importance_weighted_log_px": (checks.importance_weighted_log_px,
                                   [reference.importance_weighted_log_px, right_iw_by_hand, right_iw_distributions]),
}


class ExerciseLike(RuntimeError):
    """Raised by a test function; a check explains it as an error of the student's function (StudentError)."""


@pytest.fixture(scope="module")
def notebook_inputs():
    """What a notebook passes: its own VAE (latent 2 here) and binary test digits."""
    torch.manual_seed(5)
    model = VAE(latent_dim=2, hidden=16, layers=1).eval()
    return model, load_digits(binarized=True).x_test[:20]


@pytest.mark.parametrize("name", ["elbo_of_q", "encoder_sample", "importance_weighted_log_px"])
def test_right_answers_pass_with_the_notebooks_model(name, notebook_inputs, capsys):
    """The right answers also pass on a notebook's own model and digits (latent 2, 64 binary pixels)."""
    check, rights = CHECKS[name]
    for right in rights:
        assert check(right, *notebook_inputs).passed
        assert capsys.readouterr().out.startswith("✅")


@pytest.mark.parametrize("name", ["elbo_of_q", "encoder_sample", "importance_weighted_log_px"])
def test_notebook_inputs_are_used(name, notebook_inputs, capsys):
    """With the notebook's model, a function that only works for latent size 3 (the check's own small
    VAEs) fails: the notebook's inputs really are tried."""
    check, rights = CHECKS[name]

    def only_latent_3(model, *args):
        if model.latent_dim != 3:
            raise ExerciseLike("wrong model")
        return rights[0](model, *args)

    assert check(only_latent_3).passed  # without the notebook's inputs only latent-3 models are used
    capsys.readouterr()
    with pytest.raises(checks.StudentError) as info:  # explained as an error of the student's function
        check(only_latent_3, *notebook_inputs)
    assert isinstance(info.value.original, ExerciseLike)



# --- 06.1 the ELBO of a per-datapoint q: the check's known mistakes and generic slips -------------

def elbo_no_entropy(model, x, mean, log_std, eps):
    z = mean + log_std.exp() * eps
    return model.joint_log_prob(x, z).mean(0)


def elbo_no_prior(model, x, mean, log_std, eps):
    z = mean + log_std.exp() * eps
    return (model.decoder(z).log_prob(x) - D.Normal(mean, log_std.exp()).log_prob(z).sum(-1)).mean(0)


def elbo_log_std_as_std_clamped(model, x, mean, log_std, eps):
    """log_std used as the standard deviation (kept positive, so that q is still a density)."""
    std = log_std.clamp_min(1e-3)
    z = mean + std * eps
    return (model.joint_log_prob(x, z) - D.Normal(mean, std).log_prob(z).sum(-1)).mean(0)


def elbo_log_std_as_std(model, x, mean, log_std, eps):
    """The same mistake as a student writes it: D.Normal(mean, log_std), with negative 'scales'."""
    z = mean + log_std * eps
    return (model.joint_log_prob(x, z) - D.Normal(mean, log_std).log_prob(z).sum(-1)).mean(0)


def elbo_sum_over_samples(model, x, mean, log_std, eps):
    z = mean + log_std.exp() * eps
    return (model.joint_log_prob(x, z) - D.Normal(mean, log_std.exp()).log_prob(z).sum(-1)).sum(0)


def elbo_per_sample(model, x, mean, log_std, eps):
    z = mean + log_std.exp() * eps
    return model.joint_log_prob(x, z) - D.Normal(mean, log_std.exp()).log_prob(z).sum(-1)


def elbo_scalar(model, x, mean, log_std, eps):
    return reference.elbo_of_q(model, x, mean, log_std, eps).mean()


def elbo_negative(model, x, mean, log_std, eps):
    return -reference.elbo_of_q(model, x, mean, log_std, eps)


def elbo_nan(model, x, mean, log_std, eps):
    return reference.elbo_of_q(model, x, mean, log_std, eps) * float("nan")


def elbo_fresh_noise(model, x, mean, log_std, eps):
    """Draws its own noise instead of using eps."""
    return reference.elbo_of_q(model, x, mean, log_std, torch.randn_like(eps))


@pytest.mark.parametrize("wrong, phrase", [
    (elbo_no_entropy, "you left out - log q(z)"),
    (elbo_no_prior, "you left out the prior log p(z)"),
    (elbo_log_std_as_std_clamped, "log_std is the log of the standard deviation"),
    (elbo_sum_over_samples, "average over the K samples (axis 0), do not sum them"),
    (elbo_per_sample, "expected shape (5,), got shape (3, 5). There is one axis too many"),
    (elbo_scalar, "You reduced everything to one number"),
    (elbo_negative, "the sign is wrong"),
    (elbo_nan, "NaN or infinite"),
    (lambda *args: None, "your function returned None"),
    (elbo_fresh_noise, "values differ from the reference"),
])
def test_elbo_of_q_mistakes(wrong, phrase, capsys):
    assert_caught(lambda: checks.elbo_of_q(wrong), phrase, capsys)


def test_elbo_of_q_catches_log_std_as_std_as_written(capsys):
    assert_caught(lambda: checks.elbo_of_q(elbo_log_std_as_std), "log_std is the log of the standard deviation", capsys)


def test_elbo_of_q_mistakes_with_the_notebooks_model(notebook_inputs, capsys):
    """The notebook's own inputs come first: its shapes are in the message."""
    assert_caught(lambda: checks.elbo_of_q(elbo_no_prior, *notebook_inputs), "you left out the prior", capsys)
    assert_caught(lambda: checks.elbo_of_q(elbo_per_sample, *notebook_inputs), "got shape (4, 20)", capsys)


# --- 06.2 the two gaps ------------------------------------------------------------------------------

@pytest.mark.parametrize("wrong, phrase", [
    (lambda e, r, l: (r - e, l - r), "the two gaps are swapped"),
    (lambda e, r, l: ((l - r).mean(), (r - e).mean()), "do not average"),
    (lambda e, r, l: (l - e, r - e), "that is the total gap, log p(x) - encoder ELBO; the approximation gap starts"),
    (lambda e, r, l: (l - r, l - e), "that is the total gap, log p(x) - encoder ELBO; the amortization gap stops"),
    (lambda e, r, l: (r - l, r - e), "approximation gap: the sign is wrong"),
    (lambda e, r, l: (l - r, e - r), "amortization gap: the sign is wrong"),
    (lambda e, r, l: l - r, "return two tensors"),
    (lambda e, r, l: None, "return two tensors"),
    (lambda e, r, l: (l - r, None), "amortization gap: your function returned None"),
    (lambda e, r, l: ((l - r)[:, None], r - e), "expected shape (6,), got shape (6, 1)"),
    (lambda e, r, l: (l - r, (r - e) * float("nan")), "NaN or infinite"),
    (lambda e, r, l: ((l - r) + 1e-3, r - e), "approximation gap: values differ"),
])
def test_gaps_per_image_mistakes(wrong, phrase, capsys):
    assert_caught(lambda: checks.gaps_per_image(wrong), phrase, capsys)


# --- 07.1 the negative ELBO loss -------------------------------------------------------------------

def bce_sum(x, logits):
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)


def kl_by_hand(mean, log_std):
    return 0.5 * (torch.exp(2 * log_std) + mean**2 - 1 - 2 * log_std).sum(-1)


def loss_bce_mean(x, logits, mean, log_std):
    return F.binary_cross_entropy_with_logits(logits, x) + kl_by_hand(mean, log_std).mean()


def loss_no_kl(x, logits, mean, log_std):
    return bce_sum(x, logits).mean()


def loss_kl_sign(x, logits, mean, log_std):
    return (bce_sum(x, logits) - kl_by_hand(mean, log_std)).mean()


def loss_variance_exp_log_std(x, logits, mean, log_std):
    kl = 0.5 * (torch.exp(log_std) + mean**2 - 1 - 2 * log_std).sum(-1)
    return (bce_sum(x, logits) + kl).mean()


def loss_no_half(x, logits, mean, log_std):
    kl = (torch.exp(2 * log_std) + mean**2 - 1 - 2 * log_std).sum(-1)
    return (bce_sum(x, logits) + kl).mean()


def loss_batch_sum(x, logits, mean, log_std):
    return (bce_sum(x, logits) + kl_by_hand(mean, log_std)).sum()


def loss_per_image(x, logits, mean, log_std):
    return bce_sum(x, logits) + kl_by_hand(mean, log_std)


def loss_is_the_elbo(x, logits, mean, log_std):
    return -(bce_sum(x, logits) + kl_by_hand(mean, log_std)).mean()


def loss_nan(x, logits, mean, log_std):
    return (bce_sum(x, logits) + kl_by_hand(mean, log_std)).mean() * float("nan")


def loss_probabilities_as_logits(x, logits, mean, log_std):
    """BCE on sigmoid(logits) taken as logits again."""
    return (bce_sum(x, torch.sigmoid(logits)) + kl_by_hand(mean, log_std)).mean()


@pytest.mark.parametrize("wrong, phrase", [
    (loss_bce_mean, "you averaged the reconstruction over the 64 pixels"),
    (loss_no_kl, "the KL term is missing"),
    (loss_kl_sign, "the KL enters with the wrong sign"),
    (loss_variance_exp_log_std, "the variance in the KL is exp(2 log_std), not exp(log_std)"),
    (loss_no_half, "the 1/2 is missing"),
    (loss_batch_sum, "that is the sum over the batch"),
    (loss_per_image, "return one number for the batch"),
    (loss_is_the_elbo, "the sign is wrong"),
    (loss_nan, "NaN or infinite"),
    (loss_probabilities_as_logits, "loss: values differ"),
])
def test_negative_elbo_loss_mistakes(wrong, phrase, capsys):
    assert_caught(lambda: checks.negative_elbo_loss(wrong), phrase, capsys)


def test_negative_elbo_loss_returns_none(capsys):
    assert_caught(lambda: checks.negative_elbo_loss(lambda *args: None), "your function returned None", capsys)


# --- 07.2 a reparameterized sample from the encoder -----------------------------------------------

def z_log_std_scale(model, x, eps):
    mean, log_std = model.encoder.params(x)
    return mean + log_std * eps


def z_variance_scale(model, x, eps):
    mean, log_std = model.encoder.params(x)
    return mean + torch.exp(2 * log_std) * eps


def z_noise_only_in_the_graph(model, x, eps):
    """Returns eps, but inside the encoder's graph (0 * mean keeps a grad_fn)."""
    mean, _ = model.encoder.params(x)
    return eps + 0 * mean


def z_detached(model, x, eps):
    mean, log_std = model.encoder.params(x)
    return (mean + log_std.exp() * eps).detach()


def z_no_grad(model, x, eps):
    with torch.no_grad():
        mean, log_std = model.encoder.params(x)
        return mean + log_std.exp() * eps


def z_sample(model, x, eps):
    return model.encoder(x).sample((eps.shape[0],))


def z_rsample(model, x, eps):
    """Differentiable, but its own noise instead of eps."""
    return model.encoder(x).rsample((eps.shape[0],))


def z_one_sample(model, x, eps):
    mean, log_std = model.encoder.params(x)
    return mean + log_std.exp() * eps[0]


def z_nan(model, x, eps):
    mean, log_std = model.encoder.params(x)
    return (mean + log_std.exp() * eps) * float("nan")


def z_not_from_the_encoder(model, x, eps):
    """Right values computed without a graph, then made to 'require grad' through the decoder's
    parameters: the encoder gets no gradient."""
    with torch.no_grad():
        mean, log_std = model.encoder.params(x)
        z = mean + log_std.exp() * eps
    return z + 0 * next(model.decoder.parameters()).sum()


@pytest.mark.parametrize("wrong, phrase", [
    (z_log_std_scale, "scale eps by exp(log_std), not by log_std"),
    (z_variance_scale, "exp(2 log_std) is the variance"),
    (z_noise_only_in_the_graph, "z must use the encoder's mean and spread, not only the noise"),
    (z_detached, "no gradient flows back to the encoder"),
    (z_no_grad, "no gradient flows back to the encoder"),
    (z_sample, "no gradient flows back to the encoder"),
    (z_rsample, "z: values differ"),
    (z_one_sample, "expected shape (3, 5, 3), got shape (5, 3)"),
    (z_nan, "NaN or infinite"),
    (lambda model, x, eps: None, "return a torch tensor, not NoneType"),
    (lambda model, x, eps: z_log_std_scale(model, x, eps).tolist(), "return a torch tensor, not list"),
    (z_not_from_the_encoder, "some encoder parameters get no gradient"),
])
def test_encoder_sample_mistakes(wrong, phrase, capsys):
    assert_caught(lambda: checks.encoder_sample(wrong), phrase, capsys)


def test_encoder_sample_returning_the_noise(capsys):
    assert_caught(lambda: checks.encoder_sample(lambda model, x, eps: eps),
                  "z must use the encoder's mean and spread", capsys)


# --- 07.3 the importance-weighted estimate of log p(x) ------------------------------------------

def log_weights(model, x, eps, sign=-1, prior=True):
    q = model.encoder(x)
    z = q.mean + q.stddev * eps
    log_joint = model.joint_log_prob(x, z) if prior else model.decoder(z).log_prob(x)
    return log_joint + sign * q.log_prob(z)


def iw_elbo(model, x, eps):
    return log_weights(model, x, eps).mean(0)


def iw_no_log_k(model, x, eps):
    return torch.logsumexp(log_weights(model, x, eps), 0)


def iw_plus_log_q(model, x, eps):
    return torch.logsumexp(log_weights(model, x, eps, sign=+1), 0) - math.log(eps.shape[0])


def iw_no_prior(model, x, eps):
    return torch.logsumexp(log_weights(model, x, eps, prior=False), 0) - math.log(eps.shape[0])


def iw_log_weights(model, x, eps):
    return log_weights(model, x, eps)


def iw_logsumexp_wrong_axis(model, x, eps):
    return torch.logsumexp(log_weights(model, x, eps), -1) - math.log(eps.shape[0])


def iw_negative(model, x, eps):
    return -reference.importance_weighted_log_px(model, x, eps)


def iw_nan(model, x, eps):
    return reference.importance_weighted_log_px(model, x, eps) * float("nan")


def iw_prior_samples(model, x, eps):
    """Samples from the prior instead of q: naive Monte Carlo, another estimator."""
    z = eps
    return torch.logsumexp(model.decoder(z).log_prob(x), 0) - math.log(eps.shape[0])


@pytest.mark.parametrize("wrong, phrase", [
    (iw_elbo, "that is the average of the log-weights, the ELBO"),
    (iw_no_log_k, "you forgot to subtract log K"),
    (iw_plus_log_q, "the weight is p(x, z) / q(z|x): subtract log q, do not add it"),
    (iw_no_prior, "the prior log p(z) is missing"),
    (iw_log_weights, "expected shape (5,), got shape (20, 5). There is one axis too many"),
    (iw_logsumexp_wrong_axis, "expected shape (5,), got shape (20,)"),
    (iw_negative, "the sign is wrong"),
    (iw_nan, "NaN or infinite"),
    (lambda model, x, eps: None, "your function returned None"),
    (iw_prior_samples, "log p(x) estimate: values differ"),
])
def test_importance_weighted_log_px_mistakes(wrong, phrase, capsys):
    assert_caught(lambda: checks.importance_weighted_log_px(wrong), phrase, capsys)


def test_iw_mistakes_with_the_notebooks_model(notebook_inputs, capsys):
    assert_caught(lambda: checks.importance_weighted_log_px(iw_elbo, *notebook_inputs), "the ELBO", capsys)
    assert_caught(lambda: checks.importance_weighted_log_px(iw_log_weights, *notebook_inputs),
                  "got shape (50, 8)", capsys)



def test_gaps_per_image_accepts_float32(capsys):
    """A student who works in float32 (torch's default) is right, not off by round-off."""
    assert checks.gaps_per_image(lambda e, r, l: ((l - r).float(), (r - e).float()))


# --- 07.4 one training step -------------------------------------------------------------------------

def _terms(model, x, sample="rsample"):
    mean, log_std = model.encoder.params(x)
    q = D.Normal(mean, log_std.exp())
    z = q.rsample() if sample == "rsample" else q.sample()
    rec = D.Independent(D.Bernoulli(logits=model.decoder.logits(z)), 1).log_prob(x)
    kl = D.kl_divergence(q, D.Normal(torch.zeros_like(mean), torch.ones_like(mean))).sum(-1)
    return rec, kl


def step_right_distributions(model, x_batch, optimizer):
    """Written independently of the package: torch.distributions' KL, Bernoulli on the logits."""
    rec, kl = _terms(model, x_batch)
    loss = -(rec - kl).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return {"loss": loss.item(), "elbo": -loss.item()}


def step_right_by_hand(model, x_batch, optimizer):
    """mean + std * randn_like, BCE with logits, the KL formula; returns only the loss."""
    mean, log_std = model.encoder.params(x_batch)
    z = mean + log_std.exp() * torch.randn_like(mean)
    rec = -F.binary_cross_entropy_with_logits(model.decoder.logits(z), x_batch, reduction="none").sum(-1)
    kl = 0.5 * (torch.exp(2 * log_std) + mean**2 - 1 - 2 * log_std).sum(-1)
    loss = -(rec - kl).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return {"loss": loss.item()}


def step_not_done(model, x_batch, optimizer):
    raise NotImplementedError()


def _step_with(loss_of):
    def step(model, x_batch, optimizer):
        loss = loss_of(model, x_batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return {"loss": loss.item()}
    return step


def _loss_ascending(model, x):
    rec, kl = _terms(model, x)
    return (rec - kl).mean()


def _loss_no_kl(model, x):
    rec, _ = _terms(model, x)
    return -rec.mean()


def _loss_sample(model, x):
    rec, kl = _terms(model, x, sample="sample")
    return -(rec - kl).mean()


def _loss_pixel_mean(model, x):
    mean, log_std = model.encoder.params(x)
    z = mean + log_std.exp() * torch.randn_like(mean)
    rec = -F.binary_cross_entropy_with_logits(model.decoder.logits(z), x)  # averaged over pixels and images
    kl = 0.5 * (torch.exp(2 * log_std) + mean**2 - 1 - 2 * log_std).sum(-1)
    return -(rec - kl.mean())


step_ascending, step_no_kl, step_sample = _step_with(_loss_ascending), _step_with(_loss_no_kl), _step_with(_loss_sample)
step_pixel_mean = _step_with(_loss_pixel_mean)


def step_not_zeroed(model, x_batch, optimizer):
    rec, kl = _terms(model, x_batch)
    loss = -(rec - kl).mean()
    loss.backward()  # the gradient left from the previous step is added to this one
    optimizer.step()
    return {"loss": loss.item()}


def step_no_optimizer_step(model, x_batch, optimizer):
    rec, kl = _terms(model, x_batch)
    loss = -(rec - kl).mean()
    optimizer.zero_grad()
    loss.backward()
    return {"loss": loss.item()}


def step_two_samples(model, x_batch, optimizer):
    """Draws its own noise twice: a different update from the seeded reference."""
    _terms(model, x_batch)
    return step_right_distributions(model, x_batch, optimizer)


def step_returns_a_float(model, x_batch, optimizer):
    return step_right_distributions(model, x_batch, optimizer)["loss"]


def step_returns_the_elbo_as_loss(model, x_batch, optimizer):
    out = step_right_distributions(model, x_batch, optimizer)
    return {"loss": -out["loss"]}


def _loss_kl_mean_over_d(model, x):
    mean, log_std = model.encoder.params(x)
    z = mean + log_std.exp() * torch.randn_like(mean)
    rec = model.decoder(z).log_prob(x)
    kl = 0.5 * (torch.exp(2 * log_std) + mean**2 - 1 - 2 * log_std).mean(-1)  # averaged over the d latent dims
    return -(rec - kl).mean()


def _loss_batch_sum(model, x):
    rec, kl = _terms(model, x)
    return -(rec - kl).sum()


step_kl_mean_over_d, step_batch_sum = _step_with(_loss_kl_mean_over_d), _step_with(_loss_batch_sum)


def step_sample_and_not_zeroed(model, x_batch, optimizer):
    rec, kl = _terms(model, x_batch, sample="sample")
    loss = -(rec - kl).mean()
    loss.backward()
    optimizer.step()
    return {"loss": loss.item()}


def step_zero_grad_before_step(model, x_batch, optimizer):
    rec, kl = _terms(model, x_batch)
    loss = -(rec - kl).mean()
    loss.backward()
    optimizer.zero_grad()  # clears what backward() just computed
    optimizer.step()
    return {"loss": loss.item()}


def step_returns_tensors(model, x_batch, optimizer):
    rec, kl = _terms(model, x_batch)
    loss = -(rec - kl).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return {"loss": loss, "elbo": -loss}


@pytest.mark.parametrize("right", [reference.training_step, step_right_distributions, step_right_by_hand])
def test_training_step_passes_right_answers(right, notebook_inputs, capsys):
    assert checks.training_step(right).passed
    assert checks.training_step(right, *notebook_inputs).passed
    assert capsys.readouterr().out.count("✅") == 2


def test_training_step_not_done_yet(capsys):
    result = checks.training_step(step_not_done)
    assert not result.passed and "not done yet" in capsys.readouterr().out


def test_training_step_leaves_the_callers_model_and_random_state_alone(notebook_inputs, capsys):
    model, x = notebook_inputs
    before = [p.detach().clone() for p in model.parameters()]
    torch.manual_seed(3)
    checks.training_step(reference.training_step, model, x)
    after_check = torch.rand(1)
    torch.manual_seed(3)
    assert torch.equal(after_check, torch.rand(1))
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters()))
    capsys.readouterr()


@pytest.mark.parametrize("wrong, phrase", [
    (step_ascending, "the loss has the wrong sign"),
    (step_no_kl, "the KL term is left out"),
    (step_sample, "sample() instead of rsample()"),
    (step_pixel_mean, "averaged over the 64 pixels instead of summed"),
    (step_not_zeroed, "the optimizer was not zeroed"),
    (step_no_optimizer_step, "the parameters did not move"),
    (step_two_samples, "the parameter update differs from the reference step's"),
    (step_returns_a_float, "return a dict"),
    (step_returns_the_elbo_as_loss, "the returned loss is"),
    (lambda m, x, o: None, "returned None"),
    (step_kl_mean_over_d, "the KL is averaged over the d latent coordinates"),
    (step_batch_sum, "the loss is summed over the batch"),
    (step_zero_grad_before_step, "zero_grad() ran after loss.backward() and before optimizer.step()"),
    (step_returns_tensors, "is a tensor: return a float"),
])
def test_training_step_mistakes(wrong, phrase, notebook_inputs, capsys):
    assert_caught(lambda: checks.training_step(wrong), phrase, capsys)
    assert_caught(lambda: checks.training_step(wrong, *notebook_inputs), phrase, capsys)


def test_training_step_names_two_mistakes_at_once(notebook_inputs, capsys):
    """sample() and no zero_grad together: both are named (the update matches a step with both)."""
    for inputs in ((), notebook_inputs):
        msg = assert_caught(lambda: checks.training_step(step_sample_and_not_zeroed, *inputs), "2 mistakes at once", capsys)
        assert "sample() instead of rsample()" in msg and "the optimizer was not zeroed" in msg
        assert "wrong sign" not in msg and "differs from the reference" not in msg
