"""An index for which tenant a free slot served least recently (runs.admission)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("runs", "0012_run_search_trigram")]

    operations = [
        migrations.AddIndex(
            model_name="run",
            index=models.Index(fields=["tenant", "-started_at"], name="run_tenant_started"),
        ),
    ]
