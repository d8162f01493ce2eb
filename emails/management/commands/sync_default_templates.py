from django.core.management.base import BaseCommand

from emails.content.defaults import sync_defaults
from emails.models import Layout, Template


class Command(BaseCommand):
    help = (
        "Create missing default templates and update unedited ones from fixtures/defaults/. "
        "Templates edited in the admin are kept unless --force."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--force", action="store_true", help="Overwrite edited templates with the defaults too."
        )

    def handle(self, *args, force=False, **options):
        report = sync_defaults(Template, Layout, force=force)
        self.stdout.write(
            f"created {report.created}, updated {report.updated}, unchanged {report.unchanged}, "
            f"kept (edited) {report.kept_edited}"
        )
