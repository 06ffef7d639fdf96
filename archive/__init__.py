"""The Staged Quality-Diversity archive: durable results, niches and stages (issue 4)."""
