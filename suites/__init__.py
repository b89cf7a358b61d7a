"""Per-paper suites: thin glue between paper_* packages and the runner interface."""
