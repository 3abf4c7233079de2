"""The dashboard's endpoint form: shapes and lengths here, the service's own rules after."""

from __future__ import annotations

from django import forms

from .models import EVENT_TYPES


class EndpointForm(forms.Form):
    url = forms.CharField(
        max_length=2048,
        error_messages={
            "required": "url is required",
            "max_length": "the URL is longer than 2048 characters",
        },
    )
    events = forms.MultipleChoiceField(choices=[(e, e) for e in EVENT_TYPES], required=False)
    description = forms.CharField(
        max_length=200,
        required=False,
        error_messages={"max_length": "keep the description under 200 characters"},
    )
