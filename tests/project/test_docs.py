"""The documentation's examples follow the rules users are told to follow."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_faef.plugin.options import OPTIONS

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# Options whose value is a path: pytest takes an existing path written as a separate word after an
# option into its rootdir search (seen with --faef-store), so examples must write --opt=PATH.
PATH_OPTIONS = sorted(
    {option.flag for option in OPTIONS if option.ini_type == "paths"} | {"--faef-compare", "--junitxml", "--basetemp"}
)


def test_the_documents_are_found() -> None:
    assert ROOT / "README.md" in DOCUMENTS and len(DOCUMENTS) > 5


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_every_path_given_to_an_option_is_written_with_an_equals_sign(document: Path) -> None:
    # A value follows as a separate word when the next word starts with neither "-" nor a comment,
    # table or code delimiter: "--faef-store PATH" or "--faef-report faef.json", not "--faef-compare  # ...".
    separate = re.compile("(" + "|".join(map(re.escape, PATH_OPTIONS)) + r")(?![\w-]) +(?![-#|`\s])\S+")
    found = [
        f"{document.name}:{number}: {match.group(0)}"
        for number, line in enumerate(document.read_text(encoding="utf-8").splitlines(), start=1)
        for match in separate.finditer(line)
    ]

    assert found == []
