"""Each notebook's headline check read out as sentences: what was to be shown, whether it held, and by
how much. The numbers come from the notebook's logged metrics; these functions only read them.

Claims about a difference between RL arms (or seeds' runs) are judged by the one rule of
`prmlab.metrics.seed_difference` (a difference holds only beyond ``Z`` standard errors over at least
``MIN_SEEDS`` seeds; otherwise it is within noise)."""

from __future__ import annotations

import math

from .metrics import MIN_SEEDS, Z, Difference, holds, seed_difference  # noqa: F401  (the rule, re-exported)

POLICY_PASS_AT_1 = (0.35, 0.75)  # 00: the policy solves part of the task ...
POLICY_PASS_AT_16 = 0.90  # ... and nearly every problem given 16 samples (headroom for search and RL)
GAP_TOLERANCE = 0.03  # 01: "Monte Carlo labels approach oracle labels": best-of-N within this of the oracle-labelled PRM


def _held(ok: bool) -> str:
    return "holds" if ok else "does not hold"


def _num(x: float, unit: str = "", digits: int = 3, sign: bool = True) -> str:
    return f"{x:{'+' if sign else ''}.{digits}f}{unit}"


def _gap(x: float, below: str = "below", above: str = "above") -> str:
    """A gap read with a direction word: its size and the word (0.005 above, not "-0.005 below")."""
    return f"{abs(x):.3f} {below if x >= 0 else above}"


def _count(n: int | float, what: str) -> str:
    return f"{int(n)} {what}{'' if int(n) == 1 else 's'}"


def rests_on(lines: list[str], seeds: int | float, problems: int | float) -> list[str]:
    """``lines`` each saying what it rests on: "... holds. [3 seeds × 100 problems]" (the eval problems
    of each seed)."""
    return [f"{line} [{_count(seeds, 'seed')} × {_count(problems, 'problem')}]" for line in lines]


def noise_verdict(flag: float, diff: float, se: float, seeds: int | float, unit: str = "", digits: int = 3,
                  why_not: str = "", what: str = "difference") -> str:
    """How a claim about a difference reads: "holds (...)" where its logged verdict ``flag`` is 1; else
    "is within noise (...)" where the difference is not beyond ``Z`` standard errors over ``MIN_SEEDS``
    seeds (with fewer seeds it says so), "does not hold: the reverse ..." where the opposite difference is,
    and "does not hold: ``why_not``" where the difference is beyond noise but another of the claim's
    conditions failed. The parenthesis gives the difference (called ``what``) and its standard error."""
    seeds = int(seeds)
    nums = f"{what} {_num(diff, unit, digits)}"
    if math.isfinite(se):
        nums += f", standard error {_num(se, unit, digits, sign=False)}"
    nums += f" over {seeds} seed{'s' if seeds != 1 else ''}"
    if flag == 1.0:
        return f"holds ({nums})"
    if seeds < MIN_SEEDS:
        return f"is within noise ({seeds} seed{'s' if seeds != 1 else ''}; a claim needs at least {MIN_SEEDS}; {nums})"
    if holds(diff, se, seeds):
        return f"does not hold: {why_not or 'another of its conditions fails'} ({nums})"
    if holds(-diff, se, seeds):
        return f"does not hold: the reverse is beyond {Z:g} standard errors ({nums})"
    return f"is within noise ({nums}; a claim needs more than {Z:g} standard errors)"


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


PRM_MARGIN = 0.05  # 01: a PRM "beats" a baseline at best-of-N (and the ORM at step AUROC) by at least this
AUROC_MARGIN = 0.10  # 01: ... and the policy's likelihood at within-problem AUROC by at least this


def prm_best_of_n(headline: dict) -> list[str]:
    """01: the main PRM's best-of-N against majority vote and the baselines that could embarrass it (the
    policy's likelihood, the readout before training, greedy decoding) at the headline N; its
    within-problem AUROC against the likelihood's, overall and where a misconception applies; its step
    AUROC on misconception errors against the ORM's; and each Monte Carlo PRM's gap to the
    oracle-labelled one (``reranking.headline``'s numbers). One run: one seed and its eval problems."""
    h = headline
    n, prm, maj = int(h["headline/n"]), h["headline/prm_best_of_n"], h["headline/majority"]
    out = [f"At N = {n}, PRM-guided best-of-N reaches {prm:.3f} against {maj:.3f} for majority vote: the headline "
           f"(PRM best-of-N beats majority vote) {_held(prm > maj)}, by {prm - maj:+.3f}."]
    rivals = {"the policy's likelihood": h.get("headline/likelihood_best_of_n"),
              "the readout before training": h.get("headline/untrained_best_of_n"),
              "greedy decoding": h.get("headline/greedy"), "majority vote": maj}
    rivals = {k: v for k, v in rivals.items() if v is not None}
    if len(rivals) > 1:
        beaten = all(prm - v >= PRM_MARGIN for v in rivals.values())
        listed = ", ".join(f"{k} {v:.3f}" for k, v in rivals.items())
        out.append(f"Against the baselines that could embarrass it ({listed}), the PRM's best-of-{n} leads each by "
                   f"at least {PRM_MARGIN} {_held(beaten)} (smallest lead {min(prm - v for v in rivals.values()):+.3f}).")
    for scope, key in (("overall", "within_problem_auroc"), ("where a misconception applies",
                                                             "within_problem_auroc/misconception_problems")):
        mine, lik = h.get(f"headline/prm_{key}"), h.get(f"headline/likelihood_{key}")
        if mine is not None and lik is not None:
            out.append(f"Within a problem ({scope}) the PRM ranks at AUROC {mine:.3f} against the likelihood's {lik:.3f}: "
                       f"at least {AUROC_MARGIN} above it {_held(mine - lik >= AUROC_MARGIN)}.")
    mine, orm = h.get("headline/prm_step_auroc/misconception"), h.get("headline/orm_step_auroc/misconception")
    if mine is not None and orm is not None:
        out.append(f"On misconception errors the PRM's step AUROC is {mine:.3f} against the ORM's {orm:.3f}: process "
                   f"supervision locates them better (by at least {PRM_MARGIN}) {_held(mine - orm >= PRM_MARGIN)}.")
    for key, gap in h.items():
        if key.endswith("_gap_to_oracle"):
            name = key[len("headline/"):-len("_gap_to_oracle")]
            out.append(f"{name}'s best-of-{n} is {_gap(gap)} the oracle-labelled "
                       f"PRM's: Monte Carlo labels approach oracle labels (within {GAP_TOLERANCE}) "
                       f"{_held(abs(gap) <= GAP_TOLERANCE)}.")
    return out


def smc_scaling(scorer: str, rows: list[dict], versus: dict | None = None) -> list[str]:
    """04: at every target accuracy of ``study.budget_to_reach_table``'s ``rows`` (90% and 100% of
    best-of-N's best accuracy), does SMC need fewer solutions than best-of-N and beam search, and how many
    times fewer? One sentence per target, then the verdict: the headline holds only where it holds at
    every target. With ``versus`` (``study.versus_baselines``) a last sentence says whether the best
    search method is worth its tokens (`worth_its_tokens`)."""
    human = {"best_of_n": "best-of-N", "beam_search": "beam search"}
    compared = [m for m in human if rows and m in rows[0]]
    claim = f"SMC needs fewer solutions than {' and '.join(human[m] for m in compared) or 'the baselines'}"
    out, held = [], {}
    for row in rows:
        target, smc = row["target accuracy"], row["smc"]
        greedy = " Greedy decoding reaches it with one solution per problem." if math.isfinite(row.get("greedy", math.inf)) else ""
        if not math.isfinite(smc):
            out.append(f"Scorer {scorer}: SMC never reaches {target:.3f} within the largest N.{greedy}")
            held[target] = False
            continue
        said = "; ".join(f"{human[m]} never reaches it" if not math.isfinite(row[m]) else
                         f"{human[m]} needs {row[m] / smc:.1f}x as many (N = {_step(row[m])})" for m in compared)
        out.append(f"Scorer {scorer}: SMC reaches {target:.3f} with N = {_step(smc)} solutions per problem (interpolated between "
                   f"the budgets run){'; ' + said if said else ''}.{greedy}")
        held[target] = all(row[m] > smc for m in compared)
    fmt = lambda ts: ", ".join(f"{t:.3f}" for t in ts)  # noqa: E731
    if not held:
        out.append(f"Scorer {scorer}: the headline ({claim}) is not measured: best-of-N or SMC did not run with it.")
    elif all(held.values()):
        out.append(f"Scorer {scorer}: the headline ({claim}) holds at every target ({fmt(held)}).")
    elif not any(held.values()):
        out.append(f"Scorer {scorer}: the headline ({claim}) does not hold at any target ({fmt(held)}).")
    else:
        out.append(f"Scorer {scorer}: the headline ({claim}) holds at {fmt(t for t, ok in held.items() if ok)} but not "
                   f"at {fmt(t for t, ok in held.items() if not ok)}: it does not hold.")
    if versus is not None:
        out.append(worth_its_tokens(versus))
    return out


def worth_its_tokens(versus: dict) -> str:
    """04: is the best search method with a scorer at the largest N (``study.versus_baselines``) worth its
    tokens: does it beat greedy decoding and the best sampling baseline at the same tokens, beyond ``Z``
    standard errors over at least ``MIN_SEEDS`` seeds? The same-N comparison is reported beside it."""
    v, g, at_n, at_t = versus, versus["greedy"], versus["at_n"], versus["at_tokens"]

    def diff(part):
        return f"{part['diff']:+.3f}" + (f" ± {part['se']:.3f}" if math.isfinite(part["se"]) else "")

    said = (f"Scorer {v['scorer']}: the best search method at N = {v['n']}, {v['method']}, reaches {v['acc']:.3f} with "
            f"{v['tokens']:.0f} tokens; greedy decoding {g['acc']:.3f} with {g['tokens']:.0f} ({diff(g)})")
    if at_n is not None:
        said += f"; the best sampling baseline at N = {v['n']}, {at_n['method']}, {at_n['acc']:.3f} ({diff(at_n)})"
    if at_t is not None:
        said += (f"; at equal tokens, {at_t['method']} {at_t['acc']:.3f} ({diff(at_t)})"
                 + ("" if at_t["covered"] else ", read at its largest N, which spends fewer tokens"))
    rivals = [x for x in (g, at_t) if x is not None]
    behind = [x["method"] for x in rivals if not x["diff"] > 0]
    if v["worth"]:
        verdict = (f"It is worth its tokens: it beats greedy decoding and the best sampling baseline at equal tokens by "
                   f"more than {Z:g} standard errors over {v['seeds']} seeds")
    elif behind:
        verdict = f"It is not worth its tokens: it does not beat {' or '.join(behind)}"
    else:
        noisy = " and ".join(x["method"] for x in rivals if not x["beats"])
        verdict = (f"It is not shown to be worth its tokens: its lead over {noisy} is within noise (a difference counts "
                   f"beyond {Z:g} standard errors over at least {MIN_SEEDS} seeds; {v['seeds']} here)")
    return f"{said}. {verdict}."


def _end(h: dict, arm: str) -> str:
    """Where ``arm`` ended: sampled pass@1 and its change from the start, then greedy accuracy and its change."""
    p = f"headline/{arm}/"
    said = f"{h[p + 'final_accuracy']:.3f} ({h[p + 'accuracy_change']:+.3f} from the start"
    if p + "final_accuracy_greedy" in h:
        said += f"; greedy {h[p + 'final_accuracy_greedy']:.3f}, {h[p + 'greedy_change']:+.3f} from the start"
    return said + ")"


def _step(x: float) -> str:
    return f"{x:.1f}".removesuffix(".0")


NOT_IMPROVING = "its greedy accuracy does not rise with its sampled accuracy, so it does not count as improving the policy"


def _greedy(h: dict, names: dict[str, str]) -> list[str]:
    """RL arms: every arm's sampled and greedy accuracy at the end, which arms improve the policy (both rise
    beyond noise), and a warning where greedy accuracy fell while sampled accuracy rose."""
    arms = [a for a in names if f"headline/{a}/final_accuracy_greedy" in h]
    if not arms:
        return []
    ends = "; ".join(f"{names[a]} {h[f'headline/{a}/final_accuracy']:.3f} ({h[f'headline/{a}/accuracy_change']:+.3f}) "
                     f"and {h[f'headline/{a}/final_accuracy_greedy']:.3f} ({h[f'headline/{a}/greedy_change']:+.3f})"
                     for a in arms)
    better = [names[a] for a in arms if h.get(f"headline/{a}/improves") == 1.0]
    out = [f"Sampled pass@1 and greedy accuracy at the end (change from the start): {ends}. Arms that improve the "
           f"policy (sampled and greedy accuracy both rise by more than {Z:g} standard errors over at least {MIN_SEEDS} "
           f"seeds): {', '.join(better) or 'none'}."]
    fell = [a for a in arms if h[f"headline/{a}/greedy_change"] < 0 < h[f"headline/{a}/accuracy_change"]]
    if fell:
        said = ", ".join(f"{names[a]} (greedy {h[f'headline/{a}/greedy_change']:+.3f}, sampled "
                         f"{h[f'headline/{a}/accuracy_change']:+.3f})" for a in fell)
        out.append(f"Greedy accuracy fell while sampled pass@1 rose in {said}: the sampled gain does not carry over to "
                   "greedy decoding, which PURE and PRIME evaluate.")
    return out


def pure(headline: dict) -> list[str]:
    """02: PURE's four claims read from `prmlab.rl.pure_arms.pure_headline`'s metrics (claims whose arms did
    not run are left out), each difference judged by `noise_verdict`; then every arm's sampled and greedy
    accuracy (`_greedy`)."""
    h, out = headline, []
    seeds = h.get("headline/seeds", 1.0)

    def verdict(claim: str, what: str, why_not: str = "", unit: str = "", digits: int = 3) -> str:
        return noise_verdict(h[f"headline/{claim}"], h[f"headline/{claim}_diff"], h[f"headline/{claim}_se"], seeds,
                             unit, digits, why_not, what)

    def rises(arm: str) -> bool:
        return holds(h.get(f"headline/{arm}/wrong_step_rise", math.nan), h.get(f"headline/{arm}/wrong_step_rise_se", math.nan),
                     seeds)

    if "headline/sum_form_collapses" in h:
        rise = h.get("headline/prm-sum/wrong_step_rise")
        said = "" if rise is None else f"; the oracle's wrong-step share moved {rise:+.3f}"
        out.append(f"Sum-form ends at {_end(h, 'prm-sum')}{said}: 'sum-form is hacked and collapses' "
                   f"{verdict('sum_form_collapses', 'fall from the start', 'its wrong-step share does not rise beyond noise')}.")
    if "headline/min_form_stable" in h:
        mf, sf = h["headline/prm-min/fall_from_best"], h["headline/prm-sum/fall_from_best"]
        said = f", {_gap(mf)} its best evaluation against sum-form's {sf:.3f}"
        wrong = "headline/min_form_stable_wrong_diff" in h
        if wrong:
            said += (f"; the oracle's wrong-step share moved {h['headline/prm-min/wrong_step_rise']:+.3f} under min-form "
                     f"and {h['headline/prm-sum/wrong_step_rise']:+.3f} under sum-form")
        if holds(mf, h["headline/prm-min/fall_from_best_se"], seeds):
            why = "min-form itself falls from its best beyond noise"
        elif wrong and not holds(h["headline/min_form_stable_wrong_diff"], h["headline/min_form_stable_wrong_se"], seeds):
            why = (f"sum-form's wrong-step share does not rise more than min-form's beyond noise (by "
                   f"{h['headline/min_form_stable_wrong_diff']:+.3f}, standard error {h['headline/min_form_stable_wrong_se']:.3f})")
        else:
            why = "min-form's own wrong-step share rises beyond noise" if wrong and rises("prm-min") else ""
        out.append(f"Min-form ends at {_end(h, 'prm-min')}{said}: 'min-form trains stably' (where sum-form falls) "
                   f"{verdict('min_form_stable', 'sum-form fall minus min-form fall', why)}.")
    if "headline/min_vr_best" in h:
        others = {k.split("/")[1]: v for k, v in h.items() if k.endswith("/final_accuracy") and k.count("/") == 2
                  and not k.split("/")[1].startswith("oracle") and k.split("/")[1] != "prm-min+vr"}
        runner = max(others, key=others.get)
        why = NOT_IMPROVING if h.get("headline/prm-min+vr/improves") != 1.0 else "it is not above every other arm beyond noise"
        out.append(f"Min-form + 10% verifiable ends at {_end(h, 'prm-min+vr')}: 'it is the best arm' "
                   f"{verdict('min_vr_best', f'difference to {runner}', why)}.")
    if "headline/min_form_faster" in h:
        v, m = h["headline/verifiable_steps_to_final"], h["headline/min_form_steps_to_verifiable"]
        missed = int(h.get("headline/min_form_missed", 0))
        reach = (f"at RL step {_step(m)} (interpolated between evaluations; means over seeds)" if math.isfinite(m)
                 else f"never on {missed} of {int(seeds)} seed(s) (means over seeds)")
        if missed:
            judged = f"does not hold (min-form never reaches it on {missed} of {int(seeds)} seed(s))"
        else:
            judged = verdict("min_form_faster", "steps saved", NOT_IMPROVING.replace("its", "min-form's", 1), " steps", 1)
        out.append(f"The verifiable-only arm ends at {_end(h, 'verifiable')} and first reaches that accuracy at RL step "
                   f"{_step(v)}; min-form reaches it {reach}: 'min-form gets there in fewer steps' {judged}.")
    arms = [k.split("/")[1] for k in h if k.endswith("/final_accuracy") and k.count("/") == 2]
    return out + _greedy(h, {a: a for a in arms})


def _times(ratio: float) -> str:
    """RLOO's rollouts over PRIME's, in words: "2.00x fewer rollouts", "as many rollouts", "1.50x as many"."""
    if not math.isfinite(ratio) or ratio <= 0:
        return "no rollouts" if ratio > 0 else "no finite number of rollouts"
    if f"{ratio:.2f}" == "1.00":
        return "as many rollouts (1.00x)"
    return f"{ratio:.2f}x fewer rollouts" if ratio > 1 else f"{1 / ratio:.2f}x as many rollouts"


def prime(headline: dict) -> list[str]:
    """03: PRIME's sample efficiency and final gain over outcome-only RLOO (`prmlab.rl.prime_arms.prime_headline`),
    each difference judged by `noise_verdict`; then both arms' sampled and greedy accuracy (`_greedy`)."""
    h = headline
    eff, lo, hi = h["headline/sample_efficiency"], h["headline/sample_efficiency_min"], h["headline/sample_efficiency_max"]
    gain, glo, ghi = h["headline/final_gain"], h["headline/final_gain_min"], h["headline/final_gain_max"]
    seeds = int(h["headline/seeds"])
    spread = f" (seeds: {lo:.2f} to {hi:.2f})" if seeds > 1 else ""
    missed = int(h.get("headline/prime_missed", 0))
    never = f"; PRIME never reached it on {missed} of {seeds} seed(s), counted as 0" if missed else ""
    improves = h.get("headline/prime/improves") == 1.0
    why = "" if improves else "PRIME's " + NOT_IMPROVING.removeprefix("its ")
    faster = ("does not hold" if missed else
              noise_verdict(h["headline/prime_faster"], h["headline/prime_faster_diff"], h["headline/prime_faster_se"],
                            seeds, " rollouts", 0, why, "rollouts saved"))
    out = [f"PRIME reaches outcome-only RLOO's final accuracy with {_times(eff)}{spread}, over {seeds} "
           f"seed(s){never}: 'PRIME learns faster than outcome-only RLOO' {faster} (the paper: 2.5x fewer)."]
    gspread = f" (seeds: {glo:+.3f} to {ghi:+.3f})" if seeds > 1 else ""
    greedy = ""
    if math.isfinite(h.get("headline/final_gain_greedy", math.nan)):
        se = h["headline/final_gain_greedy_se"]
        greedy = f" and {h['headline/final_gain_greedy']:+.3f} in greedy accuracy" + (
            f" (standard error {se:.3f})" if math.isfinite(se) else "")
    judged = noise_verdict(h["headline/final_gain_holds"], gain, h["headline/final_gain_se"], seeds, why_not=why)
    out.append(f"PRIME ends at {_end(h, 'prime')} and outcome-only RLOO at {_end(h, 'rloo')}: PRIME's final accuracy is "
               f"{gain:+.3f} against RLOO's{gspread}{greedy}: a final gain {judged} (the paper: +6.9 points).")
    fresh = h.get("headline/implicit_prm_rollout_auroc", float("nan"))
    if not math.isnan(fresh):
        out.append(f"On the policy's fresh rollouts the implicit PRM ranks a prompt's responses with AUROC {fresh:.2f} "
                   "on average (0.5: chance), the signal its process credit adds to the outcome's.")
    return out + _greedy(h, {"prime": "PRIME", "rloo": "outcome-only RLOO"})


SELF_CERTAINTY_TARGETS = {  # 00 on the arithmetic task (issue: a testbed where process supervision has to work)
    "greedy_gap": 0.15,  # greedy decoding at least this far below pass@16
    "confident_share": 0.30,  # at least this share of erring solutions err confidently
    "likelihood_on_misconceptions": 0.70,  # the raw likelihood ranks at most this well where a misconception applies
}


def self_certainty(metrics: dict) -> list[str]:
    """00: is the policy's own likelihood a poor enough verifier that a PRM has something to do? Greedy
    decoding against pass@16, the share of confident errors, the raw likelihood's within-problem AUROC
    where a misconception applies (`prmlab.self_certainty`'s metrics)."""
    t, out = SELF_CERTAINTY_TARGETS, []
    greedy, p16 = metrics.get("eval/greedy_accuracy"), metrics.get("eval/pass_at_16")
    if greedy is not None and p16 is not None:
        gap = p16 - greedy
        out.append(f"Greedy decoding solves {greedy:.3f} of the problems, {_gap(gap)} pass@16 ({p16:.3f}): the target "
                   f"(at least {t['greedy_gap']} below) {_held(gap >= t['greedy_gap'])}.")
    share = metrics.get("selfcert/confident_share")
    if share is not None:
        out.append(f"{share:.0%} of the erring solutions gave their first wrong token a probability of at least 0.5: the "
                   f"target (at least {t['confident_share']:.0%} confident errors) {_held(share >= t['confident_share'])}.")
    lik = metrics.get("selfcert/likelihood_within_auroc/misconception_problems")
    if lik is not None:
        overall = metrics.get("selfcert/likelihood_within_auroc", float("nan"))
        out.append(f"The policy's own likelihood ranks solutions within a problem at AUROC {lik:.3f} where a misconception "
                   f"applies ({overall:.3f} overall): the target (at most {t['likelihood_on_misconceptions']}) "
                   f"{_held(lik <= t['likelihood_on_misconceptions'])}.")
    return out
