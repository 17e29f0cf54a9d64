"""Results: baselines, the comparison and regression gate, thresholds, judge calibration, and the JSON, HTML
and terminal reports. Imports the core only (and rich, for terminal tables); never pytest, litellm or calls."""
