"""Model calls: litellm with retries, the response store, the drift check, the scheduler and the embedded
local model. Imports the core only; never pytest, rich, the results or the faces above."""
