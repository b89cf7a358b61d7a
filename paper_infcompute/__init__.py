"""paper_infcompute: the science of "Pretraining Under Infinite Compute" (plain library; imports neither runners nor suites)."""
