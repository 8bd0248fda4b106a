import hashlib

import pytest
from n4afs_core.errors import InvalidBlobId, N4AError
from n4afs_core.store.ids import BlobId


def test_valid_id_round_trips_and_has_short_form():
    digest = hashlib.sha256(b"spectra").hexdigest()
    blob_id = BlobId(digest)
    assert blob_id == digest
    assert blob_id.short == digest[:8]
    assert blob_id.shard == digest[:2]
    assert BlobId.of_bytes(b"spectra") == blob_id


@pytest.mark.parametrize(
    "bad",
    ["", "abc", "../" + "a" * 61, "A" * 64, "g" * 64, "a" * 63, "a" * 65, "a" * 63 + "/", None, 42],
)
def test_invalid_ids_are_refused(bad):
    with pytest.raises(InvalidBlobId) as info:
        BlobId(bad)
    assert isinstance(info.value, N4AError)
    assert "64 lowercase hex" in str(info.value)
