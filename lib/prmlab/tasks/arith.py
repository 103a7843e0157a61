"""The embedded task: multi-step arithmetic chains with an oracle for every step.

A problem is a start value and a list of operations applied left to right::

    Q: 17 +5 *3 -8          <- prompt (one line)
    17+5=22                 <- one reasoning step per operation
    22*3=66
    66-8=58
    A: 58                   <- final answer line (also judged as a step)

Because every step can be checked exactly, step labels, label noise and reward hacking are measured,
not guessed. The oracle labels any text, well-formed or not, and never raises on model output.

Two kinds of errors make the testbed like real models' (`sft` writes both into the training data):
random *slips* (`solution_with_mistake`: a value off by a little, a skipped or an extra operation), which
the policy learns to make rarely and finds unlikely when it does, and *misconceptions*
(`MISCONCEPTIONS`, `solution_with_misconceptions`): systematic wrong rules, such as a dropped carry,
that the training data follows wherever they apply, so that the policy learns them as its confident
mode. The oracle names a step that follows an active misconception's rule ``misconception``.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from ..choices import check_choice, unknown_choice

OPS = "+-*"
STEP_KINDS = ("ok", "arithmetic", "misconception", "carry", "skipped", "extra", "malformed")
ERROR_KINDS = STEP_KINDS[1:]
# Mistakes the SFT data generator can inject (a malformed line is not a realistic reasoning error).
INJECTABLE_KINDS = ("arithmetic", "carry", "skipped", "extra")

_STEP_RE = re.compile(r"^(-?\d+)([+\-*])(\d+)=(-?\d+)$")
_ANSWER_RE = re.compile(r"^A: (-?\d+)$")
_ANSWER_LINE = re.compile(r"^A: (-?\d+)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class ArithConfig:
    """Difficulty knobs of the arithmetic task."""

    min_ops: int = 2  # fewest operations (reasoning steps) in a problem
    max_ops: int = 5  # most operations in a problem
    max_start: int = 20  # start value is drawn from 1..max_start
    max_operand: int = 20  # operand of + and - is drawn from 1..max_operand
    max_multiplier: int = 5  # operand of * is drawn from 2..max_multiplier
    max_value: int = 99  # every intermediate value of the true chain stays in 0..max_value
    ops: str = OPS  # operators that may appear
    misconceptions: str = ""  # comma-separated rules of MISCONCEPTIONS the oracle recognises ("" : none)

    @property
    def rules(self) -> tuple[str, ...]:
        return parse_misconceptions(self.misconceptions)

    def __post_init__(self):
        parse_misconceptions(self.misconceptions)  # validates the names
        bad = set(self.ops) - set(OPS)
        if bad or not self.ops:
            raise ValueError(f"ops must be a non-empty subset of {OPS!r}, got {self.ops!r}")
        if not 1 <= self.min_ops <= self.max_ops:
            raise ValueError(f"need 1 <= min_ops <= max_ops, got {self.min_ops}, {self.max_ops}")
        if self.max_start < 1 or self.max_operand < 1 or self.max_value < self.max_start:
            raise ValueError("need max_start >= 1, max_operand >= 1 and max_value >= max_start")
        if "*" in self.ops and self.max_multiplier < 2:
            raise ValueError("max_multiplier must be >= 2 when '*' is allowed")


def apply_op(value: int, op: str, operand: int) -> int:
    if op == "+":
        return value + operand
    if op == "-":
        return value - operand
    if op == "*":
        return value * operand
    raise unknown_choice(op, OPS, "operator")


@dataclass(frozen=True)
class Problem:
    """One arithmetic chain. ``ops`` is a tuple of (operator, operand)."""

    start: int
    ops: tuple[tuple[str, int], ...]
    id: str = ""

    @property
    def values(self) -> list[int]:
        """The true chain: start value, then the value after each operation."""
        out = [self.start]
        for op, x in self.ops:
            out.append(apply_op(out[-1], op, x))
        return out

    @property
    def answer(self) -> int:
        return self.values[-1]

    @property
    def prompt(self) -> str:
        return "Q: " + " ".join([str(self.start)] + [f"{op}{x}" for op, x in self.ops]) + "\n"

    def reference_steps(self) -> list[str]:
        v = self.values
        steps = [f"{v[i]}{op}{x}={v[i + 1]}" for i, (op, x) in enumerate(self.ops)]
        return steps + [f"A: {self.answer}"]

    def reference_solution(self) -> str:
        return "\n".join(self.reference_steps())


def parse_prompt(prompt: str) -> Problem:
    """Inverse of ``Problem.prompt`` (used to re-read problems from stored text)."""
    m = re.fullmatch(r"Q: (-?\d+)((?: [+\-*]\d+)+)\n?", prompt)
    if not m:
        raise ValueError(f"not an arithmetic prompt: {prompt!r}")
    ops = tuple((tok[0], int(tok[1:])) for tok in m.group(2).split())
    return Problem(int(m.group(1)), ops)


def _random_op(rng: random.Random, value: int, cfg: ArithConfig) -> tuple[str, int]:
    # Rejection sampling keeps the true chain inside 0..max_value.
    for _ in range(100):
        op = rng.choice(cfg.ops)
        x = rng.randint(2, cfg.max_multiplier) if op == "*" else rng.randint(1, cfg.max_operand)
        if 0 <= apply_op(value, op, x) <= cfg.max_value:
            return op, x
    # Always possible: adding 0 is excluded, but subtracting from a positive value or adding to 0 works.
    return ("-", min(value, cfg.max_operand)) if value > 0 and "-" in cfg.ops else ("+", 1)


def random_problem(rng: random.Random, cfg: ArithConfig) -> Problem:
    value = rng.randint(1, cfg.max_start)
    start, ops = value, []
    for _ in range(rng.randint(cfg.min_ops, cfg.max_ops)):
        op, x = _random_op(rng, value, cfg)
        ops.append((op, x))
        value = apply_op(value, op, x)
    return Problem(start, tuple(ops))


def make_splits(cfg: ArithConfig, n_train: int, n_eval: int, seed: int = 0) -> tuple[list[Problem], list[Problem]]:
    """Fixed, disjoint train/eval splits: the same (cfg, sizes, seed) always give the same problems.

    The eval split is drawn first from its own stream, so growing ``n_train`` never changes it.
    """
    eval_rng = random.Random(f"arith-eval-{seed}")
    train_rng = random.Random(f"arith-train-{seed}")
    seen: set[str] = set()
    eval_set: list[Problem] = []
    for _ in range(100 * n_eval + 100):
        if len(eval_set) == n_eval:
            break
        p = random_problem(eval_rng, cfg)
        if p.prompt not in seen:
            seen.add(p.prompt)
            eval_set.append(Problem(p.start, p.ops, id=f"eval-{len(eval_set)}"))
    train_set: list[Problem] = []
    for _ in range(100 * n_train + 100):
        if len(train_set) == n_train:
            break
        p = random_problem(train_rng, cfg)
        if p.prompt not in seen:  # train problems never repeat an eval problem
            train_set.append(Problem(p.start, p.ops, id=f"train-{len(train_set)}"))
    if len(eval_set) < n_eval or len(train_set) < n_train:
        raise ValueError(
            f"this configuration has too few distinct problems for {n_train} train + {n_eval} eval; "
            "raise max_ops, max_operand or max_value"
        )
    return train_set, eval_set


# ----------------------------------------------------------------------------------------------
# Misconceptions: systematic wrong rules, followed wherever they apply (confident errors).


def _units_carry(a: int, op: str, x: int) -> bool:
    return op == "+" and a >= 0 and a % 10 + x % 10 >= 10


def _units_borrow(a: int, op: str, x: int) -> bool:
    return op == "-" and a >= x and a % 10 < x % 10


def _times_carry(a: int, op: str, x: int) -> bool:
    return op == "*" and a >= 10 and (a % 10) * x >= 10


@dataclass(frozen=True)
class Misconception:
    """A wrong rule: where it applies (``applies(a, op, x)``) and the value it writes (``wrong(a, op, x)``,
    never the true one where it applies)."""

    name: str
    description: str
    applies: object  # (a, op, x) -> bool
    wrong: object  # (a, op, x) -> int


MISCONCEPTIONS = {
    m.name: m
    for m in (
        Misconception("no-carry", "an addition whose units digits carry drops the carry (27+5=22)",
                      _units_carry, lambda a, op, x: a + x - 10),
        Misconception("no-borrow", "a subtraction whose units digit borrows drops the borrow (32-5=37)",
                      _units_borrow, lambda a, op, x: a - x + 10),
        Misconception("times-carry", "a product whose units digit carries drops that carry (17*3=31)",
                      _times_carry, lambda a, op, x: (a // 10) * x * 10 + (a % 10) * x % 10),
    )
}


def parse_misconceptions(spec: str) -> tuple[str, ...]:
    """``"no-carry,no-borrow"`` -> ("no-carry", "no-borrow"); unknown names raise, naming the choices."""
    names = tuple(dict.fromkeys(x.strip() for x in str(spec or "").split(",") if x.strip()))
    for name in names:
        check_choice(name, tuple(MISCONCEPTIONS), "misconception")
    return names


def misconceived_value(rules: tuple[str, ...], a: int, op: str, x: int) -> int | None:
    """The value the first rule of ``rules`` that applies to ``a op x`` writes (None if none applies)."""
    for name in rules:
        rule = MISCONCEPTIONS[name]
        if rule.applies(a, op, x):
            return rule.wrong(a, op, x)
    return None


def misconception_applies(problem: Problem, rules: tuple[str, ...]) -> bool:
    """Does any step of the problem's true chain fall under one of ``rules``?"""
    v = problem.values
    return any(misconceived_value(rules, v[i], op, x) is not None for i, (op, x) in enumerate(problem.ops))


def solution_with_misconceptions(problem: Problem, rules: tuple[str, ...]) -> tuple[str, int]:
    """The solution of a writer who holds ``rules``: every step the rules apply to (on the writer's own
    chain of values) writes the rule's value; the others are right. Returns the text and the index of
    the first misconceived step (-1 when no rule applies: the reference solution)."""
    value, steps, first = problem.start, [], -1
    for i, (op, x) in enumerate(problem.ops):
        wrong = misconceived_value(rules, value, op, x)
        c = apply_op(value, op, x) if wrong is None else wrong
        if wrong is not None and first < 0:
            first = i
        steps.append(f"{value}{op}{x}={c}")
        value = c
    steps.append(f"A: {value}")
    return "\n".join(steps), first


# ----------------------------------------------------------------------------------------------
# Mistakes: random slips injected into generated SFT solutions.


def _perturb(rng: random.Random, value: int) -> int:
    """A plausible wrong number near ``value``: off by a little, or two digits swapped."""
    s = str(abs(value))
    if len(s) >= 2 and s[-1] != s[-2] and rng.random() < 0.3:
        swapped = int(s[:-2] + s[-1] + s[-2])
        return -swapped if value < 0 else swapped
    delta = rng.choice([-1, 1]) * rng.choice([1, 1, 1, 2, 2, 3, 5, 10])
    return value + delta


def solution_with_mistake(problem: Problem, rng: random.Random, kind: str, position: int | None = None) -> tuple[str, int]:
    """A solution with one mistake of ``kind``; the steps after it carry on faithfully from it.

    Returns the text and the index of the erroneous step, which the oracle finds as the first error.
    ``position`` is the operation the mistake happens at (for 'extra': the extra step comes before that
    operation, or after the last one when ``position == len(ops)``).
    """
    check_choice(kind, INJECTABLE_KINDS, "mistake kind")
    ops = list(problem.ops)
    n = len(ops)
    if kind == "skipped":
        # Skipping op i is only visible if op i+1 differs from it.
        choices = [i for i in range(n - 1) if ops[i] != ops[i + 1]]
        if not choices:
            kind, choices = "arithmetic", list(range(n))
    elif kind == "extra":
        choices = list(range(n + 1))
    else:
        choices = list(range(n))
    pos = rng.choice(choices) if position is None else position
    if pos not in choices:
        raise ValueError(f"position {pos} is not valid for a {kind!r} mistake in a {n}-operation problem")
    steps: list[str] = []
    value = problem.start
    i = 0
    while i <= n:
        if i == pos and kind == "extra":
            op, x = _extra_op(rng, ops[:i], ops[i:])
            steps.append(f"{value}{op}{x}={apply_op(value, op, x)}")
            value = apply_op(value, op, x)
        if i == n:
            break
        if i == pos and kind == "skipped":
            i += 1  # this step applies the next operation instead
        op, x = ops[i]
        a = _perturb(rng, value) if (i == pos and kind == "carry") else value
        c = apply_op(a, op, x)
        if i == pos and kind == "arithmetic":
            c = _perturb(rng, c)
        steps.append(f"{a}{op}{x}={c}")
        value = c
        i += 1
    steps.append(f"A: {value}")
    return "\n".join(steps), pos


def _extra_op(rng: random.Random, done: list, pending: list) -> tuple[str, int]:
    """An operation the problem does not call for next: a repeat of a done one, or an invented one.

    It must differ from every pending operation, or it would read as a correct or a skipping step.
    """
    repeats = [o for o in done if o not in pending]
    if repeats and rng.random() < 0.5:
        return rng.choice(repeats)
    while True:
        op = rng.choice(OPS)
        x = rng.randint(2, 5) if op == "*" else rng.randint(1, 20)
        if (op, x) not in pending:
            return op, x


# ----------------------------------------------------------------------------------------------
# The oracle.


@dataclass(frozen=True)
class StepVerdict:
    text: str
    kind: str  # one of STEP_KINDS
    expected: str = ""  # the right step at this point, given what the solution stated so far ("" after the answer)

    @property
    def ok(self) -> bool:
        return self.kind == "ok"


@dataclass(frozen=True)
class Verdict:
    """The oracle's judgement of one solution."""

    steps: tuple[StepVerdict, ...]
    first_error: int  # index of the first wrong step, -1 if none
    answer: int | None  # the final answer the solution states, None if it states none
    answer_correct: bool
    complete: bool  # the solution ends with an answer line
    kinds: tuple[str, ...] = field(default=())

    @property
    def step_labels(self) -> list[int]:
        """Process labels: 1 for every step before the first error, 0 from it on.

        This is the "can this prefix still reach the right answer" semantics of Math-Shepherd, which on
        this task coincides with PRM800K's "every step so far is correct".
        """
        n = len(self.steps)
        fe = n if self.first_error < 0 else self.first_error
        return [1 if i < fe else 0 for i in range(n)]


def split_steps(solution: str) -> list[str]:
    """Reasoning steps of a solution: its non-empty lines (the answer line is the last step)."""
    return [line for line in solution.strip("\n").split("\n") if line.strip()]


def final_answer(solution: str) -> int | None:
    """The final answer a solution text states: its last ``A: N`` line (None if it has none). Needs
    no problem, so decoding can read answers of any prompt's solutions (``answer_fn``)."""
    found = _ANSWER_LINE.findall(solution)
    return int(found[-1]) if found else None


def judge(problem: Problem, solution: str | list[str], misconceptions: tuple[str, ...] = ()) -> Verdict:
    """Label every step of ``solution`` (text or list of steps) against ``problem``.

    Each step is judged locally, as a careful reader would: given the value the previous step stated
    and the operations applied so far, does this step apply the next operation correctly? A wrong
    result that one of ``misconceptions`` (rule names) writes there is a ``misconception``, any
    other wrong result ``arithmetic``.
    """
    steps = split_steps(solution) if isinstance(solution, str) else [s for s in solution if s.strip()]
    ops = list(problem.ops)
    n = len(ops)
    value = problem.start  # the value the solution has stated so far
    k = 0  # operations applied so far
    verdicts: list[StepVerdict] = []
    answer = None
    answered = False
    for text in steps:
        line = text.strip()
        if answered:
            verdicts.append(StepVerdict(text, "extra"))  # anything after the answer line
            continue
        expected = f"{value}{ops[k][0]}{ops[k][1]}={apply_op(value, *ops[k])}" if k < n else f"A: {value}"
        m_ans = _ANSWER_RE.match(line)
        if m_ans:
            answered = True
            answer = int(m_ans.group(1))
            if k < n:
                kind = "skipped"  # answered before applying every operation
            elif answer != value:
                kind = "carry"
            else:
                kind = "ok"
            verdicts.append(StepVerdict(text, kind, expected))
            continue
        m = _STEP_RE.match(line)
        if not m:
            verdicts.append(StepVerdict(text, "malformed", expected))
            continue
        a, op, x, c = int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4))
        later = [j for j in range(k + 1, n) if ops[j] == (op, x)]
        if k < n and ops[k] == (op, x):
            if a != value:
                kind = "carry"
            elif c == apply_op(a, op, x):
                kind = "ok"
            else:
                kind = "misconception" if c == misconceived_value(misconceptions, a, op, x) else "arithmetic"
            k += 1
        elif later:
            kind = "skipped"
            k = later[0] + 1
        else:
            kind = "extra"
        verdicts.append(StepVerdict(text, kind, expected))
        value = c  # later steps are judged against what this one stated
    first_error = next((i for i, v in enumerate(verdicts) if not v.ok), -1)
    return Verdict(
        steps=tuple(verdicts),
        first_error=first_error,
        answer=answer,
        answer_correct=answer is not None and answer == problem.answer,
        complete=answered,
        kinds=tuple(v.kind for v in verdicts),
    )


class ArithTask:
    """The arithmetic task with fixed train/eval splits, in the interface every task offers."""

    name = "arith"
    has_oracle = True
    step_delimiter = "\n"  # one step per line

    def __init__(self, cfg: ArithConfig | None = None, n_train: int = 20000, n_eval: int = 200, seed: int = 0):
        self.cfg = cfg or ArithConfig()
        self.train, self.eval = make_splits(self.cfg, n_train, n_eval, seed)

    @staticmethod
    def prompt(problem: Problem) -> str:
        return problem.prompt

    @staticmethod
    def reference_solution(problem: Problem) -> str:
        return problem.reference_solution()

    @staticmethod
    def grade(problem: Problem, solution: str) -> bool:
        return judge(problem, solution).answer_correct

    @staticmethod
    def split_steps(solution: str) -> list[str]:
        return split_steps(solution)

    def judge(self, problem: Problem, solution: str | list[str]) -> Verdict:
        return judge(problem, solution, self.cfg.rules)

    @staticmethod
    def answer(problem: Problem, solution: str) -> int | None:
        """The final answer the solution states (None if it states none)."""
        return judge(problem, solution).answer

    @staticmethod
    def answer_of_text(solution: str) -> int | None:
        """The final answer a solution's text states, without its problem (decoding's ``answer_fn``)."""
        return final_answer(solution)

    @staticmethod
    def reference_answer(problem: Problem) -> int:
        return problem.answer
