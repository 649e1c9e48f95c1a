"""Test-wide settings: decoded-image caches go to a temporary folder, never the user's cache."""

import pytest


@pytest.fixture(scope="module")
def one_thread():
    """Tiny networks: intra-op threads only add overhead (and thrash when other jobs share the cores)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory):
    patcher = pytest.MonkeyPatch()
    patcher.setenv("FACTORY_CACHE", str(tmp_path_factory.mktemp("factory-cache")))
    yield
    patcher.undo()


@pytest.fixture(scope="session")
def finished(tmp_path_factory: pytest.TempPathFactory):
    """One finished tiny build (every stage, generous flash and RAM limits), shared by the tests that read it."""
    from tests.build_helpers import FLASH, RAM, run_build

    out = tmp_path_factory.mktemp("build") / "run"
    return out, run_build(out, budget_flash=FLASH, budget_ram=RAM)


@pytest.fixture
def fresh_memory_cache():
    """Each data test loads from scratch: the in-memory split cache is emptied before and after it."""
    from factory.data import clear_memory_cache

    clear_memory_cache()
    yield
    clear_memory_cache()
