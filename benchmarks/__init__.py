"""Quality and speed benchmarks (never part of the test run); results go to docs/."""
