from __future__ import annotations

from django.conf import settings
from django.db import models

from tenants.models import Tenant


class SecretKind(models.TextChoices):
    PASSWORD = "password", "Password"
    TOTP = "totp", "TOTP seed"
    TEXT = "text", "Text"


class SecretVersion(models.Model):
    """One version of a named secret; the value is only ever stored encrypted."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="secrets")
    name = models.CharField(max_length=100)
    version = models.PositiveIntegerField()
    kind = models.CharField(max_length=16, choices=SecretKind.choices, default=SecretKind.PASSWORD)
    ciphertext = models.TextField()
    origins = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name", "version"], name="one_secret_version"),
        ]
        ordering = ["tenant", "name", "-version"]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"
