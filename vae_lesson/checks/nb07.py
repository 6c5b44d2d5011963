"""Checks for the exercises of notebook 07 (the VAE)."""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

from ..vae import VAE
from ._core import (
    CheckResult, ExerciseError, compare, copies, mark_used_later, register_signatures, register_solutions,
    run_check,
)
from .nb04 import compare_or_epsilon, epsilon_mistakes
from .nb06 import _small_vae

HINTS = {
    "07.1": "the loss is minus the ELBO, averaged over the batch. The reconstruction term is the Bernoulli "
            "log-likelihood of the pixels, SUMMED over the 64 pixels and computed from the logits (torch has a "
            "cross-entropy that takes logits); the KL is the closed form of exercise 03.2, with std = exp(log_std).",
    "07.2": "the reparameterization of notebook 05 applied to the encoder's outputs: the encoder gives a mean and "
            "a log-std for each image; scale the given noise by the std and shift it by the mean, with + and * only.",
    "07.3": "one step = draw z with the reparameterization (so the encoder gets gradients), compute minus the ELBO "
            "(pixels summed, closed-form KL, batch average), clear the old gradients, backpropagate, and let the "
            "optimizer update the parameters, in that order.",
    "07.4": "as in notebook 02, but with the encoder as proposal: the log-weights are log p(x, z_k) - log q(z_k|x) at "
            "the reparameterized samples, and the estimate is the log of their AVERAGE weight, computed in log space "
            "(log-weights near -1000 underflow if exponentiated).",
}
SOLUTIONS = {
    "07.1": "reconstruction = -F.binary_cross_entropy_with_logits(logits, x, reduction='none').sum(-1)\n"
            "kl = 0.5 * (torch.exp(2 * log_std) + mean**2 - 1 - 2 * log_std).sum(-1)\n"
            "return -(reconstruction - kl).mean()",
    "07.2": "mean, log_std = model.encoder.params(x)\nreturn mean + log_std.exp() * eps",
    "07.3": "mean, log_std = model.encoder.params(x_batch)\n"
            "z = torch.distributions.Normal(mean, log_std.exp()).rsample()\n"
            "reconstruction = model.decoder(z).log_prob(x_batch)  # summed over pixels\n"
            "kl = 0.5 * (torch.exp(2 * log_std) + mean**2 - 1 - 2 * log_std).sum(-1)\n"
            "loss = -(reconstruction - kl).mean()\n"
            "optimizer.zero_grad(); loss.backward(); optimizer.step()\n"
            "return {\"loss\": loss.item()}",
    "07.4": "q = model.encoder(x)\nz = q.mean + q.stddev * eps\nlog_w = model.joint_log_prob(x, z) - q.log_prob(z)\n"
            "return torch.logsumexp(log_w, 0) - math.log(eps.shape[0])",
}
register_solutions(SOLUTIONS)  # checks.solution("NN.M") works before any check ran
SIGNATURES = {
    "07.1": "x (B, 64), logits (B, 64), mean (B, d), log_std (B, d) -> ()",
    "07.2": "model (a VAE), x (N, 64), eps (K, N, d) -> (K, N, d)",
    "07.3": "model (a VAE), x_batch (B, 64), optimizer (a torch optimizer) -> (a dict with \"loss\", a float)",
    "07.4": "model (a VAE), x (N, 64), eps (K, N, d) -> (N,)",
}
register_signatures(SIGNATURES)
mark_used_later("07.1", "07.2", "07.3")  # 07.4's function is not used by later cells

_BCE_INSTEAD = ("work from the logits, which is exact: torch.nn.functional.binary_cross_entropy_with_logits, "
                "torch.nn.functional.logsigmoid (log sigmoid(l), and logsigmoid(-l) = log(1 - sigmoid(l))), or "
                "torch.distributions.Bernoulli(logits=logits).log_prob(x).")


def _sharp_vae(seed: int, factor: float = 300.0) -> VAE:
    """A small VAE whose decoder's logits are scaled up: log p(x|z) and the log-weights are around -1000,
    where exp underflows to 0 (even in float64), so only a log-space (log-sum-exp) route gets them right."""
    m = _small_vae(seed)
    with torch.no_grad():
        m.decoder.net[-1].weight.mul_(factor)
        m.decoder.net[-1].bias.mul_(factor)
    return m


def _bernoulli_log_lik(x, logits):
    return -nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)


def _kl(mean, log_std):
    return 0.5 * (torch.exp(2 * log_std) + mean**2 - 1 - 2 * log_std).sum(-1)


def negative_elbo_loss(student_fn) -> CheckResult:
    """Exercise 07.1: student_fn(x (B, 64), logits (B, 64), mean (B, d), log_std (B, d)) -> a scalar,
    the training loss: minus the batch average of [sum_j log Bernoulli(x_j; sigmoid(logits_j)) - KL]."""

    def body(student_fn):
        g = torch.Generator().manual_seed(71)
        for B, d in ((8, 3), (1, 2), (32, 20)):
            x = (torch.rand(B, 64, generator=g) < 0.3).double()
            logits = torch.randn(B, 64, generator=g, dtype=torch.float64) * 3
            mean = torch.randn(B, d, generator=g, dtype=torch.float64)
            log_std = torch.randn(B, d, generator=g, dtype=torch.float64) * 0.5 - 0.3
            out = student_fn(x.clone(), logits.clone(), mean.clone(), log_std.clone())
            if out is None:
                raise ExerciseError("your function returned None. Did you forget `return`?")
            if isinstance(out, torch.Tensor) and out.numel() == B and B > 1:
                raise ExerciseError("return one number for the batch: average the per-image losses over the batch")
            rec, kl = _bernoulli_log_lik(x, logits), _kl(mean, log_std)
            expected = -(rec - kl).mean()
            bce_mean = nn.functional.binary_cross_entropy_with_logits(logits, x)  # averaged over pixels too
            p = torch.sigmoid(logits)
            mistakes = epsilon_mistakes(
                lambda eps: -((x * torch.log(p + eps) + (1 - x) * torch.log(1 - p + eps)).sum(-1) - kl).mean(),
                _BCE_INSTEAD)
            mistakes.update({
                "you averaged the reconstruction over the 64 pixels as well (BCE with reduction='mean'): "
                "log p(x|z) is a sum over pixels. Averaging divides it by 64, which weights the KL 64 times too much.":
                    bce_mean + kl.mean(),
                "the KL term is missing: the loss is -(reconstruction - KL), and without the KL it is a plain autoencoder.":
                    -rec.mean(),
                "the KL enters with the wrong sign: ELBO = reconstruction - KL, so loss = -reconstruction + KL.":
                    -(rec + kl).mean(),
                "log_std is log sigma: the variance in the KL is exp(2 log_std), not exp(log_std).":
                    -(rec - 0.5 * (torch.exp(log_std) + mean**2 - 1 - 2 * log_std).sum(-1)).mean(),
                "the KL of one dimension is 1/2 (sigma^2 + mu^2 - 1 - log sigma^2): the 1/2 is missing.":
                    -(rec - 2 * kl).mean(),
                "that is the sum over the batch; average over the images, so the loss does not grow with the batch size.":
                    -(rec - kl).sum(),
            })
            # an epsilon inside the log makes log p(x|z) larger, so the loss smaller (direction -1)
            compare_or_epsilon(torch.as_tensor(out).reshape(()), expected, "loss", mistakes, _BCE_INSTEAD,
                               direction=-1, rtol=1e-6, atol=1e-6)

    return run_check("Exercise 07.1 (the VAE's loss: minus the ELBO)", body, HINTS["07.1"], student_fn,
                     solution=SOLUTIONS["07.1"])


def encoder_sample(student_fn, model: VAE | None = None, x: torch.Tensor | None = None) -> CheckResult:
    """Exercise 07.2: student_fn(model, x (N, 64), eps (K, N, d)) -> z (K, N, d): a reparameterized draw from
    the encoder q_phi(z|x) = N(mu_phi(x), diag sigma_phi(x)^2), z = mu + sigma * eps, with gradients to phi."""

    def body(student_fn):
        g = torch.Generator().manual_seed(72)
        cases = [] if model is None or x is None else [(model, x[:16])]
        cases += [(_small_vae(720 + i), (torch.rand(n, 64, generator=g) < 0.4).float()) for i, n in enumerate((5, 1))]
        for m, xs in cases:
            eps = torch.randn(3, xs.shape[0], m.latent_dim, generator=g)
            mine, xs_given = copies(m, xs)  # the student's copies: the gradient test below uses mine's parameters
            z = student_fn(mine, xs_given, eps.clone())
            if not isinstance(z, torch.Tensor):
                raise ExerciseError(f"return a torch tensor, not {type(z).__name__}")
            mean, log_std = m.encoder.params(xs)
            expected = (mean + log_std.exp() * eps).detach()
            try:
                compare(z, expected, "z", {
                    "the encoder outputs log sigma: scale eps by exp(log_std), not by log_std.": (mean + log_std * eps).detach(),
                    "exp(2 log_std) is the variance; scale eps by the standard deviation exp(log_std).":
                        (mean + torch.exp(2 * log_std) * eps).detach(),
                    "z must use the encoder's mean and spread, not only the noise: z = mean + exp(log_std) * eps.": eps,
                }, rtol=1e-4, atol=1e-5)
            except ExerciseError as exc:
                if not z.requires_grad and "values differ" in str(exc):
                    raise ExerciseError("z is not mean + exp(log_std) * eps for the eps you were given, and no gradient "
                                        "flows back to the encoder (phi): .sample() draws its own noise and cuts the graph. "
                                        "Build z from the encoder's outputs and eps with + and *.") from None
                raise
            if not z.requires_grad:
                raise ExerciseError("the values are right, but no gradient flows back to the encoder (phi): build z "
                                    "from the encoder's outputs with + and *, without .sample(), torch.no_grad() or .detach()")
            grads = torch.autograd.grad(z.sum(), [p for p in mine.encoder.parameters()], allow_unused=True)
            if any(gr is None for gr in grads):
                raise ExerciseError("some encoder parameters get no gradient: z must come from model.encoder")

    return run_check("Exercise 07.2 (a reparameterized sample from the encoder)", body, HINTS["07.2"], student_fn,
                     solution=SOLUTIONS["07.2"])


def importance_weighted_log_px(student_fn, model: VAE | None = None, x: torch.Tensor | None = None) -> CheckResult:
    """Exercise 07.4: student_fn(model, x (N, 64), eps (K, N, d)) -> (N,), the importance-weighted estimate
    log (1/K) sum_k p(x, z_k) / q_phi(z_k|x) with z_k = mu_phi(x) + sigma_phi(x) * eps_k."""

    def body(student_fn):
        g = torch.Generator().manual_seed(73)
        cases = [] if model is None or x is None else [(model, x[:8], 50)]
        cases += [(_small_vae(730 + i), (torch.rand(n, 64, generator=g) < 0.4).float(), k)
                  for i, (n, k) in enumerate(((5, 20), (1, 1), (3, 200)))]
        cases.append((_sharp_vae(734), (torch.rand(4, 64, generator=g) < 0.4).float(), 10))  # log-weights ~ -1000
        for m, xs, k in cases:
            eps = torch.randn(k, xs.shape[0], m.latent_dim, generator=g)
            with torch.no_grad():
                answer = student_fn(*copies(m, xs, eps))
                q = m.encoder(xs)
                z = q.mean + q.stddev * eps
                log_w = m.joint_log_prob(xs, z) - q.log_prob(z)
                expected = torch.logsumexp(log_w, 0) - math.log(k)
                mistakes = {
                    "that is the average of the log-weights, the ELBO: the importance-weighted estimate is the log "
                    "of the average weight, log (1/K) sum_k w_k (use torch.logsumexp, then subtract log K).": log_w.mean(0),
                    "you forgot to subtract log K: logsumexp gives log sum_k w_k, and the average divides by K.":
                        torch.logsumexp(log_w, 0),
                    f"you divided by N = {xs.shape[0]}, the number of images, instead of K = {k}, the number of "
                    "samples z_k per image (eps has shape (K, N, d)): subtract log K.":
                        torch.logsumexp(log_w, 0) - math.log(xs.shape[0]),
                    "the weight is p(x, z) / q(z|x): subtract log q, do not add it.":
                        torch.logsumexp(m.joint_log_prob(xs, z) + q.log_prob(z), 0) - math.log(k),
                    "the weight uses the joint p(x, z) = p(z) p(x|z): the prior log p(z) is missing.":
                        torch.logsumexp(m.decoder(z).log_prob(xs) - q.log_prob(z), 0) - math.log(k),
                }
            if k > 1:
                compare(answer, expected, "log p(x) estimate", mistakes, rtol=1e-4, atol=1e-3)
            else:
                compare(answer, expected, "log p(x) estimate", {}, rtol=1e-4, atol=1e-3)

    return run_check("Exercise 07.4 (the importance-weighted estimate of log p(x))", body, HINTS["07.4"], student_fn,
                     solution=SOLUTIONS["07.4"])


_STEP_LR = 0.05  # the check drives the student's step with plain SGD: the update is -lr * the gradient used


def _flat(tensors) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def _reference_gradients(model: VAE, x: torch.Tensor, seed: int) -> dict[str, torch.Tensor]:
    """The pieces of the loss's gradient over all parameters (flattened, model.parameters() order), with
    the noise the check's seed gives ``rsample``: reconstruction part (with z reparameterized, and with z
    detached as ``sample()`` would give), KL part; and the loss itself."""
    params = list(model.parameters())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, log_std = model.encoder.params(x)
        std = log_std.exp()
        z = torch.distributions.Independent(torch.distributions.Normal(mean, std), 1).rsample()
    rec = model.decoder(z).log_prob(x).mean()
    rec_detached = model.decoder(z.detach()).log_prob(x).mean()
    kl = (0.5 * (std**2 + mean**2 - 1 - 2 * log_std).sum(-1)).mean()

    def grad(value):
        gs = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
        return _flat([torch.zeros_like(p) if g is None else g for p, g in zip(params, gs)])

    return {"rec": grad(-rec), "rec_detached": grad(-rec_detached), "kl": grad(kl),
            "loss": float(-(rec - kl).detach())}


def _close(a: torch.Tensor, b: torch.Tensor, n_encoder: int, rtol: float = 1e-3) -> bool:
    """Relative agreement of two parameter updates, the encoder's and the decoder's parts separately."""
    for sl in (slice(0, n_encoder), slice(n_encoder, None)):
        ref = b[sl].norm()
        if (a[sl] - b[sl]).norm() > rtol * max(float(ref), 1e-12):
            return False
    return True


# The usual mistakes of a training step, each a change of the update it gives (the update is -lr times
# sign * scale * (reconstruction part + KL part), plus the last step's gradient if .grad was not zeroed).
_STEP_MISTAKES = {
    "sign": "the loss has the wrong sign: you climbed the loss (descended the ELBO). The optimizer minimizes, so "
            "the loss is MINUS the ELBO: loss = -(reconstruction - kl).",
    "not zeroed": "the optimizer was not zeroed: the gradient left in .grad by the previous step was added to this "
                  "one. Call optimizer.zero_grad() before loss.backward().",
    "no kl": "the KL term is left out: the loss is -(reconstruction - KL); without the KL it is a plain autoencoder, "
             "and q_phi(z|x) is no longer pulled towards p(z).",
    "kl averaged over d": "the KL is averaged over the d latent coordinates: KL(q || p(z)) is a SUM over them "
                          "(the 1-D KLs add up, as log-densities of independent coordinates do).",
    "sample": "z was drawn with sample() instead of rsample(): sample() cuts the graph, so the encoder (phi) gets no "
              "gradient from the reconstruction, only from the KL. Use q.rsample() (or mean + std * eps).",
    "pixels averaged": "the reconstruction is averaged over the 64 pixels instead of summed: log p(x|z) is a SUM of "
                       "the pixels' log-probabilities. Averaging divides it by 64 and weights the KL 64 times too much.",
    "batch summed": "the loss is summed over the batch: average it over the images (.mean()), so that the step's "
                    "size does not grow with the batch size.",
}


def _diagnose_step(update, ref, junk, n_encoder: int, batch: int, latent: int) -> str | None:
    """The smallest set of the usual mistakes (``_STEP_MISTAKES``) whose update matches the student's, as one
    message naming each of them; None if no combination of them explains it."""
    import itertools

    best = None
    for sign, summed, sample, pixels, kl, zeroed in itertools.product(
            (1, -1), (False, True), (False, True), (False, True), ("full", "none", "mean"), (True, False)):
        if (summed and batch == 1) or (kl == "mean" and latent == 1):
            continue  # indistinguishable from the right step
        rec = ref["rec_detached"] if sample else ref["rec"]
        kl_part = {"full": ref["kl"], "none": 0 * ref["kl"], "mean": ref["kl"] / latent}[kl]
        wrong = -_STEP_LR * sign * (batch if summed else 1) * ((rec / 64 if pixels else rec) + kl_part)
        if not zeroed:
            wrong = wrong - _STEP_LR * junk
        names = [n for n, on in (("sign", sign == -1), ("not zeroed", not zeroed), ("no kl", kl == "none"),
                                 ("kl averaged over d", kl == "mean"), ("sample", sample),
                                 ("pixels averaged", pixels), ("batch summed", summed)) if on]
        if names and _close(update, wrong, n_encoder, rtol=1e-2) and (best is None or len(names) < len(best)):
            best = names
    if best is None:
        return None
    if len(best) == 1:
        return _STEP_MISTAKES[best[0]]
    return (f"{len(best)} mistakes at once (the update matches a step with all of them):\n"
            + "\n".join(f"  - {_STEP_MISTAKES[n]}" for n in best))


def training_step(student_fn, model: VAE | None = None, x: torch.Tensor | None = None) -> CheckResult:
    """Exercise 07.3: student_fn(model, x_batch (B, 64), optimizer) -> dict with "loss": one training step,
    loss = -(1/B) sum_b [log p(x_b | z_b) - KL(q_phi(z | x_b) || p(z))] with z_b = q_phi(z | x_b).rsample(),
    then zero_grad, backward, step.

    The check gives the step a copy of the model (the notebook's own, then fresh small ones), plain SGD and
    a .grad already filled with junk (as a previous step would leave it), with torch seeded so that
    ``rsample()`` draws known noise; it compares the parameter update with -lr * the reference gradient,
    and names the usual mistakes by the update they would give."""

    def body(student_fn):
        with torch.random.fork_rng(devices=[]):  # the small models are made under torch.manual_seed
            checked_body(student_fn)

    def checked_body(student_fn):
        g = torch.Generator().manual_seed(74)
        cases = [] if model is None or x is None else [(model, x[:64])]
        cases += [(_small_vae(740 + i), (torch.rand(n, 64, generator=g) < 0.4).float()) for i, n in enumerate((16, 3))]
        for i, (m, xs) in enumerate(cases):
            seed = 740 + i
            mine = copy.deepcopy(m).train()
            params = list(mine.parameters())
            n_encoder = sum(p.numel() for p in mine.encoder.parameters())
            if [id(p) for p in params[:len(list(mine.encoder.parameters()))]] != [id(p) for p in mine.encoder.parameters()]:
                raise RuntimeError("the check expects the encoder's parameters first")  # pragma: no cover
            before = _flat([p.detach().clone() for p in params])
            junk = [torch.randn(p.shape, generator=g) * 0.05 for p in params]
            for p, j in zip(params, junk):
                p.grad = j.clone()
            optimizer = torch.optim.SGD(params, lr=_STEP_LR)
            torch.manual_seed(seed)
            out = student_fn(mine, xs.clone(), optimizer)
            if out is None:
                raise ExerciseError("your function returned None: return a dict such as {\"loss\": loss.item(), ...}")
            if not isinstance(out, dict) or "loss" not in out:
                raise ExerciseError(f"return a dict with at least the key \"loss\" (a float), not {type(out).__name__}")
            update = _flat([p.detach() for p in params]) - before
            ref = _reference_gradients(copy.deepcopy(m).train(), xs, seed)
            expected = -_STEP_LR * (ref["rec"] + ref["kl"])
            if float(update.abs().max()) == 0.0:
                if all(p.grad is None or float(p.grad.abs().max()) == 0.0 for p in params):
                    raise ExerciseError("the parameters did not move, and their gradients are empty: optimizer.zero_grad() "
                                        "ran after loss.backward() and before optimizer.step(), so the step had nothing "
                                        "to apply. The order is zero_grad(), backward(), step().")
                raise ExerciseError("the parameters did not move, although the gradients are there: after "
                                    "loss.backward(), call optimizer.step().")
            if not _close(update, expected, n_encoder):
                found = _diagnose_step(update, ref, _flat(junk), n_encoder, batch=xs.shape[0], latent=m.latent_dim)
                if found:
                    raise ExerciseError(found)
                err = float((update - expected).norm() / expected.norm())
                raise ExerciseError(
                    f"the parameter update differs from the reference step's by {err:.1%} (relative). The check seeds "
                    "torch before calling your function: draw z once per image with q.rsample() (or mean + std * "
                    "torch.randn_like(std)), with q = N(mean, diag std^2) from model.encoder.params(x_batch); use "
                    "only the optimizer you are given, one step.")
            for key in ("loss", "elbo"):
                if isinstance(out.get(key), torch.Tensor):
                    raise ExerciseError(
                        f"the update is right, but out[\"{key}\"] is a tensor: return a float, e.g. loss.item(). "
                        "The training loop keeps every step's numbers, and a tensor that requires grad would keep "
                        "the whole graph of its step alive with it.")
            try:
                loss = float(out["loss"])
            except (TypeError, ValueError):
                raise ExerciseError(f"out[\"loss\"] should be a number, got {type(out['loss']).__name__}") from None
            if not math.isclose(loss, ref["loss"], rel_tol=1e-4, abs_tol=1e-4):
                raise ExerciseError(f"the update is right, but the returned loss is {loss:.6g}; the step's loss "
                                    f"-(reconstruction - KL), batch average, is {ref['loss']:.6g} nats per image.")
            if "elbo" in out and not math.isclose(float(out["elbo"]), -ref["loss"], rel_tol=1e-4, abs_tol=1e-4):
                raise ExerciseError(f"out[\"elbo\"] is {float(out['elbo']):.6g}, but the batch ELBO is {-ref['loss']:.6g} "
                                    "(= minus the loss).")

    return run_check("Exercise 07.3 (one training step)", body, HINTS["07.3"], student_fn,
                     solution=SOLUTIONS["07.3"])
