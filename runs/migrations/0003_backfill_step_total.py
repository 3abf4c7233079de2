from django.db import migrations


def backfill(apps, schema_editor):
    # Runs created before step_total existed: the runs list reads it instead of each program.
    Run = apps.get_model("runs", "Run")
    pending = Run.objects.filter(step_total=0).only("pk", "program")
    batch = []
    for run in pending.iterator(chunk_size=500):
        run.step_total = len(run.program or [])
        batch.append(run)
        if len(batch) >= 500:
            Run.objects.bulk_update(batch, ["step_total"])
            batch = []
    if batch:
        Run.objects.bulk_update(batch, ["step_total"])


class Migration(migrations.Migration):
    dependencies = [("runs", "0002_run_step_total")]
    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
