"""Each notebook's headline check read out as sentences: what was to be shown, whether it held, and by
how much. The numbers come from the notebook's logged metrics; these functions only read them."""

from __future__ import annotations

import math

POLICY_PASS_AT_1 = (0.35, 0.75)  # 00: the policy solves part of the task ...
POLICY_PASS_AT_16 = 0.90  # ... and nearly every problem given 16 samples (headroom for search and RL)
GAP_TOLERANCE = 0.03  # 01: "Monte Carlo labels approach oracle labels": best-of-N within this of the oracle-labelled PRM


def _held(ok: bool) -> str:
    return "holds" if ok else "does not hold"


def policy(curve: dict[int, float]) -> list[str]:
    """00: pass@1 within ``POLICY_PASS_AT_1`` and pass@16 at least ``POLICY_PASS_AT_16`` (pass@k ``curve``)."""
    lo, hi = POLICY_PASS_AT_1
    p1 = curve[1]
    off = 0.0 if lo <= p1 <= hi else (p1 - lo if p1 < lo else p1 - hi)
    out = [f"pass@1 is {p1:.3f}: the target (between {lo} and {hi}) {_held(off == 0.0)}"
           + ("." if off == 0.0 else f", off by {off:+.3f}.")]
    if 16 in curve:
        p16 = curve[16]
        out.append(f"pass@16 is {p16:.3f}: the target (at least {POLICY_PASS_AT_16}) {_held(p16 >= POLICY_PASS_AT_16)}, "
                   f"by {p16 - POLICY_PASS_AT_16:+.3f}.")
    else:
        out.append(f"pass@16 is not measured here (largest k: {max(curve)}).")
    return out


def prm_best_of_n(headline: dict) -> list[str]:
    """01: the main PRM's best-of-N against majority vote at the headline N, and each Monte Carlo PRM's
    gap to the oracle-labelled one (``reranking.headline``'s numbers)."""
    n, prm, maj = headline["headline/n"], headline["headline/prm_best_of_n"], headline["headline/majority"]
    out = [f"At N = {n}, PRM-guided best-of-N reaches {prm:.3f} against {maj:.3f} for majority vote: the headline "
           f"(PRM best-of-N beats majority vote) {_held(prm > maj)}, by {prm - maj:+.3f}."]
    for key, gap in headline.items():
        if key.endswith("_gap_to_oracle"):
            name = key[len("headline/"):-len("_gap_to_oracle")]
            out.append(f"{name}'s best-of-{n} is {gap:+.3f} below the oracle-labelled PRM's: Monte Carlo labels "
                       f"approach oracle labels (within {GAP_TOLERANCE}) {_held(abs(gap) <= GAP_TOLERANCE)}.")
    return out


def smc_scaling(scorer: str, rows: list[dict]) -> str:
    """04: at the lower target accuracy of ``study.budget_to_reach_table``'s ``rows``, does SMC need
    fewer solutions than best-of-N and beam search, and how many times fewer?"""
    row = rows[0]
    smc = row["smc"]
    if not math.isfinite(smc):
        return (f"Scorer {scorer}: SMC never reaches {row['target accuracy']:.3f} within the largest N: the headline "
                "(SMC needs fewer solutions than best-of-N and beam search) does not hold.")
    others = {m: row[m] for m in ("best_of_n", "beam_search") if m in row}
    said = "; ".join(f"{m} never reaches it" if not math.isfinite(n) else f"{m} needs {n / smc:.1f}x as many (N = {n:.1f})"
                     for m, n in others.items())
    return (f"Scorer {scorer}: SMC reaches {row['target accuracy']:.3f} with N = {smc:.1f}; {said}. The headline "
            f"(SMC needs fewer solutions than best-of-N and beam search) {_held(all(n > smc for n in others.values()))}.")


def pure(headline: dict) -> list[str]:
    """02: PURE's four claims read from `prmlab.rl.arms.pure_headline`'s metrics (claims whose arms did
    not run are left out)."""
    h, out = headline, []

    def change(arm: str) -> str:
        return f"{h[f'headline/{arm}/final_accuracy']:.3f} ({h[f'headline/{arm}/accuracy_change']:+.3f} from the start)"

    if "headline/sum_form_collapses" in h:
        out.append(f"Sum-form ends at {change('prm-sum')}: 'sum-form is hacked and collapses' "
                   f"{_held(h['headline/sum_form_collapses'] == 1.0)}.")
    if "headline/min_form_stable" in h:
        out.append(f"Min-form ends at {change('prm-min')}: 'min-form trains stably' {_held(h['headline/min_form_stable'] == 1.0)}.")
    if "headline/min_vr_best" in h:
        out.append(f"Min-form + 10% verifiable ends at {change('prm-min+vr')}: 'it is the best arm' "
                   f"{_held(h['headline/min_vr_best'] == 1.0)}.")
    if "headline/min_form_faster" in h:
        v, m = h["headline/verifiable_steps_to_final"], h["headline/min_form_steps_to_verifiable"]
        reach = f"at RL step {m:.0f}" if math.isfinite(m) else "never"
        out.append(f"The verifiable-only arm reaches its final accuracy at RL step {v:.0f}; min-form reaches it {reach}: "
                   f"'min-form gets there in fewer steps' {_held(h['headline/min_form_faster'] == 1.0)}.")
    return out


def prime(headline: dict) -> list[str]:
    """03: PRIME's sample efficiency and final gain over outcome-only RLOO (`prmlab.rl.arms.prime_headline`)."""
    h = headline
    eff, lo, hi = h["headline/sample_efficiency"], h["headline/sample_efficiency_min"], h["headline/sample_efficiency_max"]
    gain, glo, ghi = h["headline/final_gain"], h["headline/final_gain_min"], h["headline/final_gain_max"]
    seeds = int(h["headline/seeds"])
    spread = f" (seeds: {lo:.2f} to {hi:.2f})" if seeds > 1 else ""
    missed = int(h.get("headline/prime_missed", 0))
    never = f"; PRIME never reached it on {missed} of {seeds} seed(s), counted as 0" if missed else ""
    out = [f"PRIME reaches outcome-only RLOO's final accuracy with {eff:.2f}x fewer rollouts{spread}, over {seeds} "
           f"seed(s){never}: 'PRIME learns faster than outcome-only RLOO' {_held(eff > 1.0)} (the paper: 2.5x)."]
    gspread = f" (seeds: {glo:+.3f} to {ghi:+.3f})" if seeds > 1 else ""
    out.append(f"PRIME's final accuracy is {gain:+.3f} against RLOO's{gspread}: a final gain {_held(gain > 0)} "
               "(the paper: +6.9 points).")
    fresh = h.get("headline/implicit_prm_rollout_auroc", float("nan"))
    if not math.isnan(fresh):
        out.append(f"On the policy's fresh rollouts the implicit PRM ranks a prompt's responses with AUROC {fresh:.2f} "
                   "on average (0.5: chance), the signal its process credit adds to the outcome's.")
    return out
