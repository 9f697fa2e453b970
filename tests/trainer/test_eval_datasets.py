"""Eval sets from Parquet: the readers take the image column and the label or caption column only."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from trainer.eval.datasets import read_captions, read_labelled
from core.errors import WitError


def test_parquet_eval_sets_read_only_what_they_use(tmp_path):
    extra = [b"\0" * 1000] * 3                              # e.g. a second image a Hugging Face export carries
    pq.write_table(pa.table({"image": [b"a", b"b", b"c"], "label": ["x", "y", "x"], "other": extra}),
                   tmp_path / "labelled.parquet")
    labelled = read_labelled(str(tmp_path / "labelled.parquet"))
    assert [r["data"] for r in labelled.rows] == [b"a", b"b", b"c"] and labelled.labels.tolist() == [0, 1, 0]
    (tmp_path / "captioned").mkdir()
    for i in range(2):                                       # a directory of parts
        pq.write_table(pa.table({"jpg": [b"p%d" % i], "caption": [["one", "two"]], "other": extra[:1]}),
                       tmp_path / "captioned" / f"{i:05d}.parquet")
    captioned = read_captions(str(tmp_path / "captioned"))
    assert [r["data"] for r in captioned.rows] == [b"p0", b"p1"]
    assert captioned.captions == ["one", "two"] * 2 and captioned.caption_image.tolist() == [0, 0, 1, 1]
    with pytest.raises(WitError, match="no `caption` column"):
        read_captions(str(tmp_path / "labelled.parquet"))
    with pytest.raises(WitError, match="no image column"):
        pq.write_table(pa.table({"label": [1]}), tmp_path / "noimage.parquet")
        read_labelled(str(tmp_path / "noimage.parquet"))
