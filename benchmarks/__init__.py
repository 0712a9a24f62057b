"""Speed and memory workloads (`make bench`); never part of the test run."""
