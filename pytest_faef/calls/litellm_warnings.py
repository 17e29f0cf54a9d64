"""The warnings litellm's first completion raises about its own types, as warning filters name them.

pydantic warns that litellm's own TypedDicts (litellm.llms.github_copilot's, and others) have ReadOnly
items when litellm builds their validators, lazily, during its first completion: five warnings on every
live run that no user can act on (issue 12). The warning is issued in pydantic's schema module, so the
filter names that module and leaves the same warning about a user's own types alone. The plugin adds
it when it imports litellm and as a pytest filterwarnings line, since pytest resets warning filters
around each test.
"""

from __future__ import annotations

LITELLM_TYPES_WARNING = r"Items? .* on TypedDict class .* (is|are) using the .ReadOnly. qualifier"
LITELLM_TYPES_WARNING_MODULE = r"pydantic\._internal\._generate_schema"
