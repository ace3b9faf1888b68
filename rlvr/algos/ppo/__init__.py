"""PPO (and GRPO as a variant of the same loop) with verifiable rewards.

`losses` holds the pure pieces (rewards, KL estimators, GAE, group advantages, clipped losses);
the trainer that drives rollouts, scoring and updates builds on them (issue #6).
"""
