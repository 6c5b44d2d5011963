import math

import pytest
import torch
from torch import nn

from vae_lesson.training import NonFiniteLossError, fit


class Quadratic(nn.Module):
    """loss(w) = ||w - target||^2, minimized at w = target."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([3.0, -2.0, 0.5]))
        self.register_buffer("target", torch.tensor([1.0, 1.0, -1.0]))

    def loss(self):
        return ((self.w - self.target) ** 2).sum()


def test_fit_decreases_a_quadratic_loss():
    model = Quadratic()
    start = model.loss().item()
    history = fit(model, lambda step: model.loss(), n_steps=300, lr=0.05, progress=False)
    assert len(history["loss"]) == 300
    assert history["loss"][0] == pytest.approx(start)
    assert history["loss"][-1] < 1e-3 * start
    assert model.loss().item() < 1e-3 * start
    torch.testing.assert_close(model.w.detach(), model.target, atol=0.05, rtol=0)
    # each recorded value is the loss at that step (before that step's update)
    assert all(a >= b - 1e-6 for a, b in zip(history["loss"][:50], history["loss"][1:51]))


def test_history_has_one_value_per_step_and_term():
    model = Quadratic()
    seen = []

    def loss_fn(step):
        loss = model.loss()
        seen.append((step, loss.item()))
        return {"loss": loss, "half": loss / 2, "const": torch.tensor(7.0)}

    history = fit(model, loss_fn, n_steps=17, lr=0.01, progress=False)
    assert set(history) == {"loss", "half", "const"}
    assert [s for s, _ in seen] == list(range(17))
    assert history["loss"] == pytest.approx([v for _, v in seen])
    assert history["half"] == pytest.approx([v / 2 for _, v in seen])
    assert history["const"] == [7.0] * 17


def test_fit_uses_a_given_optimizer():
    model = Quadratic()
    w0 = model.w.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    fit(model, lambda step: model.loss(), n_steps=1, optimizer=opt, progress=False)
    # one plain SGD step: w <- w - 0.1 * 2 (w - target)
    torch.testing.assert_close(model.w.detach(), w0 - 0.1 * 2 * (w0 - model.target))


def test_progress_bar_does_not_break_anything(capsys):
    model = Quadratic()
    history = fit(model, lambda step: model.loss(), n_steps=5, progress=True, desc="unit test")
    assert len(history["loss"]) == 5


def _run_until_nan(nan_step, n_steps=20, term="loss", lr=0.05):
    """Train the quadratic; at ``nan_step`` the term ``term`` turns NaN. Returns the model, the
    raised error and a record of the parameters with which each step's loss was computed."""
    model = Quadratic()
    params_at_step = {}

    def loss_fn(step):
        params_at_step[step] = model.w.detach().clone()
        loss = model.loss()
        bad = torch.tensor(float("nan")) if step >= nan_step else torch.tensor(0.0)
        if term == "loss":
            return loss + bad
        return {"loss": loss, term: bad}

    with pytest.raises(NonFiniteLossError) as info:
        fit(model, loss_fn, n_steps=n_steps, lr=lr, progress=False)
    return model, info.value, params_at_step


def test_nan_loss_stops_with_a_clear_error():
    model, err, params_at_step = _run_until_nan(nan_step=6)
    assert isinstance(err, FloatingPointError)
    assert err.step == 6 and err.term == "loss" and math.isnan(err.value)
    msg = str(err)
    assert "step 6" in msg
    assert "loss = nan" in msg
    assert "smaller learning rate" in msg
    assert "0.005" in msg  # lr / 10 as a concrete suggestion
    assert max(params_at_step) == 6, "training stops at the first non-finite loss"
    # the parameters are those of step 5, the last step whose loss was finite
    assert not torch.equal(params_at_step[5], params_at_step[6])
    assert torch.equal(model.w.detach(), params_at_step[5])
    assert "step 5" in msg


def test_nan_at_the_first_step_keeps_the_initial_parameters():
    model, err, params_at_step = _run_until_nan(nan_step=0)
    assert err.step == 0
    assert torch.equal(model.w.detach(), params_at_step[0])
    assert torch.equal(model.w.detach(), Quadratic().w.detach())
    assert "initial parameters" in str(err)


def test_parameters_that_become_nan_are_rolled_back():
    """A finite loss whose gradient is NaN makes the next parameters NaN; the model goes back
    to the last parameters whose loss was finite."""
    model = Quadratic()
    params_at_step = {}

    def loss_fn(step):
        params_at_step[step] = model.w.detach().clone()
        loss = model.loss()
        if step == 3:  # adds 0 to the value, but d/dw sqrt(0 * sum w) = inf * 0 = NaN
            loss = loss + (model.w.sum() * 0).sqrt()
        return loss

    with pytest.raises(NonFiniteLossError) as info:
        fit(model, loss_fn, n_steps=10, lr=0.05, progress=False)
    assert torch.isnan(params_at_step[4]).all()  # the NaN gradient poisoned the step-4 parameters
    assert info.value.step == 4
    assert torch.equal(model.w.detach(), params_at_step[3])
    assert torch.isfinite(model.w).all()


def test_infinite_loss_is_caught_too():
    model = Quadratic()
    with pytest.raises(NonFiniteLossError, match="step 2: loss = inf"):
        fit(model, lambda s: model.loss() + (float("inf") if s == 2 else 0.0), n_steps=5, progress=False)


def test_nan_in_an_extra_term_names_the_term():
    model, err, params_at_step = _run_until_nan(nan_step=4, term="kl")
    assert err.term == "kl" and err.step == 4
    assert "kl = nan" in str(err)
    assert "step 4" in str(err)
    assert torch.equal(model.w.detach(), params_at_step[3])


@pytest.mark.parametrize("n_steps", [0, -3, 2.5, "10", True, None])
def test_bad_n_steps(n_steps):
    model = Quadratic()
    with pytest.raises(ValueError, match="n_steps"):
        fit(model, lambda s: model.loss(), n_steps=n_steps, progress=False)


@pytest.mark.parametrize("lr", [0, -0.1, float("nan"), float("inf"), "0.1", None])
def test_bad_lr(lr):
    model = Quadratic()
    with pytest.raises(ValueError, match="lr"):
        fit(model, lambda s: model.loss(), n_steps=3, lr=lr, progress=False)


@pytest.mark.parametrize("output", [1.0, None, [torch.tensor(1.0)], {"kl": torch.tensor(1.0)}])
def test_wrong_return_type(output):
    model = Quadratic()
    w0 = model.w.detach().clone()
    with pytest.raises(TypeError, match="loss_fn must return"):
        fit(model, lambda s: output, n_steps=3, progress=False)
    assert torch.equal(model.w.detach(), w0)


class _InterruptAt:
    """A loss function that raises KeyboardInterrupt at one step, like the stop button."""

    def __init__(self, model, step):
        self.model, self.step = model, step

    def __call__(self, step):
        if step == self.step:
            raise KeyboardInterrupt
        return (self.model.weight - 3.0).pow(2).sum()


def test_interrupt_keeps_the_last_completed_step(capsys):
    model = torch.nn.Linear(2, 1, bias=False)
    snapshots = []
    loss = _InterruptAt(model, step=5)

    def recording(step):
        snapshots.append(model.weight.detach().clone())  # parameters at the start of each step
        return loss(step)

    with pytest.raises(KeyboardInterrupt):
        fit(model, recording, n_steps=20, lr=0.1, progress=False)
    # the start of step 5 is the state after the 5th completed update
    assert torch.equal(model.weight.detach(), snapshots[5])
    assert "interrupted after 5 of 20 steps" in capsys.readouterr().out


def test_interrupt_inside_the_update_rolls_it_back(monkeypatch):
    model = torch.nn.Linear(2, 1, bias=False)
    calls = {"n": 0}
    original = torch.optim.Adam.step

    def half_step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # corrupt the parameters halfway through the 3rd update, then stop
            with torch.no_grad():
                model.weight.fill_(float("nan"))
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", half_step)
    before_third = []

    def loss(step):
        before_third.append(model.weight.detach().clone())
        return (model.weight - 3.0).pow(2).sum()

    with pytest.raises(KeyboardInterrupt):
        fit(model, loss, n_steps=10, lr=0.1, progress=False)
    assert torch.isfinite(model.weight).all()
    assert torch.equal(model.weight.detach(), before_third[2])  # as after the 2nd completed update
