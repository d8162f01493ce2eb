from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from emails.content.transfer import ImportFormatError, import_templates, read_source


class Command(BaseCommand):
    help = (
        "Import templates from a Logto SMTP connector config (with --locale), a Logto "
        "email-templates API list, or a Mailroom export (directory, mailroom.json or zip). "
        "Paths named in mailroom.json must stay inside the export's folder."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path)
        parser.add_argument(
            "--format", default="auto", choices=["auto", "smtp", "logto", "mailroom"]
        )
        parser.add_argument("--locale", help="Language of a Logto SMTP config's templates.")
        parser.add_argument("--dry-run", action="store_true", help="Report, write nothing.")
        parser.add_argument(
            "--as-draft",
            action="store_true",
            help="Each template's content becomes its draft, to review and publish; emails "
            "keep using what is published (layouts are imported as they are).",
        )

    def handle(self, *args, path, format, locale, dry_run, as_draft, **options):
        try:
            layouts, items = read_source(path, fmt=format, locale=locale)
        except (ImportFormatError, OSError) as exc:  # OSError: e.g. the path is unreadable
            raise CommandError(str(exc)) from None
        report = import_templates(layouts, items, dry_run=dry_run, as_draft=as_draft)
        for outcome in report.outcomes:
            detail = f" — {outcome.detail}" if outcome.detail else ""
            self.stdout.write(f"{outcome.action:>9}  {outcome.kind} {outcome.key}{detail}")
        self.stdout.write(report.summary())
        if report.count("invalid"):
            raise CommandError(f"{report.count('invalid')} item(s) could not be imported")
