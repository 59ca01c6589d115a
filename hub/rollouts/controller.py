"""The rollout controller's rules — pure logic over plain data, no database, no clock.

Given what is known about one active rollout (its stages, when the current stage began,
every counted result in the order it arrived, the current stage's members and results)
and the time, `decide` answers: wait, advance to the next stage, or halt — with a reason
an admin can read in the audit log. `hub/rollouts/evidence.py` gathers the data and
`hub/rollouts/changes.py` applies the decision; both are thin around this.

The rules (README, "Staged rollouts"), in the order they are applied:

1. Sequential halt (Wald's SPRT), after every result. Each result is a trial: success
   (installed) or failure (reverted, revert-failed, failed). H0: the failure rate is the
   acceptable one, p0 = 1 − success threshold (2 %). H1: it is p1, five times that (10 %).
   Each failure adds ln(p1/p0) to the log-likelihood ratio, each success adds
   ln((1−p1)/(1−p0)); the rollout halts when the ratio reaches ln((1−β)/α). Wald's bound:
   a release failing at p0 is halted with probability at most about α (5 %), one failing
   at p1 or worse escapes with probability at most about β (10 %), and the test needs as
   few results as the numbers allow (two failures in a row halt at the defaults). The ratio
   is never let below the acceptance boundary ln(β/(1−α)): evidence that the release is
   good does not buy credit against failures that start later (a broad stage reaching
   hardware the pilot did not have).
2. Stage gate, once the current stage has min(N, its members) results and its soak time has
   passed: success rate ≥ threshold advances to the next stage; below it halts. Results
   counted here are those of the devices that joined in this stage (the pilots and the
   lowest buckets for stage 1), so every stage is judged on its own evidence.
   Before a stage passes (and at the final stage's gate), the health signals of updated
   devices are compared with the not-yet-updated ones' over the same period
   (hub/rollouts/concurrent_control.py; their own before-install windows when too few
   sent control windows) (hub/rollouts/regression.py):
   a significant regression of at least the minimum effect halts, even though every
   health check passed. `regression_halt = false` opts a rollout out.
3. Otherwise wait: for results, or until the soak ends (`recheck_at`). A stage with no
   members advances on its soak only once the rollout has at least one counted result:
   never on zero results, so no rollout reaches 100 % of a group that nothing was tried on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from agent.wire.health_signals import SignalWindow
from hub.rollouts.concurrent_control import CONCURRENT, choose_control
from hub.rollouts.regression import compare_signals
from hub.rollouts.rules import HaltTest, RolloutRules


class Verdict(StrEnum):
    WAIT = "wait"
    ADVANCE = "advance"
    HALT = "halt"
    HOLD = "hold"
    """Never returned by `decide`: the compatibility hold's change (hub/compat/hold.py)."""


@dataclass(frozen=True)
class StageEvidence:
    members: int
    """Devices that join the rollout in this stage (and had no result before a resume)."""
    successes: int = 0
    failures: int = 0

    @property
    def results(self) -> int:
        return self.successes + self.failures

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.results if self.results else None


@dataclass(frozen=True)
class RolloutEvidence:
    stages: tuple[int, ...]
    current_stage: int
    stage_started_at: datetime
    outcomes: tuple[bool, ...]
    """Every counted result of the rollout, all stages, in arrival order; True = success."""
    stage: StageEvidence
    treatment_signals: tuple[SignalWindow, ...] = ()
    """After-install windows of the rollout's installed devices (regression.py)."""
    control_signals: tuple[SignalWindow, ...] = ()
    """Before-install windows of its reporting devices: the stand-in control."""
    concurrent_signals: Mapping[str, tuple[SignalWindow, ...]] = field(
        default_factory=dict)
    """Control windows of not-updated devices of the audience, per device: the
    concurrent control when enough fall in the treatment's period
    (concurrent_control.py)."""


@dataclass(frozen=True)
class SprtState:
    log_likelihood_ratio: float
    halt_boundary: float
    accept_boundary: float
    failures: int
    results: int

    @property
    def halts(self) -> bool:
        return self.log_likelihood_ratio >= self.halt_boundary


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str
    to_stage: int | None = None
    recheck_at: datetime | None = None
    """When waiting for the soak to end: the time the rules should be applied again."""
    figures: dict[str, Any] = field(default_factory=dict)


def sequential_test(outcomes: Sequence[bool], rules: RolloutRules) -> SprtState:
    """Wald's SPRT over `outcomes` in order, floored at the acceptance boundary."""
    p0, p1 = rules.acceptable_failure_rate, rules.unacceptable_failure_rate
    alpha, beta = rules.sprt_alpha, rules.sprt_beta
    upper = math.log((1 - beta) / alpha)
    lower = math.log(beta / (1 - alpha))
    on_failure = math.log(p1 / p0)
    on_success = math.log((1 - p1) / (1 - p0))
    ratio, failures = 0.0, 0
    for index, success in enumerate(outcomes):
        ratio = max(lower, ratio + (on_success if success else on_failure))
        failures += not success
        if ratio >= upper:
            return SprtState(ratio, upper, lower, failures, index + 1)
    return SprtState(ratio, upper, lower, failures, len(outcomes))


def required_results(rules: RolloutRules, stage: StageEvidence) -> int:
    """N, or every member when the stage has fewer than N (an empty stage needs none)."""
    return min(rules.min_results, stage.members)


def decide(evidence: RolloutEvidence, rules: RolloutRules, now: datetime) -> Decision:
    index = evidence.current_stage
    percent = evidence.stages[index]
    stage_name = f"stage {index + 1} of {len(evidence.stages)} ({percent}%)"
    stage = evidence.stage
    figures: dict[str, Any] = {
        "stage": index,
        "stage_percent": percent,
        "stage_members": stage.members,
        "stage_successes": stage.successes,
        "stage_failures": stage.failures,
    }
    if rules.halt_test is HaltTest.SPRT:
        sprt = sequential_test(evidence.outcomes, rules)
        figures |= {
            "sprt_llr": round(sprt.log_likelihood_ratio, 3),
            "sprt_halt_at": round(sprt.halt_boundary, 3),
        }
        if sprt.halts:
            return Decision(
                Verdict.HALT,
                f"sequential test: {sprt.failures} failures in the first {sprt.results} "
                f"results; the failure rate is significantly above the acceptable "
                f"{rules.acceptable_failure_rate:.1%} (log-likelihood ratio "
                f"{sprt.log_likelihood_ratio:.2f} ≥ {sprt.halt_boundary:.2f})",
                figures=figures,
            )
    if stage.members == 0 and not evidence.outcomes:
        # Soak time is not evidence: an empty `--new-group` rollout went 2 -> 25 -> 100 %
        # on soak alone, so every device joining later got it with no pilot.
        return Decision(
            Verdict.WAIT,
            f"{stage_name}: no device is in this stage and none has reported yet; an "
            "empty stage never advances on zero results (enroll or assign devices, name "
            "pilots with --devices, or `rollout advance` to widen it by hand)",
            figures=figures,
        )
    required = required_results(rules, stage)
    figures["stage_required"] = required
    if stage.results < required:
        return Decision(
            Verdict.WAIT,
            f"{stage_name}: {stage.results} of {required} results needed",
            figures=figures,
        )
    soak_end = evidence.stage_started_at + timedelta(seconds=rules.soak_seconds)
    if now < soak_end:
        return Decision(
            Verdict.WAIT,
            f"{stage_name}: soaking until {soak_end.isoformat(timespec='seconds')}",
            recheck_at=soak_end,
            figures=figures,
        )
    rate = stage.success_rate
    if rate is not None and rate < rules.success_threshold:
        return Decision(
            Verdict.HALT,
            f"{stage_name}: {stage.successes} of {stage.results} results succeeded "
            f"({_percent_apart(rate, rules.success_threshold)}), below the "
            f"{rules.success_threshold:.1%} threshold",
            figures=figures,
        )
    if rules.regression_halt:
        control = choose_control(evidence.treatment_signals, evidence.control_signals,
                                 evidence.concurrent_signals, rules.regression_min_devices)
        finding = compare_signals(evidence.treatment_signals, control.windows,
                                  rules.regression_alpha, rules.regression_min_ratio,
                                  rules.regression_min_devices,
                                  devices_differ=control.kind == CONCURRENT)
        if finding.comparisons:
            figures |= control.figures | finding.figures()
        side = ("not updated, same period" if control.kind == CONCURRENT
                else "before their update")
        if finding.halts:
            worst = ", ".join(
                f"{c.signal} {c.ratio:.2f}x ({c.treatment:.4g} vs {c.control:.4g}, "
                f"p={c.p_value:.2g}, {c.treatment_devices} updated vs "
                f"{c.control_devices} {side})" for c in finding.regressions)
            return Decision(
                Verdict.HALT,
                f"{stage_name}: health checks passed but health signals regressed: "
                f"{worst}; significant at {finding.alpha_each:.2g} each and at least "
                f"{rules.regression_min_ratio:g}x",
                figures=figures,
            )
    if index + 1 >= len(evidence.stages):
        return Decision(Verdict.WAIT, f"{stage_name}: final stage, passed its gate",
                        figures=figures)
    shown = "no results needed" if rate is None else f"{rate:.1%} of {stage.results} succeeded"
    return Decision(
        Verdict.ADVANCE,
        f"{stage_name} passed: {shown}, soaked {rules.soak_seconds} s; "
        f"widening to {evidence.stages[index + 1]}%",
        to_stage=index + 1,
        figures=figures,
    )


def _percent_apart(rate: float, threshold: float) -> str:
    """`rate` as a percentage with as many decimals as it takes not to print the same as
    the threshold it fell below: 146 of 149 is 97.99 %, not "98.0 %, below 98.0 %"."""
    for decimals in range(1, 5):
        text = f"{rate:.{decimals}%}"
        if text != f"{threshold:.{decimals}%}":
            return text
    return f"{rate:.4%}"
