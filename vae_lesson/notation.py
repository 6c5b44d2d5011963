"""The one "who's who" of symbols and names used by every notebook (CS236 Lecture 6)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Role:
    symbol: str  # LaTeX, without the dollar signs
    lecture_name: str
    code_name: str
    what: str
    computed: str


WHO_IS_WHO: tuple[Role, ...] = (
    Role(r"p(z)", "prior", "prior", r"$\mathcal{N}(0, I)$ over the latents $z$ (a categorical in a finite mixture)", "yes"),
    Role(r"p(x \mid z;\theta)", "decoder, likelihood", "decoder",
         "a simple distribution over $x$ whose parameters a network of $z$ outputs", "yes"),
    Role(r"p(x, z;\theta)", "joint, the generative model", "joint_log_prob", r"$p(z)\,p(x \mid z;\theta)$", "yes"),
    Role(r"p(x;\theta)", "marginal likelihood, evidence", "log_marginal", r"$\int p(x, z;\theta)\,dz$",
         "exactly only on small models; otherwise estimated"),
    Role(r"p(z \mid x;\theta)", "true posterior", "posterior", "what inference wants (Bayes' rule)",
         "exactly only on small models; never in a VAE"),
    Role(r"q(z;\phi_i)", "variational distribution of data point $i$", "q",
         r"a tractable family with its own $\phi_i$ per data point", "yes"),
    Role(r"q_\phi(z \mid x)", "encoder, inference network, variational posterior", "encoder",
         r"a network that outputs $\phi$ for any $x$ (amortization)", "yes"),
    Role(r"\mathrm{ELBO}(x;\theta,\phi)", "evidence lower bound", "elbo",
         r"$\mathbb{E}_q[\log p(x, z;\theta) - \log q(z)] \le \log p(x;\theta)$",
         "estimated, or in closed form where possible"),
)


@dataclass(frozen=True)
class Symbol:
    symbol: str  # LaTeX, without the dollar signs
    meaning: str


# One meaning per symbol across the collection (tests/test_notation.py checks the notebooks for
# the old double meanings).
SYMBOLS: tuple[Symbol, ...] = (
    Symbol("x", "a data point: an 8x8 digit as 64 pixels ($D = 64$), or a point in the plane (01-03); $x_i$ the $i$-th of $N$"),
    Symbol("z", "its latent variable: $d$ numbers, or one of $C$ values when discrete"),
    Symbol(r"\theta", "the generative model's parameters: the prior's and the decoder's"),
    Symbol(r"\phi", r"the variational parameters: $\phi_i$ of one data point's $q$ (04), a categorical $q$'s logits (05), "
                    "the encoder's weights (06, 07)"),
    Symbol("K", r"the number of samples $z_1, \dots, z_K$ in a Monte Carlo estimate ($\log p_K(x)$, the importance-weighted bound)"),
    Symbol("C", "the number of values of a discrete $z$: a mixture's components (01, 04), a categorical's categories (05); index $c$"),
    Symbol(r"\eta", r"a logit: $\phi = \mathrm{sigmoid}(\eta)$ (04)"),
    Symbol(r"\lambda", r"the encoder's weights while 06 introduces them ($\phi_i \approx f_\lambda(x_i)$), then called $\phi$"),
)


def symbols_markdown() -> str:
    """The symbols table as Markdown."""
    lines = ["| symbol | means, everywhere in the course |", "|---|---|"]
    lines += [f"| ${s.symbol}$ | {s.meaning} |" for s in SYMBOLS]
    return "\n".join(lines)


def who_is_who_markdown() -> str:
    """The who's-who table as Markdown (render it with ``IPython.display.Markdown``)."""
    lines = [
        "| symbol | name in the lecture | name in code | what it is | computed? |",
        "|---|---|---|---|---|",
    ]
    for r in WHO_IS_WHO:
        lines.append(f"| ${r.symbol}$ | {r.lecture_name} | `{r.code_name}` | {r.what} | {r.computed} |")
    lines.append("")
    lines.append(
        "Beware the naming trap: $p(x \\mid z;\\theta)$ is the **decoder**; $p(z \\mid x;\\theta)$ is the "
        "**true posterior**, which we usually cannot compute; $q_\\phi(z \\mid x)$ is the **encoder**, "
        "our approximation of it. Log-probabilities are in nats (natural log)."
    )
    lines += ["", symbols_markdown()]
    return "\n".join(lines)
