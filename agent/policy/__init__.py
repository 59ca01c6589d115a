"""Group policies: when each device may install and reboot (DESIGN.md §6).

Public face: the policy format (`Policy`, `policy_target_path`, `GroupAssignment`), the
pure evaluator (`plan_install`, `plan_reboot` and their facts) that the hub's forecast
reuses, and for the daemon the gate and the source of signed policies.
"""

from agent.policy.assignment import GroupAssignment, assignment_target_path
from agent.policy.evaluator import (
    DeviceFacts,
    Plan,
    ReleaseFacts,
    Verdict,
    plan_install,
    plan_reboot,
)
from agent.policy.model import NO_POLICY, Policy, policy_target_path

__all__ = [
    "NO_POLICY",
    "DeviceFacts",
    "GroupAssignment",
    "Plan",
    "Policy",
    "ReleaseFacts",
    "Verdict",
    "assignment_target_path",
    "plan_install",
    "plan_reboot",
    "policy_target_path",
]
