"""The llm modules that the CLI needs before any work starts stay cheap to import."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("litellm", "torch", "transformers", "lightning", "datasets")


def test_secrets_and_config_import_no_heavy_library():
    # A fresh interpreter: this test process has imported them all already.
    code = (
        "import json, sys\n"
        "import lm_guided_cot.llm.secrets, lm_guided_cot.llm.config\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(done.stdout) == []


def test_the_package_names_are_still_there_on_first_use():
    code = (
        "import sys\n"
        "from lm_guided_cot.llm import LLMClient, LLMConfig, client_for\n"
        "from lm_guided_cot.llm.client import LLMClient as Same\n"
        "assert LLMClient is Same and 'litellm' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], timeout=120, check=True)
