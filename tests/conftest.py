"""Test-wide settings: decoded-image caches go to a temporary folder, never the user's cache."""

import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory):
    patcher = pytest.MonkeyPatch()
    patcher.setenv("FACTORY_CACHE", str(tmp_path_factory.mktemp("factory-cache")))
    yield
    patcher.undo()
