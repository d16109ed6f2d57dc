import pytest


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (marked `anyio`) run on asyncio, the loop Wharf's servers use."""
    return "asyncio"
