"""The GRPO trainer: samples C candidates from the policy, rewards them with measured speed (issue 5)."""
