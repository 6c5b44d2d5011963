"""vae.training_step, the package twin of the step students write in notebook 07: it is exactly one
step of vae.train_vae, it descends the loss (= minus the ELBO), and it rejects bad input clearly."""
import copy
import dataclasses

import pytest
import torch

from vae_lesson import vae
from vae_lesson.data import load_digits
from vae_lesson.objectives import kl_to_standard_normal

SMALL = vae.Recipe(latent_dim=3, hidden=16, layers=1, n_steps=1, batch_size=32, seed=4)


def _first_batch(recipe, grey):
    """What train_vae's first step sees: the same model init, the same shuffled batch, the same jitter."""
    generator = torch.Generator().manual_seed(recipe.seed)
    torch.manual_seed(recipe.seed)
    model = vae.VAE.from_config(recipe.model_config())
    order = torch.randperm(grey.shape[0], generator=generator)
    x = vae.jittered_binarize(grey[order[:recipe.batch_size]], recipe.threshold_jitter, generator)
    return model, x


@pytest.mark.parametrize("kl_weight", [1.0, 0.0])
def test_one_training_step_is_one_step_of_train_vae(kl_weight):
    grey = load_digits().x_train
    recipe = dataclasses.replace(SMALL, kl_weight=kl_weight)
    trained, _ = vae.train_vae(recipe, grey, progress=False)
    model, x = _first_batch(recipe, grey)  # leaves torch's global generator where train_vae's step draws eps
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr, fused=True)
    out = vae.training_step(model, x, optimizer, kl_weight=kl_weight)
    for (name, a), b in zip(model.state_dict().items(), trained.state_dict().values()):
        assert torch.equal(a, b), name
    assert set(out) == {"loss", "elbo", "reconstruction", "kl"}


def test_training_step_returns_the_batch_terms_and_its_gradient_is_minus_the_elbos():
    torch.manual_seed(0)
    model = vae.VAE(latent_dim=2, hidden=8, layers=1)
    x = load_digits(binarized=True).x_train[:16]
    before = copy.deepcopy(model)
    torch.manual_seed(11)
    out = vae.training_step(model, x, torch.optim.SGD(model.parameters(), lr=0.01))
    # the same draw by hand: loss = -(mean reconstruction - mean KL), SGD moves by -lr * gradient
    torch.manual_seed(11)
    mean, log_std = before.encoder.params(x)
    z = mean + log_std.exp() * torch.randn_like(mean)
    rec = before.decoder(z).log_prob(x).mean()
    kl = kl_to_standard_normal(mean, log_std.exp()).mean()
    loss = -(rec - kl)
    loss.backward()
    assert out["loss"] == pytest.approx(float(loss.detach()), rel=1e-6)
    assert out["elbo"] == pytest.approx(-out["loss"], rel=1e-6)
    assert out["reconstruction"] == pytest.approx(float(rec.detach()), rel=1e-6)
    assert out["kl"] == pytest.approx(float(kl.detach()), rel=1e-6) and out["kl"] > 0
    for p, q in zip(model.parameters(), before.parameters()):
        torch.testing.assert_close(p.detach(), (q - 0.01 * q.grad).detach(), rtol=1e-5, atol=1e-7)


def test_training_steps_raise_the_elbo():
    torch.manual_seed(0)
    model = vae.VAE(latent_dim=2, hidden=32, layers=1)
    x = load_digits(binarized=True).x_train[:256]
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    before = vae.evaluate_elbo(model, x)["elbo"]
    for _ in range(100):
        vae.training_step(model, x, optimizer)
    assert vae.evaluate_elbo(model, x)["elbo"] > before + 5


def test_training_step_rejects_bad_input():
    model = vae.VAE(latent_dim=2, hidden=8, layers=1)
    x = load_digits(binarized=True).x_train[:4]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="64 pixels"):
        vae.training_step(model, x[:, :10], opt)
    with pytest.raises(ValueError, match="0s and 1s|binary|0 or 1"):
        vae.training_step(model, x * 0.5, opt)
    bad = x.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN|finite"):
        vae.training_step(model, bad, opt)
    with pytest.raises(ValueError, match="kl_weight"):
        vae.training_step(model, x, opt, kl_weight=-1.0)
    with pytest.raises(ValueError, match="optimizer"):
        vae.training_step(model, x, "adam")
    with pytest.raises(ValueError, match="vae.VAE"):
        vae.training_step(torch.nn.Linear(2, 2), x, opt)


def test_train_vae_constant_schedule_keeps_the_learning_rate_and_rejects_unknown_names():
    grey = load_digits().x_train
    recipe = dataclasses.replace(SMALL, n_steps=3)
    cosine, _ = vae.train_vae(recipe, grey, progress=False)
    constant, _ = vae.train_vae(recipe, grey, progress=False, lr_schedule="constant")
    assert any(not torch.equal(a, b) for a, b in zip(cosine.state_dict().values(), constant.state_dict().values()))
    with pytest.raises(ValueError, match="lr_schedule"):
        vae.train_vae(recipe, grey, progress=False, lr_schedule="linear")
