from django.db import migrations


def create_starter_templates(apps, schema_editor):
    from emails.defaults import create_missing_defaults

    create_missing_defaults(apps.get_model("emails", "Template"))


class Migration(migrations.Migration):
    """A fresh database starts with the shipped default templates."""

    dependencies = [("emails", "0001_initial")]

    operations = [
        migrations.RunPython(create_starter_templates, migrations.RunPython.noop),
    ]
