"""What the report says of the code the cells ran."""

from expression_perceiver.study.report import revisions_line


def test_cells_from_several_code_revisions_are_flagged():
    one = revisions_line(["a" * 40])
    assert one == f"All cells ran code revision {'a' * 12}."
    mixed = revisions_line(["a" * 40, "b" * 40 + " (with uncommitted changes)"])
    listed = "aaaaaaaaaaaa, bbbbbbbbbbbb (with uncommitted changes)"
    assert mixed.startswith(f"**The cells ran 2 code revisions** ({listed})")
    assert "rerun the older cells" in mixed
