"""One file per training algorithm (sft, dpo, reward_model, ppo): config, pure losses, trainer."""
