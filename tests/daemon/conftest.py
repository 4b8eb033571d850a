import pytest

from tests.daemon.lifecycle_helpers import Procs, set_subreaper


@pytest.fixture
def procs():
    set_subreaper(True)
    tracker = Procs()
    try:
        yield tracker
    finally:
        tracker.cleanup()
        set_subreaper(False)
