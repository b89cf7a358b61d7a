"""paper_pacbayes: the science for one paper (plain library; imports neither runners nor suites)."""
