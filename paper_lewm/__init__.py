"""paper_lewm: the science for one paper (plain library; imports neither runners nor suites)."""
