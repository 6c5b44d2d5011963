"""vae_lesson: the helper package of the VAE course (Stanford CS236, Lecture 6).

Modules, one idea each:
- ``seeding``: ``seed_everything`` for reproducible runs
- ``data``: the bundled 8x8 digits (fixed split) and toy 2-D data sets, all offline
- ``notation``: the who's who of symbols and names
- ``models``: finite mixtures with EM, the latent Gaussian model ("infinite mixture"),
  probabilistic PCA and a 1-D latent model with exact answers
- ``bernoulli_mixture``: a mixture of Bernoullis over binary digits, exact given a hidden half
- ``estimators``, ``objectives``: Monte Carlo estimates of log p(x); the ELBO and Gaussian KL
- ``missing_half``, ``variational``: variational inference per data point (notebook 04)
- ``gradients``: score-function and pathwise gradient estimators (notebook 05)
- ``training``: ``fit``, a loop with a progress bar and a clear stop on NaN
- ``plots`` and ``widgets``: pictures and interactive widgets (the only modules that draw)
- ``checks``: exercise checks with instant feedback
"""
from .seeding import seed_everything

__all__ = ["seed_everything"]
__version__ = "0.1.0"
