import signal

import pytest

# Tests stop the commands they start with Ctrl-C (SIGINT), as a user would. A process started in the background by
# a non-interactive shell (`cmd &`) begins with SIGINT ignored, and an ignored signal stays ignored across fork and
# exec; a handler of our own is reset to the default there instead, so every process a test starts can be
# interrupted however the suite itself was started.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (marked `anyio`) run on asyncio, the loop Wharf's servers use."""
    return "asyncio"
