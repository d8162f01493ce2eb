from django.db import migrations


def load_defaults(apps, schema_editor):
    from django.utils import timezone

    from emails.content.defaults import sync_defaults

    Template = apps.get_model("emails", "Template")
    Layout = apps.get_model("emails", "Layout")
    sync_defaults(Template, Layout)
    # Version 1 of each, so history (and revert) starts from the shipped content.
    now = timezone.now()
    for model, historical in ((Template, "HistoricalTemplate"), (Layout, "HistoricalLayout")):
        History = apps.get_model("emails", historical)
        fields = [f.attname for f in model._meta.fields if f.attname != "updated_at"]
        History.objects.bulk_create(
            History(
                **{name: getattr(row, name) for name in fields},
                history_date=now,
                history_type="+",
                history_change_reason="shipped default",
            )
            for row in model.objects.all()
        )


class Migration(migrations.Migration):
    """A fresh database starts with the shipped layout and default templates."""

    dependencies = [("emails", "0001_initial")]

    operations = [migrations.RunPython(load_defaults, migrations.RunPython.noop)]
