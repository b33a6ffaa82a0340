"""For `pytest --nbval-lax notebooks/`: run the notebooks without provider keys (so on the
built-in simulator, never spending money) and with a throwaway usage ledger."""

import os
import shutil
import tempfile

_PROVIDER_VARS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY", "GEMINI_API_KEY",
                  "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "GOOGLE_GEMINI_BASE_URL",
                  "GOOGLE_GENAI_USE_VERTEXAI")


def pytest_configure(config):
    # the kernels nbval starts inherit this process's environment
    for name in _PROVIDER_VARS:
        os.environ.pop(name, None)
    home = tempfile.mkdtemp(prefix="llmcells-nbval-")
    os.environ["LLMCELLS_HOME"] = home
    config.add_cleanup(lambda: shutil.rmtree(home, ignore_errors=True))
