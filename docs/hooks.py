"""mkdocs hook: the home page (docs/index.md) is the repository's README.md.

The README links to the documentation as ``docs/<page>.md`` (right on GitHub, where it sits at the root);
on the site it is ``index.md`` inside docs/, so those links lose their ``docs/`` prefix here.
"""
from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri != "index.md":
        return markdown
    return re.sub(r"\]\(docs/", "](", README.read_text(encoding="utf-8"))
