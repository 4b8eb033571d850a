import os
import shutil
import tempfile

import pytest

from tests.initd import kitview


@pytest.fixture(scope="session")
def kit_layer():
    if os.geteuid() != 0:
        pytest.skip("the replay view needs root (mount namespace, overlayfs, chroot)")
    missing = kitview.missing_tools()
    if missing:
        pytest.skip(f"missing tools for the replay view: {missing}")
    base = tempfile.mkdtemp(prefix="kitlayer-")
    try:
        yield kitview.build_layer(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
