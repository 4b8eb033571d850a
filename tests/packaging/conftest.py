"""Packaging tests: the .ipk is built once per session into a temp dir."""

import pytest

from tests.packaging.pkg_helpers import Ipk, mkipk


@pytest.fixture(scope="session")
def built_ipk(tmp_path_factory):
    return Ipk(mkipk.build(tmp_path_factory.mktemp("ipk")))
