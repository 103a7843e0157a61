"""Real data sets (GSM8K, MATH-500): loaders, answer extraction, grading and calculator checks.

The files live in ``shared/data`` beside the project root (see ``shared_data_dir``); nothing is
downloaded. Everything that reads model output (extraction, grading, annotation checks) never raises
on garbage: it returns ``None`` or ``False``.

Prompt format (used by ``RealProblem.prompt`` and ``RealTask.prompt``; the paper profile uses it)::

    Question: <question text>
    Answer step by step, one step per line, and end with a line 'The answer is: X'.

For MATH-500 the last line asks for ``'The answer is: \\boxed{X}'`` so that math-verify finds it.
Solution steps are the non-empty lines of a solution (``split_steps``), as in the embedded task.

Real models often write a step as a short paragraph (a heading line, then its computation) with a
blank line between steps. A ``RealTask`` with ``step_format="paragraph"`` asks for that ("with a blank
line between steps") and splits on blank lines; its ``step_delimiter`` is what the sampler pauses on.
With a chat model's tokenizer (``RealTask.with_chat_template``) the prompt is the user turn of its
chat template, followed by the assistant's header.
"""

from __future__ import annotations

import ast
import json
import operator
import os
import random
import re
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

from ..choices import check_choice

DATA_ENV_VAR = "PRMLAB_DATA_DIR"
TASK_NAMES = ("gsm8k", "math500")
GSM8K_MODELS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")

PROMPT_TEMPLATE = (
    "Question: {question}\n"
    "Answer step by step, {step_hint}, and end with a line 'The answer is: {answer_hint}'.\n"
)
_ANSWER_HINT = {"gsm8k": "X", "math500": "\\boxed{X}"}
# How a solution's steps are written: the text between two steps, and how the prompt asks for it.
STEP_DELIMITERS = {"line": "\n", "paragraph": "\n\n"}
STEP_FORMATS = tuple(STEP_DELIMITERS)
_STEP_HINT = {"line": "one step per line", "paragraph": "with a blank line between steps"}

# math-verify's timeouts use signal.alarm, which only works in the main thread.
MATH_VERIFY_TIMEOUT_S = 5


# ---------------------------------------------------------------------------------------------
# Locating the data
# ---------------------------------------------------------------------------------------------


def shared_data_dir() -> Path:
    """The folder holding the real data sets: ``$PRMLAB_DATA_DIR`` if set, else ``shared/data``
    beside the project root (``<root>/lib/prmlab/tasks/real.py`` -> ``<root>/../shared/data``).

    Raises FileNotFoundError naming the path and the env var when the folder is missing."""
    env = os.environ.get(DATA_ENV_VAR)
    path = Path(env).expanduser() if env else Path(__file__).resolve().parents[3].parent / "shared" / "data"
    if not path.is_dir():
        raise FileNotFoundError(
            f"real data folder not found: {path}. Put the data sets there "
            f"or set {DATA_ENV_VAR} to the folder that holds gsm8k/ and math500/."
        )
    return path


def _data_file(*parts: str) -> Path:
    path = shared_data_dir().joinpath(*parts)
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path} (data folder from {DATA_ENV_VAR} or the default)")
    return path


def _read_jsonl(path: Path, limit: int | None) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if limit is not None and len(rows) >= limit:
                break
            if line.strip():
                rows.append(json.loads(line))
    return rows


# ---------------------------------------------------------------------------------------------
# Problems and loaders
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RealProblem:
    """One problem of a real data set.

    ``answer`` is the reference final answer (GSM8K: a normalized number such as ``"2125"``; MATH:
    the LaTeX answer). ``solution`` is the reference solution text, one step per line, with GSM8K
    calculator annotations kept (``meta["solution_stripped"]`` has them removed)."""

    id: str
    question: str
    answer: str
    solution: str
    source: str  # "gsm8k" or "math500"
    meta: dict = field(default_factory=dict, compare=False)  # not hashed: problems stay hashable

    @property
    def prompt(self) -> str:
        """The plain prompt (see the module docstring for the format)."""
        return self.prompt_for("line")

    def prompt_for(self, step_format: str) -> str:
        """The plain prompt asking for steps written in ``step_format`` (one of ``STEP_FORMATS``)."""
        check_choice(step_format, STEP_FORMATS, "step format")
        return PROMPT_TEMPLATE.format(question=self.question, step_hint=_STEP_HINT[step_format],
                                      answer_hint=_ANSWER_HINT.get(self.source, "X"))

    @property
    def steps(self) -> list[str]:
        """The reference solution split into steps."""
        return split_steps(self.solution)


@dataclass(frozen=True)
class ModelSolution:
    """One model-written GSM8K solution with the file's outcome label."""

    model: str  # one of GSM8K_MODELS
    solution: str
    is_correct: bool


@dataclass(frozen=True)
class SolvedProblem:
    """A GSM8K problem with the model solutions shipped for it."""

    problem: RealProblem
    solutions: tuple[ModelSolution, ...]


def _gsm8k_problem(idx: int, split: str, question: str, solution_text: str, marker: str) -> RealProblem:
    # The reference text is the steps, then a last line "<marker> <answer>".
    steps, _, raw_answer = solution_text.rpartition(marker)
    steps = steps.rstrip("\n")
    return RealProblem(
        id=f"gsm8k/{split}/{idx}",
        question=question,
        answer=_normalize_number(raw_answer) or raw_answer.strip(),
        solution=steps,
        source="gsm8k",
        meta={"index": idx, "answer_raw": raw_answer.strip(), "solution_stripped": strip_annotations(steps)},
    )


def load_gsm8k(split: str = "test", limit: int | None = None) -> list[RealProblem]:
    """GSM8K problems from ``gsm8k/<split>.jsonl`` (the first ``limit`` rows if given)."""
    folder = shared_data_dir() / "gsm8k"
    splits = sorted(p.stem for p in folder.glob("*.jsonl") if p.stem != "example_model_solutions")
    check_choice(split, splits, "GSM8K split")
    rows = _read_jsonl(folder / f"{split}.jsonl", limit)
    return [_gsm8k_problem(i, split, r["question"], r["answer"], "#### ") for i, r in enumerate(rows)]


def load_gsm8k_model_solutions(limit: int | None = None) -> list[SolvedProblem]:
    """The GSM8K test questions with their 4 model solutions each (``GSM8K_MODELS``), from
    ``gsm8k/example_model_solutions.jsonl``. Rows align with ``load_gsm8k("test")`` (same ids)."""
    rows = _read_jsonl(_data_file("gsm8k", "example_model_solutions.jsonl"), limit)
    out = []
    for i, r in enumerate(rows):
        problem = _gsm8k_problem(i, "test", r["question"], r["ground_truth"], "A: ")
        sols = tuple(ModelSolution(m, r[m]["solution"], bool(r[m]["is_correct"])) for m in GSM8K_MODELS if m in r)
        out.append(SolvedProblem(problem, sols))
    return out


def load_math500(limit: int | None = None) -> list[RealProblem]:
    """MATH-500 problems from ``math500/test.jsonl``; subject, level and unique_id go to ``meta``."""
    rows = _read_jsonl(_data_file("math500", "test.jsonl"), limit)
    return [
        RealProblem(
            id=r["unique_id"],
            question=r["problem"],
            answer=r["answer"],
            solution=r["solution"],
            source="math500",
            meta={"index": i, "subject": r["subject"], "level": int(r["level"]), "unique_id": r["unique_id"]},
        )
        for i, r in enumerate(rows)
    ]


# ---------------------------------------------------------------------------------------------
# Steps and answer extraction
# ---------------------------------------------------------------------------------------------


def split_steps(text: str, delimiter: str = "\n") -> list[str]:
    """Solution steps: the non-empty pieces of ``text`` between ``delimiter`` s, stripped (final answer
    included). The default gives the lines; ``"\n\n"`` the blank-line-separated paragraphs."""
    if not isinstance(text, str):
        return []
    return [piece.strip() for piece in text.split(delimiter) if piece.strip()]


_ANNOTATION_RE = re.compile(r"<<([^<>]*)>>")


def strip_annotations(text: str) -> str:
    """``text`` without GSM8K calculator annotations (``"= <<48/2=24>>24"`` -> ``"= 24"``)."""
    return _ANNOTATION_RE.sub("", text)


# A number: optional minus (not a binary minus right after a digit), thousands commas, decimals.
_NUM = r"(?<![\d)])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?|(?<![\d)])-?\.\d+"
_NUM_RE = re.compile(_NUM)
# Explicit answer markers; for each, the last occurrence in the text wins.
_HASHES_RE = re.compile(r"####\s*\$?\s*(" + _NUM + ")")
_ANSWER_IS_RE = re.compile(r"answer is\s*:?\s*\$?\s*(" + _NUM + ")", re.IGNORECASE)
_A_COLON_RE = re.compile(r"(?<![A-Za-z])A:\s*\$?\s*(" + _NUM + ")")


def _normalize_number(s: str) -> str | None:
    """``"$1,000."`` -> ``"1000"``, ``"18.0"`` -> ``"18"``, ``"3/4"`` kept; None if not a number."""
    if not isinstance(s, str):
        return None
    s = s.strip().replace("$", "").replace(",", "").strip().rstrip(".")
    if re.fullmatch(r"-?\d+/\d+", s):
        return s if not re.fullmatch(r"-?\d+/0+", s) else None
    if not re.fullmatch(r"-?(\d+\.?\d*|\.\d+)", s):  # plain decimals only: no "1e999999999", "nan"
        return None
    d = Decimal(s)  # Decimal, not float: keeps 30-digit model outputs exact
    if d == d.to_integral_value():
        return str(int(d))
    return format(d.normalize(), "f")


def extract_gsm8k_answer(text: str) -> str | None:
    """The final numeric answer in GSM8K-style output, normalized (no ``$``, commas or trailing ``.``;
    ``"18.0"`` -> ``"18"``), or None. Looks for, in order: ``#### N``, a boxed number, ``The answer
    is: N``, ``A: N``; else the last number in the text (calculator annotations ignored)."""
    if not isinstance(text, str):
        return None
    if found := _HASHES_RE.findall(text):
        return _normalize_number(found[-1])
    boxed = extract_boxed(text)
    if boxed is not None:
        nums = _NUM_RE.findall(boxed.replace("\\!", "").replace("{,}", ","))  # LaTeX "1{,}000"
        if len(nums) == 1:
            return _normalize_number(nums[0])
    for pattern in (_ANSWER_IS_RE, _A_COLON_RE):
        if found := pattern.findall(text):
            return _normalize_number(found[-1])
    # Last resort: the last number, not counting annotations (they may be unfinished, e.g. truncated).
    nums = _NUM_RE.findall(strip_annotations(text))
    return _normalize_number(nums[-1]) if nums else None


def _as_fraction(s: str | None) -> Fraction | None:
    try:
        return Fraction(s) if s is not None else None
    except (ValueError, ZeroDivisionError):
        return None


def grade_gsm8k(prediction_text: str, reference: str) -> bool:
    """True when the answer extracted from ``prediction_text`` equals ``reference`` numerically
    (``"1,000"`` == ``"1000"``, ``"18.0"`` == ``"18"``). ``reference`` is a number or a full
    reference solution ending in ``#### N``."""
    pred = _as_fraction(extract_gsm8k_answer(prediction_text))
    ref_str = _normalize_number(reference) if isinstance(reference, str) else None
    ref = _as_fraction(ref_str if ref_str is not None else extract_gsm8k_answer(reference))
    return pred is not None and ref is not None and pred == ref


def extract_boxed(text: str) -> str | None:
    """The content of the last top-level ``\\boxed{...}`` or ``\\fbox{...}`` (nested braces balanced),
    also ``\\boxed 5``; None if there is none or the last one is unbalanced (e.g. truncated output)."""
    if not isinstance(text, str):
        return None
    last, pos = None, 0
    pattern = re.compile(r"\\(?:boxed|fbox)")
    while (m := pattern.search(text, pos)) is not None:
        i = m.end()
        if i < len(text) and text[i] == "{":
            depth = 0
            for j in range(i, len(text)):
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                if depth == 0:
                    break
            if depth != 0:
                return None  # the last box never closes
            last, pos = text[i + 1 : j], j + 1  # continue after it: inner boxes are not top-level
        elif i < len(text) and text[i] == " ":
            token = re.match(r" +([^\s$]+)", text[i:])  # "\boxed 5" form used in some MATH solutions
            last = token.group(1) if token else last
            pos = i + (token.end() if token else 1)
        else:
            pos = i
    return last


# ---------------------------------------------------------------------------------------------
# MATH grading with math-verify
# ---------------------------------------------------------------------------------------------


def _math_verify_timeout() -> int | None:
    # signal.alarm only works in the main thread; elsewhere run without math-verify's timeout.
    return MATH_VERIFY_TIMEOUT_S if threading.current_thread() is threading.main_thread() else None


def grade_math(prediction_text: str, reference: str) -> bool:
    """True when ``prediction_text`` (a model's full output; math-verify finds its boxed or last
    answer) is mathematically equivalent to the LaTeX ``reference`` answer: ``\\frac{1}{2}`` vs
    ``0.5``, ``\\dfrac``, ``\\left( 3, \\frac{\\pi}{2} \\right)`` vs ``(3,\\frac{\\pi}{2})``...
    Works from any thread (math-verify's signal timeout is used only in the main thread)."""
    if not isinstance(prediction_text, str) or not isinstance(reference, str) or not reference.strip():
        return False
    from math_verify import parse, verify  # imported lazily: it pulls in sympy
    from math_verify.errors import TimeoutException  # a BaseException, so caught by name

    t = _math_verify_timeout()
    gold_text = reference if "\\boxed" in reference else "\\boxed{" + reference.strip() + "}"
    try:
        gold = parse(gold_text, parsing_timeout=t)
        pred = parse(prediction_text, parsing_timeout=t)
        return bool(gold) and bool(pred) and bool(verify(gold, pred, timeout_seconds=t))
    except (Exception, TimeoutException):
        return False


# ---------------------------------------------------------------------------------------------
# Calculator annotations
# ---------------------------------------------------------------------------------------------

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_UNOPS = {ast.UAdd: operator.pos, ast.USub: operator.neg}


def _eval_node(node: ast.AST) -> Fraction:
    # Only numbers, + - * / and unary signs; anything else (names, calls, **) is refused.
    if isinstance(node, ast.Expression):
        return _eval_node(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return Fraction(str(node.value)) if isinstance(node.value, float) else Fraction(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return _BINOPS[type(node.op)](_eval_node(node.left), _eval_node(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNOPS:
        return _UNOPS[type(node.op)](_eval_node(node.operand))
    raise ValueError(f"not plain arithmetic: {ast.dump(node)}")


def eval_arithmetic(expr: str) -> Fraction | None:
    """Exact value of a plain arithmetic expression (numbers, ``+ - * / ( )``, thousands commas,
    ``5%``), or None for anything else. Never evaluates code."""
    if not isinstance(expr, str) or len(expr) > 500:  # long inputs are not calculator calls
        return None
    s = re.sub(r"(?<=\d),(?=\d{3})", "", expr.strip())  # 12*20,000 -> 12*20000
    s = re.sub(r"(\d+(?:\.\d+)?)%", r"(\1/100)", s)
    try:
        return _eval_node(ast.parse(s, mode="eval"))
    except (SyntaxError, ValueError, TypeError, ZeroDivisionError, RecursionError, OverflowError, MemoryError):
        return None


_REL_TOL = Fraction(1, 10**6)
_EPS = Fraction(1, 10**12)


def _matches(value: Fraction, result_text: str, result: Fraction) -> bool:
    # Exact up to 1e-6 relative, or equal to the value rounded to the decimals the result shows.
    err = abs(value - result)
    if err <= _REL_TOL * max(1, abs(value)):
        return True
    decimals = len(result_text.strip().partition(".")[2])
    return decimals > 0 and err <= Fraction(1, 2 * 10**decimals) + _EPS


def _check_one(annotation: str) -> bool:
    parts = annotation.split("=")
    if len(parts) < 2 or not parts[-1].strip():
        return False  # a calculator call without a result
    result_text = re.sub(r"(?<=\d),(?=\d{3})", "", parts[-1].strip())
    result = eval_arithmetic(result_text)
    if result is None:
        return False
    # A chain "a=b=c" must hold link by link; each side must be plain arithmetic.
    values = [eval_arithmetic(p) for p in parts[:-1]]
    return all(v is not None and _matches(v, result_text, result) for v in values)


def check_annotations(step_text: str) -> list[tuple[str, bool]]:
    """Every ``<<expr=result>>`` annotation in ``step_text`` with whether ``expr`` equals ``result``
    (1e-6 relative tolerance, or rounding to the decimals shown in ``result``). Annotations that are
    not plain arithmetic (variables, units, no ``=``) count as not checking (False)."""
    if not isinstance(step_text, str):
        return []
    return [(a, _check_one(a)) for a in _ANNOTATION_RE.findall(step_text)]


def first_wrong_annotation_step(solution_text: str) -> int:
    """Index (into ``split_steps(solution_text)``) of the first step with a wrong calculator
    annotation, or -1 if every annotation checks. Steps without annotations count as fine."""
    for i, step in enumerate(split_steps(solution_text)):
        if any(not ok for _, ok in check_annotations(step)):
            return i
    return -1


# ---------------------------------------------------------------------------------------------
# Task wrapper, so notebooks can treat real data like the embedded task
# ---------------------------------------------------------------------------------------------


class RealTask:
    """A real data set seen through the task interface: ``problems``, ``prompt``, ``grade``,
    ``split_steps``, ``step_delimiter``. Data loads on first use.

    ``step_format`` (``STEP_FORMATS``) says how solutions write their steps: one per line, or as
    blank-line-separated paragraphs. ``chat_tokenizer``: a tokenizer whose chat template wraps every
    prompt (see ``with_chat_template``); None gives the plain prompt."""

    has_oracle = False  # real data has outcome labels only

    def __init__(self, name: str, n_eval: int | None = None, seed: int = 0, step_format: str = "line",
                 chat_tokenizer=None):
        check_choice(name, TASK_NAMES, "real task")
        check_choice(step_format, STEP_FORMATS, "step format")
        self.name = name
        self.n_eval = n_eval
        self.seed = seed
        self.step_format = step_format
        self.step_delimiter = STEP_DELIMITERS[step_format]  # what a sampler pauses on at the end of a step
        self.chat_tokenizer = None
        if chat_tokenizer is not None:
            self._check_chat_template(chat_tokenizer)
            self.chat_tokenizer = chat_tokenizer
        self._all: list[RealProblem] | None = None

    @staticmethod
    def _check_chat_template(tokenizer) -> None:
        if getattr(tokenizer, "chat_template", None) is None:
            raise ValueError(f"the tokenizer {type(tokenizer).__name__} has no chat template: "
                             "use the plain prompt (chat_template = False)")

    def with_chat_template(self, tokenizer) -> "RealTask":
        """The same task (same splits, data shared) whose prompts are ``tokenizer``'s chat template
        applied to one user turn, with the assistant's header after it."""
        twin = RealTask(self.name, self.n_eval, self.seed, self.step_format, chat_tokenizer=tokenizer)
        twin._all = self._all
        return twin

    @property
    def eval(self) -> list[RealProblem]:
        """The eval split: ``problems(n_eval, seed)``."""
        return self.problems(self.n_eval, self.seed)

    @property
    def train(self) -> list[RealProblem]:
        """Every problem not in the eval split (in the same seeded order)."""
        held_out = {p.id for p in self.eval}
        return [p for p in self.problems(None, self.seed) if p.id not in held_out]

    def __repr__(self) -> str:
        return f"RealTask({self.name!r})"

    def all_problems(self) -> list[RealProblem]:
        """Every problem of the data set, in file order."""
        if self._all is None:
            self._all = load_gsm8k("test") if self.name == "gsm8k" else load_math500()
        return self._all

    def problems(self, n: int | None = None, seed: int = 0) -> list[RealProblem]:
        """A fixed subset of ``n`` problems for ``seed`` (all if None). A larger ``n`` with the same
        seed extends a smaller one, so runs of different sizes share problems."""
        everything = self.all_problems()
        if n is None:
            n = len(everything)
        if not 0 <= n <= len(everything):
            raise ValueError(f"n must be in 0..{len(everything)} for {self.name}, got {n}")
        order = list(range(len(everything)))
        random.Random(seed).shuffle(order)
        return [everything[i] for i in order[:n]]

    def prompt(self, problem: RealProblem) -> str:
        """The prompt for ``problem`` (module docstring format), in the chat template if the task has one."""
        text = problem.prompt_for(self.step_format)
        if self.chat_tokenizer is None:
            return text
        turn = [{"role": "user", "content": text.strip()}]
        return self.chat_tokenizer.apply_chat_template(turn, tokenize=False, add_generation_prompt=True)

    def reference_solution(self, problem: RealProblem) -> str:
        """The data set's reference solution written as this task's prompt asks: its steps (GSM8K's without
        calculator annotations) separated by ``step_delimiter``, then the line 'The answer is: X'."""
        text = problem.meta.get("solution_stripped", problem.solution)
        answer = f"\\boxed{{{problem.answer}}}" if problem.source == "math500" else problem.answer
        return self.step_delimiter.join(split_steps(text) + [f"The answer is: {answer}"])

    def grade(self, problem: RealProblem, solution_text: str) -> bool:
        """Whether the final answer of ``solution_text`` is correct for ``problem``."""
        if self.name == "gsm8k":
            return grade_gsm8k(solution_text, problem.answer)
        return grade_math(solution_text, problem.answer)

    def split_steps(self, text: str) -> list[str]:
        """Solution steps: the non-empty lines, or paragraphs (``step_format``)."""
        return split_steps(text, self.step_delimiter)

    def answer(self, problem: RealProblem, solution_text: str):
        """The final answer ``solution_text`` states (`answer_of_text`: the text alone decides)."""
        return self.answer_of_text(solution_text)

    def answer_of_text(self, solution_text: str):
        """The final answer ``solution_text`` states, normalised for voting (a Fraction for GSM8K, so
        that "18" and "18.0" are one vote; the boxed string for MATH-500), None if it states none; needs
        no problem (decoding's ``answer_fn``)."""
        if self.name == "gsm8k":
            return _as_fraction(extract_gsm8k_answer(solution_text))
        boxed = extract_boxed(solution_text)
        return None if boxed is None else boxed.replace(" ", "")

    def reference_answer(self, problem: RealProblem):
        """The reference answer in the form ``answer`` returns."""
        if self.name == "gsm8k":
            return _as_fraction(_normalize_number(problem.answer))
        return problem.answer.replace(" ", "")
