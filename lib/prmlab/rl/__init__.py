"""Reinforcement learning with process rewards, shared by notebooks 02 (PURE) and 03 (PRIME).

The numerical core is pure tensor functions, one concept per module:

- `advantages` -- group baselines (RLOO, GRPO), masked whitening, returns, PURE's token- and
  step-level RLOO baselines;
- `credit` -- turning step rewards into token rewards: sum-form, PURE's min-form, verifiable rewards;
- `ppo` -- PPO-clip loss and KL estimators;
- `prime` -- PRIME's process/outcome RLOO, returns and group filter.

Built on them and on `prmlab.tokens` (token batches and their log-probs): `rollouts` (K sampled
responses per prompt, packed and graded), `pure` (PURE's recipe from step rewards to advantages),
`meter` (the hacking meter) and `loop` (the RL loop); `arms` (running an arm and reading its history,
shared by 02 and 03), `pure_arms` (02's arms and headline) and `prime_arms` (03's).

Conventions used throughout: token-level tensors are ``[B, T]`` over the *response* tokens (padded to
T) with ``mask`` ``[B, T]`` (bool or 0/1; 1 = real token). Rows ``i*K .. i*K+K-1`` are the K samples of
prompt i. A response's steps are ``spans[row] = [(start, end), ...]`` token offsets (end exclusive)
and step k's reward sits on token ``end - 1``. Values at masked positions are never read (they may be
garbage, even NaN) and token-level outputs are 0 there.
"""
