"""``{% decision_card item as card %}``: what a pause's card says (approvals.cards)."""

from __future__ import annotations

from typing import Any

from django import template

from approvals.cards import Card, card_for, with_card_steps

register = template.Library()


@register.simple_tag(takes_context=True)
def decision_card(context: template.Context, item: Any) -> Card:
    # In a list of cards (the inbox's ``items``) the first card reads the steps of all of them.
    items = context.get("items")
    if not hasattr(item, "card_steps") and isinstance(items, list) and item in items:
        with_card_steps(items)
    return card_for(item)
