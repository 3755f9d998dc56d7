"""Answer extraction, equivalence and grading (infscale.grading) and the `infscale grade` CLI."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infscale import grading
from infscale.grading import (
    answer_kind,
    answers_equivalent,
    extract_answer,
    grade_record,
    reference_answer,
)


# (text, mode, kind, expected)
EXTRACTION_CASES = [
    # GSM8K gold marker
    ("Janet sells 9 eggs.\n#### 18", "strict", "auto", "18"),
    ("#### 1,450,000", "strict", "numeric", "1450000"),
    ("#### -10", "flexible", "auto", "-10"),
    # "The answer is" / "final answer is" / "Answer:"
    ("So the answer is 42.", "strict", "auto", "42"),
    ("The final answer is 7", "strict", "numeric", "7"),
    ("Answer: 15", "strict", "numeric", "15"),
    ("Final Answer: $1,234.50", "strict", "numeric", "1234.5"),
    ("Therefore, the answer (arabic numerals) is 18.", "strict", "numeric", "18"),
    ("The answer is 5 + 3 = 8.", "strict", "numeric", "8"),
    ("The answer is 18 dollars.", "strict", "numeric", "18"),
    ("The answer is 5 cm", "flexible", "numeric", "5"),
    ("The answer is 12%.", "strict", "numeric", "12"),
    # \boxed{}
    (r"Thus $\boxed{18}$.", "strict", "numeric", "18"),
    (r"\boxed{\frac{3}{4}}", "strict", "auto", "3/4"),
    (r"\boxed{\$18.00}", "strict", "numeric", "18"),
    (r"\boxed{18 \text{ dollars}}", "strict", "numeric", "18"),
    (r"The final answer is $\boxed{\sqrt{2}}$", "strict", "auto", r"\sqrt{2}"),  # kept for math_verify
    (r"The answer is 5, i.e. \boxed{6}", "strict", "numeric", "6"),  # the last marker wins
    # money, commas, decimals, negatives, fractions
    ("She paid $1,234.50 in total.", "flexible", "numeric", "1234.5"),
    ("It costs 1234.50", "flexible", "auto", "1234.5"),
    ("The temperature is -3 degrees", "flexible", "numeric", "-3"),
    ("She lost -$5 on the deal", "flexible", "numeric", "-5"),
    ("x = \u22127", "flexible", "numeric", "-7"),
    ("16 - 3 - 4 = 9", "flexible", "numeric", "9"),
    ("5 - 3", "flexible", "numeric", "3"),  # subtraction, not a negative number
    ("He ate 3/4 of the pie", "flexible", "numeric", "3/4"),
    ("He ate 6/8 of the pie", "flexible", "numeric", "3/4"),
    (r"He ate $\frac{3}{4}$ of it", "flexible", "numeric", "3/4"),
    (r"$-\frac{3}{4}$", "flexible", "numeric", "-3/4"),
    (r"\dfrac{10}{2}", "flexible", "numeric", "5"),
    ("The ratio is 0.750", "flexible", "numeric", "0.75"),
    ("about .5 of them", "flexible", "numeric", "0.5"),
    ("18 dollars", "flexible", "auto", "18"),
    ("12%", "flexible", "numeric", "12"),
    ("1, 2, 3", "flexible", "numeric", "3"),  # not a thousands separator
    # few-shot continuations: the answer is before the next "Q:"
    (" 12\nQ: What is 3 + 4?\nA: 7", "flexible", "numeric", "12"),
    (" 12 Q: What is 3 + 4? A: 7", "flexible", "numeric", "12"),
    (" 5\n\nQuestion: How many legs?\nAnswer: 8", "strict", "numeric", None),
    (" 5\n\nQuestion: How many legs?\nAnswer: 8", "flexible", "numeric", "5"),
    # strict needs a marker; flexible falls back to the last number
    ("She has 3 apples and buys 4 more, so 7", "strict", "numeric", None),
    ("She has 3 apples and buys 4 more, so 7", "flexible", "numeric", "7"),
    ("The answer is probably 9 apples", "strict", "numeric", "9"),  # the marker's line, first number
    ("To find the answer: add them.\nShe has 9", "strict", "numeric", None),
    ("To find the answer: add them.\nShe has 9", "flexible", "numeric", "9"),
    # multiple choice
    ("The answer is (B).", "strict", "choice", "B"),
    ("Answer: C", "strict", "choice", "C"),
    ("The answer is (D).", "strict", "auto", "D"),
    ("The answer is A because the others are wrong.", "strict", "choice", "A"),
    ("The answer is A train of thought...", "strict", "auto", None),  # an article, not option A
    (r"$\boxed{B}$", "strict", "choice", "B"),
    ("**A**", "strict", "choice", None),
    ("**A**", "flexible", "choice", "A"),
    ("I think (B) is right, no wait, (C).", "flexible", "choice", "C"),
    ("A train leaves at 3 pm.\nC", "flexible", "choice", "C"),
    ("A train leaves at 3 pm.", "flexible", "choice", None),
    (" D\nQ: Which is largest?\n(A) 1 (B) 2", "flexible", "choice", "D"),
    (" B. Because 2 > 1", "flexible", "choice", "B"),
    ("It must be option C", "flexible", "choice", "C"),
    ("Answer: 42", "strict", "choice", None),
    ("The answer is (B) 42", "strict", "numeric", "42"),
    # nothing to find
    ("", "flexible", "auto", None),
    ("I do not know.", "flexible", "numeric", None),
    ("I do not know.", "flexible", "auto", None),
    ("The answer is", "flexible", "numeric", None),
    ("Division by zero: 1/0", "flexible", "numeric", None),
]


@pytest.mark.parametrize(("text", "mode", "kind", "expected"), EXTRACTION_CASES)
def test_extract_answer(text, mode, kind, expected):
    assert extract_answer(text, mode=mode, kind=kind) == expected


def test_extract_answer_defaults_to_flexible_auto():
    assert extract_answer("so 7") == "7"
    assert extract_answer("so (B)") == "B"


@pytest.mark.parametrize(("argument", "value"), [("mode", "lenient"), ("kind", "letter")])
def test_extract_answer_rejects_unknown_options(argument, value):
    with pytest.raises(ValueError, match=argument):
        extract_answer("7", **{argument: value})


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        ("18", "auto", "18"),
        ("$1,200", "auto", "1200"),
        ("18.00", "auto", "18"),
        ("-3", "numeric", "-3"),
        ("3/4", "auto", "3/4"),
        ("B", "auto", "B"),
        ("(B)", "choice", "B"),
        (" C. ", "auto", "C"),
        ("It takes 2 bolts.\n#### 3", "auto", "3"),
        ("#### 1,450,000", "numeric", "1450000"),
        (r"so $\boxed{\frac{1}{2}}$", "auto", "1/2"),
        ("Paris", "auto", "Paris"),  # non-numeric: kept as text
        ("  ", "auto", None),
        (18, "auto", "18"),
        (2.50, "auto", "2.5"),
    ],
)
def test_reference_answer(text, kind, expected):
    assert reference_answer(text, kind=kind) == expected


@pytest.mark.parametrize(
    ("reference", "kind"),
    [("B", "choice"), ("J", "choice"), (" A ", "choice"), ("K", "numeric"), ("18", "numeric"),
     ("AB", "numeric"), ("b", "numeric"), ("Paris", "numeric")],
)
def test_answer_kind(reference, kind):
    assert answer_kind(reference) == kind


EQUIVALENT = [
    ("18", "18.0"), ("18", "$18"), ("18", "18.00"), ("$18", "18.00"), ("1/2", "0.5"), ("3/4", r"\frac{3}{4}"),
    ("1,234.5", "1234.50"), ("-3", "-3.0"), ("12%", "12"), ("18 dollars", "18"), ("-0", "0"),
    ("B", "B"), ("(B)", "B"), ("**C**", "C"),
    (r"\sqrt{2}/2", r"\frac{\sqrt{2}}{2}"), ("x+1", "1+x"), ("x = 5", "5"),  # math_verify
    ("Paris", "paris."),  # text fallback
]
NOT_EQUIVALENT = [
    ("-3", "3"), ("18", "18.5"), ("1/3", "0.33"), ("B", "C"), ("E", "2.718281828"), ("I", "i"),
    ("B", "2"), (r"\sqrt{2}", "1.41"), ("Paris", "Sirap"), (None, "1"), ("1", None), (None, None),
    ("", ""), ("", "0"),
]


@pytest.mark.parametrize(("predicted", "reference"), EQUIVALENT)
def test_equivalent(predicted, reference):
    assert answers_equivalent(predicted, reference)
    assert answers_equivalent(reference, predicted)


@pytest.mark.parametrize(("predicted", "reference"), NOT_EQUIVALENT)
def test_not_equivalent(predicted, reference):
    assert not answers_equivalent(predicted, reference)


GARBAGE = [
    "(((((((((", r"\frac{", r"\boxed{", r"\boxed{\boxed{}", "}}}{{{", "$$$", "####", "#### ####", "1/0",
    "9" * 6000, "1," * 3000, r"\sqrt{-}", "\x00\x01", "∞", "Answer: answer: answer is", "Q:", r"\frac{1}{0}",
    "-" * 500, "." * 500, "Q: Q: Q:", "\n\n\n",
]


@pytest.mark.parametrize("text", GARBAGE)
def test_garbage_never_raises(text):
    for mode in grading.MODES:
        for kind in grading.KINDS:
            extract_answer(text, mode=mode, kind=kind)
    reference_answer(text)
    assert isinstance(answers_equivalent(text, "5"), bool)
    assert isinstance(answers_equivalent(text, text), bool)
    graded = grade_record({"response": text, "reference": "5"})
    assert graded["correct"] is False


LONG_GARBAGE = [" " * 50_000, "\n" * 50_000, "answer: " * 6_000, "\\boxed{" * 6_000, "A\n" * 25_000, "1," * 25_000,
                "( * \n" * 12_000]

# Time bounds are hypothesis deadlines, not wall-clock asserts: an example over its deadline is re-run before
# it fails, and the bounds are ~100x the typical time, so a loaded machine passes; quadratic backtracking fails.
BOUNDED = settings(deadline=timedelta(seconds=20), derandomize=True, database=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@BOUNDED
@given(st.sampled_from(LONG_GARBAGE))
def test_long_garbage_stays_fast(text):
    # guards against regular expressions that backtrack quadratically and per-marker rescans
    test_garbage_never_raises(text)


def test_exploding_expression_is_cut_off_by_timeout(monkeypatch):
    monkeypatch.setattr(grading, "VERIFY_TIMEOUT_S", 1)

    @BOUNDED
    @given(st.just(r"9^{9^{9^{9}}}"))
    def check(expression):
        assert not answers_equivalent(expression, "5")

    check()


# Adversarial pieces: answer markers, LaTeX, unbalanced braces, numbers in every notation, option letters.
PIECES = ["\\boxed{", "}", "{", "####", "Answer:", "The answer is", "$", "\\frac", "\\sqrt", "^", "(", ")", "-",
          ".", ",", "/", "9", "0", "1e308", "½", "∞", "ки", "\n", " ", "A", "(B)", "Q:", "\\", "%", "×", "\x00"]
ADVERSARIAL = st.one_of(st.text(max_size=200), st.lists(st.sampled_from(PIECES), max_size=60).map("".join))
FUZZ = settings(BOUNDED, max_examples=10_000, deadline=timedelta(seconds=5))


@pytest.mark.fuzz
@FUZZ
@given(ADVERSARIAL)
def test_fuzz_extraction_never_raises(text):
    for mode in grading.MODES:
        for kind in grading.KINDS:
            answer = extract_answer(text, mode=mode, kind=kind)
            assert answer is None or isinstance(answer, str)
    reference_answer(text)


@pytest.mark.fuzz
@FUZZ
@given(ADVERSARIAL, st.sampled_from(["5", "-3.5", "1/2", "\\frac{1}{2}", "B", "1,000"]))
def test_fuzz_grading_never_raises(text, reference):
    graded = grade_record({"response": text, "reference": reference})
    assert isinstance(graded["correct"], bool)
    assert isinstance(answers_equivalent(text, reference), bool)


def test_equivalence_off_the_main_thread():
    # math_verify's signal-based timeout only works on the main thread; elsewhere we must neither raise
    # nor try anything that could run for ever.
    results = {}

    def work():
        results["symbolic"] = answers_equivalent(r"\sqrt{2}/2", r"\frac{\sqrt{2}}{2}")
        results["explosive"] = answers_equivalent(r"9^{9^{9^{9}}}", "5")
        results["numeric"] = answers_equivalent("$18", "18.00")

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=30)
    assert results == {"symbolic": True, "explosive": False, "numeric": True}


# ---------------------------------------------------------------------------------------------- records


def test_grade_record_adds_fields_and_keeps_the_rest():
    record = {"id": "q-1", "sample": 3, "completion": " $1,200.00\nQ: next", "answer": "1200"}
    graded = grade_record(record)
    assert graded == {**record, "reference": "1200", "extracted": "1200", "correct": True}
    assert "extracted" not in record  # a copy, not the same dict


def test_grade_record_prefers_response_and_reference():
    record = {"response": "The answer is 7.", "completion": " 8", "reference": "7", "answer": "8"}
    assert grade_record(record)["correct"] is True
    assert grade_record(record)["extracted"] == "7"


def test_grade_record_canonicalises_a_gsm8k_solution_reference(gsm8k_rows):
    graded = grade_record({"completion": " 70000", "answer": gsm8k_rows[2]["answer"]})
    assert (graded["reference"], graded["extracted"], graded["correct"]) == ("70000", "70000", True)


def test_grade_record_strict_versus_flexible():
    record = {"completion": "She has 3 and gets 4, so 7", "reference": "7"}
    assert grade_record(record, mode="strict")["extracted"] is None
    assert grade_record(record, mode="strict")["correct"] is False
    assert grade_record(record, mode="flexible")["correct"] is True


def test_grade_record_multiple_choice():
    assert grade_record({"completion": " (C)", "reference": "C"})["correct"] is True
    # a number is no option letter, even though a choice reference exists
    graded = grade_record({"completion": "The answer is 3", "reference": "C"})
    assert (graded["extracted"], graded["correct"]) == (None, False)


def test_grade_record_non_numeric_reference_compares_text():
    assert grade_record({"completion": " Paris.\nQ: capital of Spain?", "reference": "Paris"})["correct"] is True
    assert grade_record({"completion": "The answer is Rome.", "reference": "Paris"})["correct"] is False
    assert grade_record({"completion": "The answer is $x + 1$.", "reference": "1+x"})["correct"] is True


@pytest.mark.parametrize("text", ["", None, "no idea", "   \n  "])
def test_grade_record_unparseable_response(text):
    graded = grade_record({"completion": text, "reference": "18"})
    assert (graded["extracted"], graded["correct"]) == (None, False)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"id": "q-7", "reference": "1"}, r"record 'q-7' has neither 'response' nor 'completion'"),
        ({"completion": "1"}, r"neither 'reference' nor 'answer'"),
        ({"completion": 12, "reference": "12"}, r"'completion' must be a string"),
        ({"completion": "12", "reference": None}, r"'reference' must be a string or a number"),
        ({"completion": "12", "answer": ["12"]}, r"'answer' must be a string or a number"),
    ],
)
def test_grade_record_rejects_malformed_records(record, message):
    with pytest.raises(ValueError, match=message):
        grade_record(record)


def test_grade_record_and_mode_check():
    graded = [grade_record(r) for r in ({"completion": " 1", "reference": "1"}, {"completion": " 2", "reference": "1"})]
    assert [r["correct"] for r in graded] == [True, False]
    with pytest.raises(ValueError, match="mode"):
        grade_record({"completion": "1", "reference": "1"}, mode="loose")


# ---------------------------------------------------------------------------------------------- GSM8K


@pytest.mark.parametrize(("index", "expected"), [(0, "18"), (2, "70000"), (489, "-10"), (611, "1450000"),
                                                 (1113, "-3")])
def test_real_gsm8k_solutions(gsm8k_rows, index, expected):
    solution = gsm8k_rows[index]["answer"]
    assert reference_answer(solution) == expected
    assert extract_answer(solution, mode="strict") == expected
    # without its "####" line a strict reader finds nothing; a flexible one reads the last number
    body = solution.rsplit("####", 1)[0]
    assert extract_answer(body, mode="strict") is None
    assert extract_answer(body, mode="flexible") == expected


def test_every_gsm8k_gold_solution(gsm8k_rows):
    assert len(gsm8k_rows) == 1319
    for number, row in enumerate(gsm8k_rows, start=1):
        solution = row["answer"]
        after_marker = solution.rsplit("####", 1)[1].strip().replace(",", "")
        assert reference_answer(solution) == after_marker, f"row {number}"
        graded = grade_record({"response": solution, "answer": solution})
        assert graded["correct"], f"row {number}: {graded['extracted']!r} vs {graded['reference']!r}"


# The same GSM8K gold answer in the three forms references come in: OpenAI's example model solutions
# (and this project's few-shot answers) end in a line "A: N", the dataset's own in "#### N", or a bare N.
SOLUTION_BODY = ("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
                 "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.")
REFERENCE_FORMS = [SOLUTION_BODY + "\nA: 72", SOLUTION_BODY + "\n#### 72", "72", 72]
GRADED_RESPONSES = [
    ("She sold 24 in May, so 48 + 24 = 72 in all.\nThe answer is 72.", True),
    (" 72\nQ: next question", True),
    ("48 + 24 = 72.\nA: 72", True),
    ("48 / 2 = 24.\nA: 24", False),
    ("The answer is 24.", False),
    ("I do not know.", False),
]


@pytest.mark.parametrize("mode", ["strict", "flexible"])
def test_reference_forms_grade_responses_alike(mode):
    verdicts = [[grade_record({"response": response, "reference": reference}, mode)["correct"]
                 for response, _ in GRADED_RESPONSES] for reference in REFERENCE_FORMS]
    assert all(v == verdicts[-1] for v in verdicts), verdicts
    if mode == "flexible":
        assert verdicts[-1] == [expected for _, expected in GRADED_RESPONSES]


def test_every_gsm8k_solution_as_a_line_a_answer(gsm8k_rows):
    for number, row in enumerate(gsm8k_rows, start=1):
        body, final = row["answer"].rsplit("####", 1)
        assert reference_answer(f"{body.rstrip()}\nA: {final.strip()}") == reference_answer(row["answer"]), \
            f"row {number}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("It costs 90,000 in total.\nA: 90,000", "90000"),
        ("She has 3 apples and buys 4 more, so 7 apples.", "7"),  # no marker: the last number
        ("Step 1.\nA: She ends with 12 apples.", "12"),  # "A:" without a bare answer: the last number
        ("The capital of France is Paris.", "The capital of France is Paris."),  # no number: kept as text
        (r"\frac{\sqrt{3}}{2}", r"\frac{\sqrt{3}}{2}"),  # an expression, not prose: kept for math_verify
    ],
)
def test_free_text_reference(text, expected):
    assert reference_answer(text) == expected


@pytest.mark.parametrize(
    ("text", "mode", "kind", "expected"),
    [
        ("48 + 24 = 72\nA: 72", "strict", "numeric", "72"),
        ("  A: $1,200.", "strict", "auto", "1200"),
        ("A: Let's think step by step. 5 + 2 = 7", "strict", "numeric", None),  # no bare answer after it
        ("a: 7", "strict", "numeric", None),  # upper-case "A:" only
        ("So it is 5.\nA: (C)", "strict", "choice", "C"),
        ("A: 12\nB: 15", "strict", "choice", None),  # an option list is no answer to a choice question
    ],
)
def test_line_a_marker(text, mode, kind, expected):
    assert extract_answer(text, mode=mode, kind=kind) == expected


# ---------------------------------------------------------------------------------------------- files, CLI


def test_answer_text_is_read_as_seed000_does():
    from infscale.grading import first_integer, grade_record

    assert first_integer(" 1,200.5 dollars") == "1200"
    assert first_integer(" -7, so 3") == "7"          # no sign: base.py's extract_first_integer reads \d+
    assert first_integer(" nothing") is None
    # with an answer phase the answer is the first integer after the suffix, not the reasoning's last number
    record = {"id": "q", "completion": "So the answer is 5.", "answer_text": " 18.\nQ: 4", "reference": "18"}
    graded = grade_record(record)
    assert (graded["extracted"], graded["correct"]) == ("18", True)
    assert grade_record({**record, "answer_text": " unknown"})["extracted"] is None
    assert grade_record({k: v for k, v in record.items() if k != "answer_text"})["extracted"] == "5"
