"""Staged rollouts: plans and rules (`rules`), their store (`store`), the evidence per
stage (`evidence`), the controller's pure decision (`controller`), applying admin and
controller changes in one transaction (`changes`), the loop that runs the controller
(`runner`) and the status report (`status`).

Others use: `changes` (start_rollout, change_rollout, apply_rollout_rules,
find_release, RolloutAction), `rules.RolloutPlan`/`RolloutRules`, `store` (records,
known groups), `runner.RolloutRuleRunner`, `status`.
"""
