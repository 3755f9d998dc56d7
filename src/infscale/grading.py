"""Final-answer extraction and grading of responses (the `grade` stage, see docs/file-formats.md).

Extraction is ours (regular expressions, so that `strict` and `flexible` mean exactly what they say
and every answer comes back as a canonical string); equivalence of anything beyond plain numbers and
option letters is delegated to `math_verify`, guarded so that garbage never raises or hangs.

- `strict` reads only explicit answer markers: `#### N`, "The (final) answer is N", "Answer: N",
  `\\boxed{N}` and a line "A: N" (only where a bare answer follows: "A: Let's think..." is no answer);
  where a text has several, the last one that parses wins.
- `flexible` tries `strict` first, then takes the last number of the text (for multiple-choice
  questions the last standalone option letter).
Both ignore a few-shot continuation ("...\\nQ: next question"): it is never part of the answer.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from decimal import Decimal
from fractions import Fraction
from typing import Any

import math_verify
from math_verify.errors import TimeoutException


MODES = ("strict", "flexible")
KINDS = ("auto", "numeric", "choice")
TEXT_FIELDS = ("response", "completion")
REFERENCE_FIELDS = ("reference", "answer")

# math_verify's own timeout (signal.alarm, whole seconds, main thread only) bounds each parse/compare.
VERIFY_TIMEOUT_S = 2
# Longer strings are not sent to math_verify at all: final answers are short, long ones are prose.
MAX_VERIFY_CHARS = 200
# Longer digit strings are not numbers anyone answers with (and int<->str is capped at 4300 digits).
MAX_NUMBER_CHARS = 64
# How far past an answer marker its answer is looked for, and how many markers (from the last) are
# tried: real responses have a few; this keeps garbage made of markers cheap.
MAX_SPAN_CHARS = 500
MAX_MARKERS = 16

# --------------------------------------------------------------------------------------------------
# Text clean-up
# --------------------------------------------------------------------------------------------------

# A follow-on question of a few-shot continuation: " 12\nQ: ..." (only after some answer text).
_CONTINUATION = re.compile(r"(?:^|\s)(?:Q|Question)\s*:")
_LATEX_FRAC = re.compile(r"\\[dt]?frac\s*\{\s*(-?[\d.,]+)\s*\}\s*\{\s*(-?[\d.,]+)\s*\}")
_LATEX_FRAC_DIGITS = re.compile(r"\\[dt]?frac\s*(\d)\s*(\d)")  # \frac34
_LATEX_TEXT = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")
_LATEX_NOISE = re.compile(r"\\[!,;: ]|\\left|\\right|\^\s*\{?\\circ\}?")


def _strip_continuation(text: str) -> str:
    match = _CONTINUATION.search(text)
    if match and text[: match.start()].strip():
        return text[: match.start()]
    return text


def _plain(text: str) -> str:
    """Rewrite the LaTeX and typography that wrap numbers into plain text ("\\frac{3}{4}" -> "3/4")."""
    text = text.replace("\u2212", "-").replace("\\$", "$").replace("\\%", "%").replace("{,}", ",")
    text = _LATEX_TEXT.sub(r" \1", text)
    text = _LATEX_NOISE.sub("", text)
    text = _LATEX_FRAC.sub(r"\1/\2", text)
    return _LATEX_FRAC_DIGITS.sub(r"\1/\2", text)


# --------------------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------------------

_NUMBER = re.compile(
    r"""
    (?<![\w.])                                  # not the tail of a word or of another number
    (?P<sign>-)?(?:\$\s?)?(?P<sign2>-)?         # -5, -$5, $-5, $ 5
    (?P<num>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)   # 1,234.50  18  .5
    (?:\s?/\s?(?P<den>-?\d+(?:\.\d+)?))?        # 3/4 (LaTeX fractions were rewritten to this)
    (?!\d)
    """,
    re.VERBOSE,
)
# What may follow a bare (stripped) answer: a percent sign or a few unit words ("18 dollars", "5 cm").
# (Patterns here avoid adjacent unbounded repeats, which backtrack quadratically on long garbage.)
_UNIT_SUFFIX = re.compile(r"(?:\s*%)?\.?|\s+[A-Za-z]+(?:\s[A-Za-z]+){0,2}\.?")


def _canonical_number(match: re.Match) -> str | None:
    """'-$1,234.50' -> '-1234.5', '6/8' -> '3/4', '4/2' -> '2'; None for '3/0' or absurd lengths."""
    if len(match.group(0)) > MAX_NUMBER_CHARS:
        return None
    try:
        value = Decimal(match["num"].replace(",", ""))
        if match["den"] is not None:
            fraction = Fraction(value) / Fraction(Decimal(match["den"]))
            text = str(fraction.numerator if fraction.denominator == 1 else fraction)
        else:
            text = format(value.normalize(), "f")
    except (ArithmeticError, ValueError):  # ZeroDivisionError, decimal.InvalidOperation
        return None
    negative = bool(match["sign"] or match["sign2"])
    if negative and text.strip("0.") != "":  # no "-0"
        text = text[1:] if text.startswith("-") else "-" + text
    return text


def _numbers(text: str) -> list[str]:
    """Canonical forms of all numbers in `text`, in order."""
    found = (_canonical_number(m) for m in _NUMBER.finditer(_plain(text)))
    return [n for n in found if n is not None]


def _as_number(text: str) -> str | None:
    """Canonical number if `text` is a bare answer: one number plus at most a % sign or unit words."""
    plain = _plain(text).strip().strip("$").strip()
    match = _NUMBER.match(plain)
    if match is None or not _UNIT_SUFFIX.fullmatch(plain, match.end()):
        return None
    return _canonical_number(match)


# --------------------------------------------------------------------------------------------------
# Option letters
# --------------------------------------------------------------------------------------------------

_LETTER = "A-J"
# A bare (stripped) reference / predicted option: "B", "(B)", "**B**", "B."
_BARE_LETTER = re.compile(rf"[(\[*]*([{_LETTER}])[)\]*]*\.?")
# An option letter at the start of a marker's span ("Answer: (C) 42"). For a known choice question any
# non-word may follow; otherwise "The answer is A train..." must not read as option A.
_LEADING_LETTER = {
    "choice": re.compile(rf"[\s:*(\[{{]*([{_LETTER}])(?![\w'’])"),
    "auto": re.compile(rf"[\s:*(\[{{]*([{_LETTER}])(?![\w'’]|\s+[a-z])"),
}
# Standalone option letters anywhere in a response (flexible mode); the last one wins.
_STANDALONE_LETTER = re.compile(
    rf"""
      \(([{_LETTER}])\) | \[([{_LETTER}])\]              # (B)  [B]
    | \*\*\(?([{_LETTER}])\)?\*\*                         # **B**  **(B)**
    | \b(?i:option|choice)\s+\(?([{_LETTER}])(?![\w'’])  # option B
    | ^[ \t*(\[]*([{_LETTER}])[ \t*)\].:]*$               # a line that is only the letter
    | \A\s*([{_LETTER}])[).:,](?=\s|$)                    # " B. because ..." at the very start
    """,
    re.VERBOSE | re.MULTILINE,
)


def _choice_letter(text: str) -> str | None:
    match = _BARE_LETTER.fullmatch(text.strip())
    return match.group(1) if match else None


def _last_standalone_letter(text: str) -> str | None:
    letters = [next(g for g in m.groups() if g) for m in _STANDALONE_LETTER.finditer(text)]
    return letters[-1] if letters else None


# --------------------------------------------------------------------------------------------------
# Answer markers (strict mode)
# --------------------------------------------------------------------------------------------------

_MARKER = re.compile(
    r"""
      (?P<hashes>\#\#\#\#)
    | (?P<boxed>\\(?:boxed|fbox)\s*\{)
    | (?P<phrase>\banswer\s*(?:\([^()\n]{0,40}\)\s*)?(?:is\b\s*:?|:))  # the (final) answer is / Answer:
    | (?P<line_a>^[ \t]*(?-i:A):)                    # "A: 18", the Q:/A: format's final line
    """,
    re.VERBOSE | re.IGNORECASE | re.MULTILINE,
)


def _marker_spans(text: str) -> Iterator[tuple[str, str]]:
    """(marker kind, text it introduces) for each answer marker, the last one first."""
    for match in list(_MARKER.finditer(text))[-MAX_MARKERS:][::-1]:
        span = text[match.end(): match.end() + MAX_SPAN_CHARS]
        if match["boxed"]:
            yield "boxed", _braced(span)
        else:
            yield match.lastgroup, span.split("\n", 1)[0]


def _braced(text: str) -> str:
    """`text` up to the '}' that closes a brace group opened just before it (all of it if none does)."""
    depth = 1
    for i, char in enumerate(text):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth == 0:
            return text[:i]
    return text


def _parse_span(marker: str, span: str, kind: str) -> str | None:
    """The answer a marker introduces, as a canonical letter or number (None if it has none)."""
    if marker == "line_a":  # "A:" opens answers of every kind: only a bare answer counts
        letter = _choice_letter(span) if kind != "numeric" else None
        return letter if letter is not None or kind == "choice" else _as_number(span)
    if kind != "numeric":
        letter = _LEADING_LETTER["choice" if kind == "choice" else "auto"].match(_plain(span))
        if letter:
            return letter.group(1)
        if kind == "choice":
            return None
    if marker == "boxed":
        # \boxed{} holds just the answer: keep a non-numeric one ("\sqrt{2}") for math_verify.
        number = _as_number(span)
        return number if number is not None else (span.strip() or None)
    if marker == "phrase" and "=" in span:  # "The answer is 5 + 3 = 8."
        span = span.rsplit("=", 1)[1]
    numbers = _numbers(span)
    return numbers[0] if numbers else None


def _strict(text: str, kind: str) -> str | None:
    for marker, span in _marker_spans(text):
        answer = _parse_span(marker, span, kind)
        if answer is not None:
            return answer
    return None


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------


def check_option(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def extract_answer(text: str, mode: str = "flexible", kind: str = "auto") -> str | None:
    """The final answer in a response as a canonical string ("1234.5", "-3", "3/4", "B"), or None.

    kind "numeric" looks for numbers only, "choice" for option letters A-J only, "auto" for both (a
    marker's option letter, else numbers; flexible: the last number, else the last option letter).
    """
    check_option("mode", mode, MODES)
    check_option("kind", kind, KINDS)
    if not text:
        return None
    text = _strip_continuation(text)
    answer = _strict(text, kind)
    if answer is not None or mode == "strict":
        return answer
    if kind != "choice":
        numbers = _numbers(text)
        if numbers:
            return numbers[-1]
    if kind != "numeric":
        return _last_standalone_letter(text)
    return None


def reference_answer(text: str, kind: str = "auto") -> str | None:
    """Canonical reference from a gold field: a bare answer ("18", "$1,200", "B") or a full solution,
    read with the same markers as responses (GSM8K's "#### 18", a last line "A: 18"), else, if it is
    prose, its last number. An expression ("\\sqrt{2}") or prose without numbers comes back as its
    stripped text, compared later as an expression or as text; None only for an empty field."""
    check_option("kind", kind, KINDS)
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        text = str(text)
    if not isinstance(text, str) or not text.strip():
        return None
    text = text.strip()
    if kind != "choice":
        number = _as_number(text)
        if number is not None:
            return number
    if kind != "numeric":
        letter = _choice_letter(text)
        if letter is not None:
            return letter
    marked = _strict(text, kind)
    if marked is not None or kind == "choice":
        return marked
    if _WORD.search(_plain(text)):  # a worked solution without a marker: its last number is the answer
        numbers = _numbers(_strip_continuation(text))
        if numbers:
            return numbers[-1]
    return text


def answer_kind(reference: str) -> str:
    """ "choice" if the (canonical) reference is a single option letter A-J, else "numeric"."""
    is_letter = isinstance(reference, str) and re.fullmatch(rf"[{_LETTER}]", reference.strip())
    return "choice" if is_letter else "numeric"


def answers_equivalent(predicted: str | None, reference: str | None) -> bool:
    """Whether two answers agree: option letters exactly, numbers by exact value ("18" == "18.00" ==
    "$18", "1/2" == "0.5"), other expressions by math_verify, and anything else as normalised text."""
    if predicted is None or reference is None:
        return False
    predicted, reference = str(predicted), str(reference)
    letters = _choice_letter(predicted), _choice_letter(reference)
    if letters != (None, None):  # never let math_verify read "E" as e or "I" as i
        return letters[0] == letters[1]
    numbers = _as_number(predicted), _as_number(reference)
    if None not in numbers:
        return Fraction(numbers[0]) == Fraction(numbers[1])
    verdict = _math_verify_equal(predicted, reference)
    if verdict is not None:
        return verdict
    texts = _normalised_text(predicted), _normalised_text(reference)
    return bool(texts[0]) and texts[0] == texts[1]


# Words outside LaTeX commands mean prose ("Paris" would parse as the product P*a*r*i*s).
_WORD = re.compile(r"(?<!\\)\b[A-Za-z]{2,}")
# Exponents and factorials are what can blow up in sympy beyond any Python-level interrupt.
_EXPLOSIVE = re.compile(r"\^|\*\*|!")


def _math_verify_equal(predicted: str, reference: str) -> bool | None:
    """math_verify's verdict, or None where it does not apply, fails, or might hang."""
    pair = [_plain(s).strip().strip("$").strip() for s in (predicted, reference)]
    if any(not s or len(s) > MAX_VERIFY_CHARS or _WORD.search(s) for s in pair):
        return None
    # Its timeout uses signal.alarm, which exists only on the main thread; elsewhere run without one
    # and keep away from input that could run for ever.
    on_main_thread = threading.current_thread() is threading.main_thread()
    if not on_main_thread and any(_EXPLOSIVE.search(s) for s in pair):
        return None
    timeout = VERIFY_TIMEOUT_S if on_main_thread else None
    try:
        pred, gold = (math_verify.parse(f"${s}$", parsing_timeout=timeout) for s in pair)
        if not pred or not gold:
            return None
        return bool(math_verify.verify(gold, pred, timeout_seconds=timeout))
    except (Exception, TimeoutException):  # TimeoutException is a BaseException
        return None


def _normalised_text(text: str) -> str:
    text = _plain(text).strip().strip("$").strip().rstrip(".").strip()
    return " ".join(text.split()).casefold()


# --------------------------------------------------------------------------------------------------
# Grading records and files
# --------------------------------------------------------------------------------------------------


def _field(record: dict[str, Any], names: tuple[str, str]) -> tuple[str, Any]:
    for name in names:
        if name in record:
            return name, record[name]
    where = f"record {record['id']!r}" if "id" in record else "record"
    raise ValueError(f"{where} has neither {names[0]!r} nor {names[1]!r}")


def grade_record(record: dict[str, Any], mode: str = "flexible") -> dict[str, Any]:
    """A copy of `record` with `reference` (canonical), `extracted` (str or None) and `correct` added.

    The response is `response` (else `completion`), the gold answer `reference` (else `answer`). A record with
    an `answer_text` (sampling with `answer_suffix`) is graded on the first integer of that text.
    Unparseable text grades as extracted None, correct False; malformed records raise ValueError.
    """
    check_option("mode", mode, MODES)
    text_name, text = _field(record, TEXT_FIELDS)
    reference_name, raw_reference = _field(record, REFERENCE_FIELDS)
    if text is None:
        text = ""  # a generation that produced nothing
    if not isinstance(text, str):
        raise ValueError(f"{text_name!r} must be a string, got {type(text).__name__}")
    if isinstance(raw_reference, bool) or not isinstance(raw_reference, (str, int, float)):
        raise ValueError(f"{reference_name!r} must be a string or a number, got {raw_reference!r}")
    reference = reference_answer(raw_reference)
    kind = answer_kind(reference)
    if record.get("answer_text") is not None:
        extracted = first_integer(record["answer_text"])  # an answer phase after a suffix (seed 000)
    elif reference is not None and kind == "numeric" and _as_number(reference) is None:
        extracted = _extract_text(text, mode)  # a non-numeric reference: compare the answer's text
    else:
        extracted = extract_answer(text, mode=mode, kind=kind)
    return {**record, "reference": reference, "extracted": extracted,
            "correct": answers_equivalent(extracted, reference)}


def first_integer(text: str) -> str | None:
    """The first run of digits once commas are removed, as seed 000 reads the text after its answer suffix
    (base.py `extract_first_integer`: no sign, no decimals; "1,200.5" -> "1200")."""
    match = re.search(r"\d+", text.replace(",", ""))
    return str(int(match.group())) if match else None


def _extract_text(text: str, mode: str) -> str | None:
    """The raw answer text for a non-numeric reference: a marker's span, else (flexible) the last line."""
    text = _strip_continuation(text)
    for _, span in _marker_spans(text):
        span = span.strip().rstrip(".").strip()
        if span:
            return span
    lines = [line.strip().rstrip(".").strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if mode == "flexible" and lines else None
