"""Generated Markdown blocks (mlearn_study.doc_blocks.write_block)."""
from __future__ import annotations

import pytest

from mlearn_study.doc_blocks import write_block

BEGIN, END = "<!-- t:begin -->", "<!-- t:end -->"


def test_block_is_replaced_and_the_prose_around_it_kept(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text(f"# title\n\nbefore\n{BEGIN}\nold table\n{END}\nafter\n")
    write_block(doc, "new table", BEGIN, END)
    assert doc.read_text() == f"# title\n\nbefore\n{BEGIN}\nnew table\n{END}\nafter\n"


def test_missing_markers_are_an_error_naming_the_file_unless_appending(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("# title\n")
    with pytest.raises(ValueError, match=r"doc\.md: no <!-- t:begin -->"):
        write_block(doc, "table", BEGIN, END)
    assert doc.read_text() == "# title\n"
    write_block(doc, "table", BEGIN, END, append_if_missing=True)
    assert doc.read_text() == f"# title\n\n{BEGIN}\ntable\n{END}\n"
    fresh = tmp_path / "fresh.md"
    write_block(fresh, "table", BEGIN, END, append_if_missing=True)
    assert fresh.read_text() == f"{BEGIN}\ntable\n{END}\n"
