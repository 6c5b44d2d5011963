"""The papers and notes the collection follows: one spelling of each citation.

Every notebook ends with a Markdown section "## Papers and notes this notebook follows" that
lists, for each source it relies on, ``REFERENCES[key].line()`` followed by the section of the
notebook that uses it, e.g.::

    - Kingma, D. P. & Welling, M. (2014). Auto-Encoding Variational Bayes. ICLR. arXiv:1312.6114. Used in section 3: ...

``tests/test_references.py`` checks that the lines in the notebooks are spelled exactly as
here, that each notebook cites at least one source and that every source is cited somewhere.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reference:
    authors: str
    year: str
    title: str
    venue: str
    link: str

    def line(self) -> str:
        """The citation as it appears in a notebook's list (Markdown, without the leading dash)."""
        return f"{self.authors} ({self.year}). *{self.title}*. {self.venue}. {self.link}."


REFERENCES: dict[str, Reference] = {
    "kingma2014": Reference(
        "Kingma, D. P. & Welling, M.", "2014", "Auto-Encoding Variational Bayes", "ICLR",
        "[arXiv:1312.6114](https://arxiv.org/abs/1312.6114)"),
    "rezende2014": Reference(
        "Rezende, D. J., Mohamed, S. & Wierstra, D.", 2014,
        "Stochastic Backpropagation and Approximate Inference in Deep Generative Models", "ICML",
        "[arXiv:1401.4082](https://arxiv.org/abs/1401.4082)"),
    "burda2016": Reference(
        "Burda, Y., Grosse, R. & Salakhutdinov, R.", "2016", "Importance Weighted Autoencoders", "ICLR",
        "[arXiv:1509.00519](https://arxiv.org/abs/1509.00519)"),
    "cremer2018": Reference(
        "Cremer, C., Li, X. & Duvenaud, D.", "2018", "Inference Suboptimality in Variational Autoencoders",
        "ICML", "[arXiv:1801.03558](https://arxiv.org/abs/1801.03558)"),
    "jang2017": Reference(
        "Jang, E., Gu, S. & Poole, B.", "2017", "Categorical Reparameterization with Gumbel-Softmax", "ICLR",
        "[arXiv:1611.01144](https://arxiv.org/abs/1611.01144)"),
    "maddison2017": Reference(
        "Maddison, C. J., Mnih, A. & Teh, Y. W.", 2017,
        "The Concrete Distribution: A Continuous Relaxation of Discrete Random Variables", "ICLR",
        "[arXiv:1611.00712](https://arxiv.org/abs/1611.00712)"),
    "williams1992": Reference(
        "Williams, R. J.", 1992,
        "Simple Statistical Gradient-Following Algorithms for Connectionist Reinforcement Learning",
        "Machine Learning 8, 229-256", "[doi:10.1007/BF00992696](https://doi.org/10.1007/BF00992696)"),
    "blei2017": Reference(
        "Blei, D. M., Kucukelbir, A. & McAuliffe, J. D.", "2017", "Variational Inference: A Review for Statisticians",
        "Journal of the American Statistical Association 112, 859-877",
        "[arXiv:1601.00670](https://arxiv.org/abs/1601.00670)"),
    "dempster1977": Reference(
        "Dempster, A. P., Laird, N. M. & Rubin, D. B.", "1977", "Maximum Likelihood from Incomplete Data via the EM "
        "Algorithm", "Journal of the Royal Statistical Society, Series B 39, 1-38",
        "[doi:10.1111/j.2517-6161.1977.tb01600.x](https://doi.org/10.1111/j.2517-6161.1977.tb01600.x)"),
    "bishop2006": Reference(
        "Bishop, C. M.", "2006", "Pattern Recognition and Machine Learning", "Springer (chapter 9: mixture models "
        "and EM; chapter 10: approximate inference)", "[microsoft.com/research/publication/pattern-recognition-machine-learning]"
        "(https://www.microsoft.com/en-us/research/publication/pattern-recognition-machine-learning/)"),
    "tipping1999": Reference(
        "Tipping, M. E. & Bishop, C. M.", "1999", "Probabilistic Principal Component Analysis",
        "Journal of the Royal Statistical Society, Series B 61, 611-622",
        "[doi:10.1111/1467-9868.00196](https://doi.org/10.1111/1467-9868.00196)"),
    "minka2005": Reference(
        "Minka, T.", "2005", "Divergence Measures and Message Passing", "Microsoft Research Technical Report "
        "MSR-TR-2005-173", "[microsoft.com/research/publication/divergence-measures-and-message-passing]"
        "(https://www.microsoft.com/en-us/research/publication/divergence-measures-and-message-passing/)"),
    "cs236notes": Reference(
        "Stanford CS236 course staff", "n.d.", "CS236 course notes: Variational autoencoders",
        "Stanford University", "[deepgenerativemodels.github.io/notes/vae](https://deepgenerativemodels.github.io/notes/vae/)"),
    "cs236lecture6": Reference(
        "Ermon, S.", "2023", "CS236 Deep Generative Models, Lecture 6: VAEs", "Stanford University",
        "[deepgenerativemodels.github.io](https://deepgenerativemodels.github.io/)"),
}

HEADING = "## Papers and notes this notebook follows"


def references_markdown(uses: dict[str, str]) -> str:
    """The closing section of a notebook: ``uses`` maps a key of REFERENCES to where it is used."""
    unknown = sorted(set(uses) - set(REFERENCES))
    if unknown:
        raise KeyError(f"unknown reference keys {unknown}; known: {sorted(REFERENCES)}")
    lines = [HEADING, ""] + [f"- {REFERENCES[k].line()} {where}" for k, where in uses.items()]
    return "\n".join(lines)
