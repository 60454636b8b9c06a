"""Copying a committed reply cache into a run's: what is missing comes in, nothing is replaced."""

from __future__ import annotations

import pytest

from lm_guided_cot.errors import InputError, MissingFileError
from lm_guided_cot.llm.cache import CachedReply, ReplyCache


def test_missing_replies_are_added_and_held_ones_kept(tmp_path):
    committed = ReplyCache(tmp_path / "committed.sqlite")
    committed.put("a", "m", CachedReply("Answer: committed a", 5, 2, 0.0))
    committed.put("b", "m", CachedReply("yes", 5, 1, 0.0, (("yes", -0.1), ("no", -2.3))))
    committed.close()
    run = ReplyCache(tmp_path / "run.sqlite")
    run.put("a", "m", CachedReply("Answer: the run's own a", 5, 2, 0.0))
    assert run.add_from(tmp_path / "committed.sqlite") == 1
    assert run.get("a").text == "Answer: the run's own a"
    assert run.get("b").top_logprobs == (("yes", -0.1), ("no", -2.3))
    assert run.add_from(tmp_path / "committed.sqlite") == 0  # a second copy adds nothing
    run.close()


def test_a_missing_or_foreign_source_is_named(tmp_path):
    run = ReplyCache(tmp_path / "run.sqlite")
    with pytest.raises(MissingFileError, match=r"nowhere\.sqlite"):
        run.add_from(tmp_path / "nowhere.sqlite")
    (tmp_path / "notes.txt").write_text("not a database")
    with pytest.raises(InputError, match=r"notes\.txt"):
        run.add_from(tmp_path / "notes.txt")
    assert len(run) == 0
    run.close()


def test_a_cache_from_before_the_logprobs_table_merges(tmp_path):
    """A cache written before replies kept top log-probs (as the first committed ones were)."""
    import sqlite3

    old = ReplyCache(tmp_path / "old.sqlite")
    old.put("a", "m", CachedReply("Answer: Paris", 5, 2, 0.0))
    old.close()
    conn = sqlite3.connect(tmp_path / "old.sqlite")
    conn.execute("DROP TABLE top_logprobs")
    conn.commit()
    conn.close()
    run = ReplyCache(tmp_path / "run.sqlite")
    assert run.add_from(tmp_path / "old.sqlite") == 1
    assert run.get("a").text == "Answer: Paris"
    run.close()
