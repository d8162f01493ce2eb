"""Rendering speed, warm, in one process: Mailroom's default sign-in email (layout, CSS
inlining, text part) against the same content through django-post_office's own code path
(post_office.mail.create, which compiles and renders the three templates)."""

import json
import os
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings_post_office")

import django

django.setup()

from post_office import mail  # noqa: E402
from post_office.models import EmailTemplate  # noqa: E402

from emails.content.defaults import default_layout, default_templates  # noqa: E402
from emails.content.samples import samples_for  # noqa: E402
from emails.models import Layout  # noqa: E402

N = int(os.environ.get("BENCH_RENDER_N", "2000"))


def per_second(functions: dict, n=N, rounds=5) -> dict:
    """Emails per second of each function, measured in interleaved rounds so that a machine
    speeding up or slowing down during the run affects each alike."""
    for function in functions.values():
        for _ in range(50):  # warm: compiled-template caches, imports
            function()
    spent = dict.fromkeys(functions, 0.0)
    for _ in range(rounds):
        for name, function in functions.items():
            started = time.perf_counter()
            for _ in range(n // rounds):
                function()
            spent[name] += time.perf_counter() - started
    return {name: (n // rounds) * rounds / seconds for name, seconds in spent.items()}


def inlining_each_email(render):
    """The same render through the path that inlines the CSS of each rendered email (used
    when a layout and body cannot be inlined once, see
    emails.content.rendering.inlining.inlined_source)."""
    from emails.content.rendering import render as rendering

    def render_inlining_each():
        saved = rendering._render_prepared
        rendering._render_prepared = lambda *args: None
        try:
            return render()
        finally:
            rendering._render_prepared = saved

    return render_inlining_each


def main():
    shipped = next(
        f for f in default_templates() if (f["usage_type"], f["locale"]) == ("SignIn", "en")
    )
    layout_fields = default_layout()
    layout = Layout(name="Default", html=layout_fields["html"], text=layout_fields["text"])
    payload = samples_for("SignIn")["Branding and organization"]
    content = {
        "subject": shipped["subject"],
        "html": shipped["html_body"],
        "text": shipped["text_body"],
        "preheader": shipped["preheader"],
        "layout_id": None,
    }
    from emails.content import composer

    def mailroom():
        return composer.compose(
            subject=content["subject"],
            html=content["html"],
            text=content["text"],
            preheader=content["preheader"],
            layout=layout,
            payload=payload,
            locale="en",
        )

    # post_office has no layouts: give it the same email as one template (layout with the
    # body in place), and the same plain text; it does no CSS inlining.
    whole_html = layout.html.replace("{{ content }}", content["html"])
    template = EmailTemplate(
        name="sign-in", subject=content["subject"], content=content["text"], html_content=whole_html
    )
    context = {
        **payload,
        "brand": {"name": "Acme", "logo_url": "", "company_info": ""},
        "lang": "en",
        "direction": "ltr",
        "expires_in_minutes": 10,
    }

    def post_office():
        return mail.create(
            "Acme <no-reply@acme.example>",
            ["jane@example.com"],
            template=template,
            context=context,
            commit=False,
        )

    rendered = mailroom()
    assert "482913" in rendered.html and "482913" in post_office().html_message
    print(
        json.dumps(
            {
                **per_second(
                    {
                        "mailroom": mailroom,
                        "post_office": post_office,
                        "mailroom_inlining_each": inlining_each_email(mailroom),
                    }
                ),
                "html_bytes": len(rendered.html),
            }
        )
    )


if __name__ == "__main__":
    main()
