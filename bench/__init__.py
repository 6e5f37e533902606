"""dr-tasks against the tools users would otherwise pick, on the same S3 servers, in one run.

`python -m bench` (or `inv bench`); see bench/README.md for what it measures and the results.
"""
