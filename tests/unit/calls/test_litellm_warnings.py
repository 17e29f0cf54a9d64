"""litellm's own types make pydantic warn on its first completion: faef filters that noise at its source (issue 12)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# A fresh process: pydantic warns once per type, so an earlier completion in this one would hide it.
FIRST_COMPLETION = """
import warnings
from pytest_faef.calls.responders import import_litellm
litellm = import_litellm()
litellm.completion(model="openai/offline", messages=[{"role": "user", "content": "hi"}], mock_response="ok")
warnings.warn(
    "Item 'x' on TypedDict class 'Mine' is using the `ReadOnly` qualifier. Pydantic will not protect items.",
    UserWarning,
)
"""


def test_the_first_completion_warns_about_no_type_of_litellm_but_a_users_own_warning_shows(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", FIRST_COMPLETION], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    # The same words issued anywhere but pydantic's schema module (here: the user's code) still show.
    assert done.stderr.count("ReadOnly") == 1, done.stderr
    assert "class 'Mine'" in done.stderr
