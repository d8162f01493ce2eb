"""The limit for end-to-end delivery: a plain loop that renders the same messages and sends
them straight through anymail's Postmark backend to the stub, in N processes. No database, no
queue: what a worker could do at best."""

import json
import os
import sys
import time
from multiprocessing import Pool

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")


def _send(args):
    start_index, count = args
    import django

    django.setup()
    from django.core.mail import EmailMultiAlternatives, get_connection

    from emails.content.composer import compose_content, template_content
    from emails.models import Template

    template = Template.objects.select_related("layout").get(usage_type="SignIn", locale="en")
    content = template_content(template)
    connection = get_connection()  # one connection per process, as Mailroom's worker keeps
    connection.open()
    started = time.monotonic()  # after start-up, as a running worker would be
    for index in range(start_index, start_index + count):
        rendered = compose_content(
            content, payload={"code": f"{index:06d}", "locale": "en"}, locale="en"
        )
        email = EmailMultiAlternatives(
            rendered.subject,
            rendered.text,
            "Acme <no-reply@acme.example>",
            [f"limit-{index}@example.com"],
        )
        email.attach_alternative(rendered.html, "text/html")
        email.connection = connection
        email.send()
    return count, started, time.monotonic()


def main(count: int, processes: int):
    share = count // processes
    with Pool(processes) as pool:
        results = pool.map(_send, [(i * share, share) for i in range(processes)])
    sent = sum(result[0] for result in results)
    elapsed = max(result[2] for result in results) - min(result[1] for result in results)
    print(json.dumps({"sent": sent, "seconds": elapsed, "per_second": sent / elapsed}))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
