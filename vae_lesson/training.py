"""A small training loop: progress bar, loss history, and a clear stop on NaN or inf."""
from __future__ import annotations

import math
import time
from typing import Callable, Mapping, Union

import torch
from tqdm.auto import tqdm

from .seeding import with_training_threads
from .validation import check_positive_int

LossOutput = Union[torch.Tensor, Mapping[str, torch.Tensor]]


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss; the model keeps its last good parameters."""

    def __init__(self, step: int, term: str, value: float, lr: float):
        self.step, self.term, self.value = step, term, value
        super().__init__(
            f"training stopped at step {step}: {term} = {value} is not finite. "
            f"The model is back at {'its initial parameters' if step == 0 else f'its parameters of step {step - 1}, the last with a finite loss'}. "
            f"Try a smaller learning rate (now {lr:g}, e.g. {lr / 10:g}), check the data for NaN or "
            f"extreme values, and make sure every standard deviation stays > 0."
        )


def _as_terms(out: LossOutput) -> dict[str, torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return {"loss": out}
    if isinstance(out, Mapping) and "loss" in out:
        return dict(out)
    raise TypeError(
        "loss_fn must return a scalar tensor, or a dict with a 'loss' entry (the quantity to "
        f"minimize) and any other terms to display; got {type(out).__name__}"
    )


@with_training_threads
def fit(
    model: torch.nn.Module,
    loss_fn: Callable[[int], LossOutput],
    n_steps: int,
    lr: float = 1e-2,
    optimizer: torch.optim.Optimizer | None = None,
    desc: str = "training",
    progress: bool = True,
    refresh_every: int = 25,
    lr_schedule: Callable[[float], float] | None = None,
    time_budget: float | None = None,
    callback: Callable[[int], Mapping[str, float] | None] | None = None,
    callback_every: int = 250,
) -> dict[str, list[float]]:
    """Minimize ``loss_fn(step)`` over ``model``'s parameters for ``n_steps`` gradient steps.

    loss_fn(step) returns a scalar tensor, or a dict {"loss": scalar, other terms...}; every
    term is recorded in the returned history (one float per step) and shown on a tqdm.auto
    progress bar. If any term is NaN or infinite the loop stops with ``NonFiniteLossError``
    naming the step and the term, and restores the last parameters whose loss was finite.
    Adam with learning rate ``lr`` unless an ``optimizer`` is given.

    Options for longer runs: ``lr_schedule(fraction)`` multiplies the learning rate, where
    fraction in [0, 1) is step / n_steps (or elapsed / time_budget); ``time_budget`` (seconds)
    stops the loop when the time is used up, n_steps then being a maximum; ``callback(step)``
    runs before the first step and after every ``callback_every`` steps and the last (e.g. to
    evaluate held-out data); what it returns is shown on the progress bar.
    """
    check_positive_int(n_steps, "n_steps")
    check_positive_int(callback_every, "callback_every")
    if time_budget is not None and (isinstance(time_budget, bool) or not isinstance(time_budget, (int, float))
                                    or not time_budget > 0):
        raise ValueError(f"time_budget must be a positive number of seconds, got {time_budget!r}")
    if optimizer is None:
        if isinstance(lr, bool) or not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
            raise ValueError(f"lr must be a positive number, got {lr!r}")
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    lr_now = base_lrs[0]
    history: dict[str, list[float]] = {}
    bar = tqdm(range(n_steps), desc=desc, disable=not progress, leave=True)
    # the last parameters with a finite loss, copied in place at every step (cheaper than deepcopy)
    live = model.state_dict()  # detached views that share storage with the parameters and buffers
    last_good = {k: v.clone() for k, v in live.items()}
    completed, updating = 0, False  # steps whose update went through; inside optimizer.step()?
    shown: dict[str, str] = {}
    start = time.perf_counter()

    def run_callback(step: int) -> None:
        out = callback(step) if callback is not None else None
        if out:
            shown.update({k: f"{v:.4g}" for k, v in out.items()})
            bar.set_postfix(shown, refresh=False)

    try:
        run_callback(0)
        for step in bar:
            if time_budget is not None or lr_schedule is not None:
                elapsed = time.perf_counter() - start
                if time_budget is not None and elapsed >= time_budget:
                    break
                if lr_schedule is not None:
                    fraction = elapsed / time_budget if time_budget is not None else step / n_steps
                    for group, base in zip(optimizer.param_groups, base_lrs):
                        group["lr"] = base * lr_schedule(fraction)
                    lr_now = optimizer.param_groups[0]["lr"]  # what a NaN message quotes
            optimizer.zero_grad(set_to_none=True)
            terms = _as_terms(loss_fn(step))
            values = {k: float(v.detach()) for k, v in terms.items()}
            for name, value in values.items():
                if not math.isfinite(value):
                    model.load_state_dict(last_good)
                    raise NonFiniteLossError(step, name, value, lr_now)
            for k, v in live.items():
                last_good[k].copy_(v)
            terms["loss"].backward()
            updating = True
            optimizer.step()
            updating = False
            completed = step + 1
            for k, v in values.items():
                history.setdefault(k, []).append(v)
            if completed % callback_every == 0:
                run_callback(completed)
            if step % refresh_every == 0 or step == n_steps - 1:
                shown.update({k: f"{v:.4g}" for k, v in values.items()})
                bar.set_postfix(shown, refresh=False)
        if completed % callback_every != 0:
            run_callback(completed)
    except KeyboardInterrupt:
        # The stop button. Outside optimizer.step() the parameters are those of the last completed
        # step; inside it they may be half updated, so go back to the snapshot from before it.
        if updating:
            model.load_state_dict(last_good)
        print(f"{desc}: interrupted after {completed} of {n_steps} steps; the model keeps the parameters "
              f"of the last completed step. Re-run the cell to train again.")
        raise
    finally:
        bar.close()
    return history
