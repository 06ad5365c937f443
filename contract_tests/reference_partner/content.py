"""What students work on: the app's quizzes (questions, answers, score formats).

Nothing here knows Clever. An assignment's ``listing()`` is what the assignments API
gives Clever (Clever's grade passback guide, Step 1); ``score_fields()`` is the score part
of a grade POST (Step 3).
A real app keeps this in its database; the defaults are a handful of 5th-grade quizzes.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable, Mapping


@dataclass(frozen=True)
class Question:
    """One question: multiple choice when ``choices`` is given, else a number to type."""

    prompt: str
    answer: str
    choices: tuple[str, ...] = ()

    def is_correct(self, given: str | None) -> bool:
        if given is None:
            return False
        given = given.strip()
        if self.choices:
            return given == self.answer
        try:  # numbers: "1.20" and "1.2" are the same answer
            return Decimal(given.replace(",", "")) == Decimal(self.answer)
        except (InvalidOperation, ValueError):
            return given.lower() == self.answer.lower()


@dataclass(frozen=True)
class Assignment:
    """An assignment as the app keeps it; ``listing()`` is what Clever sees.

    ``score_format`` is how this app reports the assignment's score: ``"percentage"``
    (0–1.0) or ``"points"`` (scoreGiven/scoreMaximum, ``points_each`` per question).
    """

    id: str
    name: str
    questions: tuple[Question, ...]
    description: str | None = None
    standards: tuple[str, ...] = ()
    score_format: str = "percentage"
    points_each: int = 1

    @property
    def max_points(self) -> int:
        return self.points_each * len(self.questions)

    def listing(self) -> dict:
        """Clever's assignment object: name, id, type, optional description and standards."""
        out: dict[str, Any] = {"name": self.name, "id": self.id, "type": "assignment"}
        if self.description:
            out["description"] = self.description
        if self.standards:
            out["standards"] = list(self.standards)
        return out

    def score_fields(self, fraction: Decimal) -> dict:
        """The score part of the grade POST, in this assignment's own format (Step 3)."""
        if self.score_format == "points":
            return {"scoreGiven": json_number(fraction * self.max_points),
                    "scoreMaximum": self.max_points}
        return {"percentage": json_number(fraction)}

    def score_text(self, fraction: Decimal) -> str:
        if self.score_format == "points":
            return f"{json_number(fraction * self.max_points)} / {self.max_points} points"
        return f"{json_number(round(fraction * 100, 1))}%"


def _mc(prompt: str, answer: str, *others: str) -> Question:
    choices = [answer, *others]
    rotate = len(prompt) % len(choices)  # a stable, not-always-first position for the answer
    return Question(prompt, answer, tuple(choices[rotate:] + choices[:rotate]))


DEFAULT_ASSIGNMENTS: tuple[Assignment, ...] = (
    Assignment(
        id="frac5nf1", name="Adding Fractions with Unlike Denominators",
        description="Find a common denominator, then add fractions such as 1/3 + 1/4.",
        standards=("CCSS.MATH.CONTENT.5.NF.A.1",), score_format="points", points_each=1,
        questions=(
            _mc("1/2 + 1/4 = ?", "3/4", "2/6", "2/4", "1/8"),
            _mc("1/3 + 1/6 = ?", "1/2", "2/9", "2/6", "1/9"),
            _mc("2/5 + 1/10 = ?", "1/2", "3/15", "3/10", "2/50"),
            _mc("3/4 + 1/8 = ?", "7/8", "4/12", "4/8", "1"),
            Question("What is the least common denominator of 1/6 and 3/8?", "24"),
        )),
    Assignment(
        id="dec5nbt7", name="Multiplying Decimals",
        description="Multiply decimals to hundredths using place value.",
        standards=("CCSS.MATH.CONTENT.5.NBT.B.7",), score_format="percentage",
        questions=(
            Question("0.4 × 3 = ?", "1.2"),
            Question("2.5 × 4 = ?", "10"),
            Question("0.3 × 0.2 = ?", "0.06"),
            Question("1.5 × 1.5 = ?", "2.25"),
            Question("0.07 × 10 = ?", "0.7"),
        )),
    Assignment(
        id="vol5md5", name="Volume of Rectangular Prisms",
        standards=("CCSS.MATH.CONTENT.5.MD.C.5.B",), score_format="points", points_each=2,
        questions=(
            Question("A prism is 2 units long, 3 units wide and 4 units tall. What is its volume "
                     "in cubic units?", "24"),
            Question("A box is 5 cm by 5 cm by 2 cm. What is its volume in cubic cm?", "50"),
            Question("A prism has a base area of 12 square units and a height of 5 units. What "
                     "is its volume in cubic units?", "60"),
            Question("How many 1-inch cubes fill a box that is 3 by 3 by 3 inches?", "27"),
            Question("A fish tank is 10 in long, 4 in wide and 6 in tall. What is its volume in "
                     "cubic inches?", "240"),
        )),
    Assignment(
        id="read5rl2", name="Finding the Theme of a Story",
        description="Read \u201cThe Tortoise and the Hare\u201d and identify its theme.",
        standards=("CCSS.ELA-LITERACY.RL.5.2",), score_format="percentage",
        questions=(
            _mc("What is the theme of a story?", "The lesson or message of the story",
                "The place where the story happens", "The main character's name",
                "The title of the story"),
            _mc("Why does the Hare lose the race?", "He takes a nap because he is overconfident",
                "The Tortoise tricks him", "He gets lost", "He hurts his leg"),
            _mc("Which sentence best states the theme?", "Slow and steady wins the race",
                "Hares are faster than tortoises", "Races are never fair",
                "Always rest before a race"),
            _mc("Which detail best supports the theme?",
                "The Tortoise keeps walking without stopping", "The Hare has long ears",
                "The race starts in the morning", "Many animals watch the race"),
            _mc("What could the Hare learn from the story?",
                "Being boastful can make you careless", "Tortoises like to race",
                "Naps are always a bad idea", "Winning does not matter"),
        )),
    Assignment(
        id="mult5fluency", name="Multiplication Facts Fluency Check",
        score_format="percentage",
        questions=(
            Question("7 × 8 = ?", "56"),
            Question("6 × 9 = ?", "54"),
            Question("12 × 4 = ?", "48"),
            Question("9 × 9 = ?", "81"),
            Question("8 × 6 = ?", "48"),
        )),
    Assignment(
        id="matter5ps1", name="States of Matter Quiz",
        description="Solids, liquids and gases, and how matter changes from one state to another.",
        score_format="points", points_each=4,
        questions=(
            _mc("Which state of matter has a definite shape?", "Solid", "Liquid", "Gas"),
            _mc("What happens to water when it freezes?", "It changes from a liquid to a solid",
                "It changes from a gas to a liquid", "It changes from a solid to a gas"),
            _mc("Steam is water in which state?", "Gas", "Solid", "Liquid"),
            _mc("When an ice cube melts, what happens to its mass?", "It stays the same",
                "It gets larger", "It gets smaller"),
            _mc("In which state are the particles farthest apart?", "Gas", "Liquid", "Solid"),
        )),
)

_GENERIC_QUESTIONS = (
    Question("2 + 3 = ?", "5"), Question("10 − 4 = ?", "6"), Question("3 × 4 = ?", "12"),
    Question("20 ÷ 5 = ?", "4"), Question("7 + 8 = ?", "15"),
)


def load_assignments(spec: Iterable[Any] | None) -> "OrderedDict[str, Assignment]":
    """The app's assignments: the defaults, or an ``ASSIGNMENTS`` override.

    An override item is an ``Assignment`` or a dict with ``id`` and ``name`` and optionally
    ``description``, ``standards``, ``format`` ("percentage"/"points"), ``points_each`` and
    ``questions`` (``[{"prompt", "answer", "choices"?}]``; five simple sums when absent).
    """
    items = DEFAULT_ASSIGNMENTS if spec is None else spec
    out: OrderedDict[str, Assignment] = OrderedDict()
    for i, item in enumerate(items):
        assignment = item if isinstance(item, Assignment) else _assignment_from_dict(item, i)
        if assignment.id in out:
            raise ValueError(f"ASSIGNMENTS[{i}]: duplicate id {assignment.id!r}")
        out[assignment.id] = assignment
    if not out:
        raise ValueError("ASSIGNMENTS must list at least one assignment")
    return out


def _assignment_from_dict(item: Any, i: int) -> Assignment:
    where = f"ASSIGNMENTS[{i}]"
    if not isinstance(item, Mapping):
        raise ValueError(f"{where} must be an object with id and name")
    for key in ("id", "name"):
        if not isinstance(item.get(key), str) or not item[key].strip():
            raise ValueError(f"{where}.{key} must be a non-empty string")
    fmt = item.get("format", "percentage")
    if fmt not in ("percentage", "points"):
        raise ValueError(f"{where}.format must be 'percentage' or 'points'")
    points_each = item.get("points_each", 1)
    if isinstance(points_each, bool) or not isinstance(points_each, int) or points_each < 1:
        raise ValueError(f"{where}.points_each must be a whole number ≥ 1")
    standards = item.get("standards") or ()
    if not isinstance(standards, (list, tuple)) or not all(isinstance(x, str) for x in standards):
        raise ValueError(f"{where}.standards must be a list of strings")
    if item.get("description") is not None and not isinstance(item["description"], str):
        raise ValueError(f"{where}.description must be a string")
    questions = []
    for j, q in enumerate(item.get("questions") or ()):
        if not isinstance(q, Mapping) or not isinstance(q.get("prompt"), str) \
                or not isinstance(q.get("answer"), (str, int, float)):
            raise ValueError(f"{where}.questions[{j}] needs a prompt (string) and an answer")
        choices = tuple(str(c) for c in q.get("choices") or ())
        if choices and str(q["answer"]) not in choices:
            raise ValueError(f"{where}.questions[{j}].answer must be one of its choices")
        questions.append(Question(q["prompt"], str(q["answer"]), choices))
    return Assignment(id=item["id"], name=item["name"],
                      questions=tuple(questions) or _GENERIC_QUESTIONS,
                      description=item.get("description"),
                      standards=tuple(standards), score_format=fmt,
                      points_each=points_each)


def json_number(value: Decimal) -> int | float:
    """A Decimal as the JSON number a partner would send: 4 not 4.0, 3.5 not '3.5'."""
    if value == value.to_integral_value():
        return int(value)
    return float(value)
