from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.text import slugify

from tenants.models import Role
from tenants.services import tenant_create


class Command(BaseCommand):
    help = (
        "Create (or reuse) a tenant and a member (an approver by default); "
        "print a fresh API token as the last line."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--owner", required=True, help="username of the member (created if missing)")
        parser.add_argument("--password", help="set this password for the member")
        parser.add_argument(
            "--role",
            choices=[role.value for role in Role],
            default=Role.APPROVER,
            help="the member's role (default: approver; auditor: read-only, with the audit trail in /admin/)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        slug = options["slug"]
        if slugify(slug) != slug:
            raise CommandError(f"{slug!r} is not a valid slug: use lowercase letters, digits and hyphens.")
        if options["password"]:
            user_model = get_user_model()
            user = user_model.objects.filter(username=options["owner"]).first()
            try:
                validate_password(options["password"], user or user_model(username=options["owner"]))
            except ValidationError as exc:
                raise CommandError("The password is refused: " + " ".join(exc.messages)) from None
        tenant, user, raw = tenant_create(
            slug=slug, owner_username=options["owner"], password=options["password"], role=options["role"]
        )
        self.stderr.write(f"Tenant {tenant.slug}: {user.username} has the {options['role']} role.")
        self.stdout.write(raw)
