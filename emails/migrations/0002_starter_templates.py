from django.db import migrations


def load_defaults(apps, schema_editor):
    from emails.defaults import sync_defaults

    sync_defaults(apps.get_model("emails", "Template"), apps.get_model("emails", "Layout"))


class Migration(migrations.Migration):
    """A fresh database starts with the shipped layout and default templates."""

    dependencies = [("emails", "0001_initial")]

    operations = [migrations.RunPython(load_defaults, migrations.RunPython.noop)]
