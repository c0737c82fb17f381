"""The repository's copy of the Slack fixtures is the same as shared/ (when shared/ is there)."""

import pytest

from tests.conftest import LOCAL_FIXTURES, SHARED_FIXTURES


@pytest.mark.skipif(not SHARED_FIXTURES.exists(), reason="no ../shared beside this checkout")
def test_local_fixtures_match_shared() -> None:
    for shared in SHARED_FIXTURES.iterdir():
        assert (LOCAL_FIXTURES / shared.name).read_bytes() == shared.read_bytes(), shared.name
