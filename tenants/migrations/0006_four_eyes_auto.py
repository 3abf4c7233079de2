"""Four eyes becomes a tri-state with "auto" the default (on with two or more approvers).

A tenant that had it on keeps it on; one that had it off had never chosen (off was the only
default), so it becomes "auto": four eyes for every tenant with at least two approvers.
"""

from django.db import migrations, models


def from_boolean(apps, schema_editor):
    Tenant = apps.get_model("tenants", "Tenant")
    Tenant.objects.filter(four_eyes=True).update(four_eyes_rule="on")


def to_boolean(apps, schema_editor):
    Tenant = apps.get_model("tenants", "Tenant")
    Tenant.objects.filter(four_eyes_rule="on").update(four_eyes=True)


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0005_approval_emails"),
    ]

    operations = [
        migrations.AddField(
            model_name="tenant",
            name="four_eyes_rule",
            field=models.CharField(
                choices=[("auto", "Automatic: on with two or more approvers"), ("on", "On"), ("off", "Off")],
                default="auto",
                max_length=8,
            ),
        ),
        migrations.RunPython(from_boolean, to_boolean),
        migrations.RemoveField(model_name="tenant", name="four_eyes"),
        migrations.RenameField(model_name="tenant", old_name="four_eyes_rule", new_name="four_eyes"),
        migrations.AlterField(
            model_name="tenant",
            name="four_eyes",
            field=models.CharField(
                choices=[("auto", "Automatic: on with two or more approvers"), ("on", "On"), ("off", "Off")],
                default="auto",
                help_text="Four eyes: an approver may not decide a pause of a run they started themselves. "
                "Automatic turns it on as soon as the tenant has at least two approvers.",
                max_length=8,
            ),
        ),
    ]
