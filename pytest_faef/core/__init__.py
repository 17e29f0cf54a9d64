"""The pytest-free core: suite files and items, option orders, prompts, answer parsing, requests and
replies, evaluating one item, CS/CSS metrics. Imports no other layer, and neither pytest, litellm nor rich."""
