"""`hpcrl eval`: pass@k, fast_p@k and speedups of a model's sampled programs, and their report (issue 13)."""
