"""``{% decision_card item as card %}``: what a pause's card says (approvals.cards)."""

from __future__ import annotations

from typing import Any

from django import template

from approvals.cards import Card, card_for

register = template.Library()


@register.simple_tag
def decision_card(item: Any) -> Card:
    return card_for(item)
