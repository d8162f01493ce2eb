"""Templates and layouts saved from the admin before line endings were normalised hold
"\r\n": give them "\n", as every save now does (emails.models.normalize_newlines). Only line
endings change; no version is recorded for it."""

from django.db import migrations

TEMPLATE_FIELDS = ("subject", "preheader", "html_body", "text_body")
LAYOUT_FIELDS = ("html", "text")


def _normalize(text):
    return text.replace("\r\n", "\n").replace("\r", "\n")


def forwards(apps, schema_editor):
    for model_name, fields in (("Template", TEMPLATE_FIELDS), ("Layout", LAYOUT_FIELDS)):
        model = apps.get_model("emails", model_name)
        for row in model.objects.only("pk", *fields).iterator():
            values = {name: _normalize(getattr(row, name)) for name in fields}
            if any(values[name] != getattr(row, name) for name in fields):
                model.objects.filter(pk=row.pk).update(**values)


class Migration(migrations.Migration):
    dependencies = [("emails", "0007_delivery_stats")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
