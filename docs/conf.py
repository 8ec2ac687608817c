"""Sphinx configuration of pylip's documentation (build: see guide/testing)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PYLIP_THREADS", "1")

import pylip  # noqa: E402

project = "pylip"
author = "pylip developers"
copyright = "2026, pylip developers"  # noqa: A001
release = version = pylip.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "sphinx.ext.mathjax",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "examples/README.txt"]
html_theme = "furo"
html_title = f"pylip {release}"

# The prose lives in README.md and reference/README.md, included by the pages
# (one copy): their headings start below the pages' titles, and their links
# point at repository files that are not pages.
suppress_warnings = ["myst.header", "myst.xref_missing"]
myst_heading_anchors = 3

autodoc_default_options = {"members": True, "show-inheritance": False}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_mock_imports: list[str] = []
napoleon_google_docstring = True
napoleon_numpy_docstring = False

sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
}
