"""Heading anchors as Jupyter makes them (spaces become '-', nothing else changes), so that the notebooks'
own links (#2.-Slide-11:-the-missing-top-half-...) work on the site too. By import path in conf.py: a
function object in the configuration cannot be pickled."""


def jupyter_slug(text: str) -> str:
    return text.strip().replace(" ", "-")
