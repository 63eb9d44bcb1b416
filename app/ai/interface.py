"""The contract between classifiers and the rest of Vaultdesk.

A classifier is anything with a ``name`` and a ``classify`` method. It is handed the text
of a ticket and the labels that exist right now (the admin's categories, the priorities,
the teams) and returns a :class:`Suggestion` naming only labels from that set; anything
else is an error (:class:`ClassificationError`), never a half-valid suggestion. Keeping the
allowed labels an argument rather than something each classifier looks up means the
validation rule lives in one place and the embedded model can be evaluated on a CSV with
labels that are not in the database at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

TARGETS: tuple[str, ...] = ("category", "priority", "team")


class ClassificationError(RuntimeError):
    """A classifier could not give a valid suggestion (unreachable, malformed, unknown label)."""


@dataclass(frozen=True)
class Labels:
    """The labels a suggestion may name, per target (an empty tuple: target not offered)."""

    category: tuple[str, ...] = ()
    priority: tuple[str, ...] = ()
    team: tuple[str, ...] = ()

    def allowed(self, target: str) -> tuple[str, ...]:
        if target not in TARGETS:
            raise ValueError(f"unknown target {target!r}")
        return getattr(self, target)


@dataclass(frozen=True)
class Prediction:
    """One target's answer: the label and how sure the model is (0..1)."""

    label: str
    confidence: float


@dataclass(frozen=True)
class Suggestion:
    """What a classifier proposes for one ticket.

    ``predictions`` holds only the targets the classifier could answer (the embedded model
    may have been trained for category alone). ``model`` names the classifier and its
    version so the stream and audit can record which model saw the text.
    """

    model: str
    predictions: dict[str, Prediction] = field(default_factory=dict)
    reason: str = ""
    language: str | None = None


class Classifier(Protocol):
    """Implemented by the endpoint client and the embedded model alike."""

    name: str

    def classify(self, text: str, labels: Labels) -> Suggestion:
        """Suggest labels for ``text``; raise :class:`ClassificationError` when it cannot."""
        ...
