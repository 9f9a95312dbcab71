"""The content-addressed store: names are digests, nothing a sender writes reaches a path."""

from __future__ import annotations

import hashlib

import pytest

from mailticket.storage import Store


def test_put_get_and_dedupe(tmp_path):
    store = Store(tmp_path)
    digest = store.put(b"hello")
    assert digest == hashlib.sha256(b"hello").hexdigest()
    assert store.put(b"hello") == digest
    store.sync()
    assert store.get(digest) == b"hello"
    assert store.path(digest).relative_to(tmp_path).parts[:2] == (digest[:2], digest[2:4])


def test_a_file_cut_short_by_a_crash_is_written_again(tmp_path):
    store = Store(tmp_path)
    digest = store.put(b"the whole attachment")
    store.path(digest).write_bytes(b"the wh")  # what a power cut before the sync can leave
    assert store.put(b"the whole attachment") == digest
    assert store.get(digest) == b"the whole attachment"


@pytest.mark.parametrize("bad", ["../../etc/passwd", "g" * 64, "", "0" * 63, "A" * 64])
def test_only_digests_name_files(tmp_path, bad):
    with pytest.raises(ValueError):
        Store(tmp_path).path(bad)
