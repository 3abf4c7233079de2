"""Ambiguity pauses: each matching element gets an option a person can tell apart from the others."""

from __future__ import annotations

from typing import Any

from engine.executor import _describe_candidates


def candidate(text: str, *context: str) -> dict[str, Any]:
    """What the page script reports for an element: its text, then its ancestors' texts, nearest first."""
    return {"text": text, "context": list(context)}


TABLE = "Invoice 2024-001 Delete Invoice 2024-002 Delete"


def test_repeated_texts_are_told_apart_by_the_row_they_sit_in():
    raw = [
        candidate("Delete", "Delete", "Invoice 2024-001 Delete", TABLE),
        candidate("Delete", "Delete", "Invoice 2024-002 Delete", TABLE),
    ]

    assert _describe_candidates(raw) == ["Delete — Invoice 2024-001", "Delete — Invoice 2024-002"]


def test_distinct_texts_are_used_as_they_are():
    raw = [candidate("Checking", "Checking Savings"), candidate("Savings", "Checking Savings")]

    assert _describe_candidates(raw) == ["Checking", "Savings"]


def test_only_the_repeated_texts_get_their_context():
    raw = [
        candidate("Edit", "Invoice 2024-001 Edit Delete"),
        candidate("Delete", "Invoice 2024-001 Edit Delete"),
        candidate("Delete", "Invoice 2024-002 Edit Delete"),
    ]

    assert _describe_candidates(raw) == [
        "Edit",
        "Delete — Invoice 2024-001 Edit",
        "Delete — Invoice 2024-002 Edit",
    ]


def test_the_nearest_distinguishing_ancestor_is_used():
    raw = [
        candidate("Pay", "Pay", "Card ending 4242 Pay", "Cards: Card ending 4242 Pay Card ending 1881 Pay"),
        candidate("Pay", "Pay", "Card ending 1881 Pay", "Cards: Card ending 4242 Pay Card ending 1881 Pay"),
    ]

    assert _describe_candidates(raw) == ["Pay — Card ending 4242", "Pay — Card ending 1881"]


def test_elements_nested_at_different_depths_are_still_told_apart():
    raw = [
        candidate("Delete", "Delete", "Invoice 2024-001 Delete", TABLE),
        candidate("Delete", "Delete"),
    ]

    labels = _describe_candidates(raw)

    assert labels[0] == "Delete — Invoice 2024-001"
    assert len(set(labels)) == 2


def test_identical_elements_fall_back_to_numbering():
    raw = [candidate("Delete", "Delete", "Delete Delete"), candidate("Delete", "Delete", "Delete Delete")]

    assert _describe_candidates(raw) == ["Delete (#1 of 2)", "Delete (#2 of 2)"]


def test_elements_without_ancestors_fall_back_to_numbering():
    raw = [candidate("OK"), candidate("OK"), candidate("OK")]

    assert _describe_candidates(raw) == ["OK (#1 of 3)", "OK (#2 of 3)", "OK (#3 of 3)"]


def test_an_ancestor_that_differs_only_around_the_repeated_text_is_passed_over():
    raw = [
        candidate("Delete", "— Delete —", "Row A Delete"),
        candidate("Delete", "| Delete |", "Row B Delete"),
    ]

    assert _describe_candidates(raw) == ["Delete — Row A", "Delete — Row B"]


def test_long_context_is_shortened_but_labels_stay_distinct():
    common = "Quarterly invoice for ACME Corporation covering consulting services, number "
    raw = [candidate("Delete", f"{common}001 Delete"), candidate("Delete", f"{common}002 Delete")]

    labels = _describe_candidates(raw)

    assert len(set(labels)) == 2
    assert all(label.startswith("Delete — Quarterly invoice for ACME") for label in labels)
    assert all(len(label) < 120 for label in labels)


def test_every_label_is_unique_among_many_mixed_candidates():
    raw = [
        candidate("Delete", "Invoice 2024-001 Delete"),
        candidate("Delete", "Invoice 2024-002 Delete"),
        candidate("Delete", "Invoice 2024-002 Delete"),
        candidate("Archive", "Invoice 2024-001 Archive"),
        candidate("Delete"),
    ]

    labels = _describe_candidates(raw)

    assert len(labels) == len(raw)
    assert len(set(labels)) == len(raw)
    assert labels[0] == "Delete — Invoice 2024-001"
    assert labels[3] == "Archive"
