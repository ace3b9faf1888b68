"""PPO (and GRPO as a variant of the same loop) with verifiable rewards.

`losses` holds the pure pieces (rewards, KL estimators, GAE, group advantages, clipped losses);
`batch` the prompts and rollout batches; `sampler` the main process's engine, verifiers and weight
sync; `distributed` what spreads the updates over processes; `trainer` the loop.
"""
