"""paperclub harness core. Importing it imports no ML framework."""
