from pathlib import Path

from django.core.management.base import BaseCommand

from emails.content.transfer import export_to_directory


class Command(BaseCommand):
    help = "Export every template and layout into DIRECTORY (mailroom.json + one file each)."

    def add_arguments(self, parser):
        parser.add_argument("directory", type=Path)

    def handle(self, *args, directory, **options):
        count = export_to_directory(directory)
        self.stdout.write(f"wrote {count} files to {directory}")
