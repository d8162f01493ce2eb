"""The README's production section, followed as an operator would on a fresh machine.

A copy of the checkout (its tracked files, as a clone has them) gets a new virtualenv and every
command of the README's production block, run as written: install, migrate, collectstatic,
`check --deploy`, createsuperuser, then gunicorn with the shipped config and DEBUG off, a
worker and beat, behind nginx configured with the README's server block (TLS with a
throw-away certificate). Then, through nginx: the admin and its static files load, the
editor's live preview works in Chromium, a Logto POST is delivered to a local server speaking
Postmark's API, and beat sweeps. Values the README leaves as `...` are the test's; the names
of the variables are the README's.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.helpers import AUTHORIZATION, load_payload, png, require_postgres, require_program
from tests.processes import Process, free_port, running, service_env, wait_for
from tests.stubs import ProviderStub

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.integration


def readme_production() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("\n## Production\n", 1)[1].split("\n## ", 1)[0]


def fenced_blocks(section: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.S)


def readme_commands() -> tuple[list[str], list[str]]:
    """The production block's variable names (its `export`) and its other commands, with
    shell comments and line continuations resolved."""
    [block] = fenced_blocks(readme_production(), "sh")
    lines = block.replace("\\\n", " ").splitlines()
    names, commands = [], []
    for line in lines:
        words = shlex.split(line, comments=True)
        if not words:
            continue
        if words[0] == "export":
            names += [word.split("=", 1)[0] for word in words[1:]]
        else:
            commands.append(" ".join(w if w == "&&" else shlex.quote(w) for w in words))
    return names, commands


def test_the_readme_block_is_what_the_smoke_test_runs():
    names, commands = readme_commands()
    assert {"DJANGO_SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL"} <= set(names)
    programs = [shlex.split(command)[0] for command in commands]
    assert programs[0] == "git"  # clone: the test copies the checkout instead
    assert ".venv/bin/gunicorn" in programs and programs.count(".venv/bin/celery") == 2
    [nginx] = fenced_blocks(readme_production(), "nginx")
    assert "proxy_pass http://127.0.0.1:8000;" in nginx


def _copy_checkout(target: Path) -> None:
    """The files a commit would hold, as they are now (a clone, in CI)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def _certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


def _nginx(folder: Path, *, port: int, upstream: int, cert: Path, key: Path) -> Process:
    """nginx running the README's server block, on test ports and with a test certificate."""
    [server] = fenced_blocks(readme_production(), "nginx")
    server = server.replace("listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;")
    server = server.replace("127.0.0.1:8000", f"127.0.0.1:{upstream}")
    server = re.sub(r"ssl_certificate\s+\S+;", f"ssl_certificate {cert};", server)
    server = re.sub(r"ssl_certificate_key\s+\S+;", f"ssl_certificate_key {key};", server)
    temp = folder / "nginx-temp"
    temp.mkdir(mode=0o777)
    temp.chmod(0o777)
    config = folder / "nginx.conf"
    config.write_text(
        f"""worker_processes 1;
pid {folder}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
{server}
}}
"""
    )
    nginx = Process(
        "nginx",
        [
            shutil.which("nginx") or "/usr/sbin/nginx",
            "-p",
            str(folder),
            "-c",
            str(config),
            "-g",
            "daemon off;",
        ],
        {},
    )
    wait_for(lambda: _listens(port) or not nginx.alive(), timeout=10, what="nginx to listen")
    assert nginx.alive(), nginx.output()
    return nginx


def _listens(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Client:
    """HTTPS through nginx, trusting the test's certificate only."""

    def __init__(self, base: str, cert: Path):
        self.base = base
        self.context = ssl.create_default_context(cafile=str(cert))

    def request(self, path: str, *, data: bytes | None = None, headers: dict | None = None):
        request = urllib.request.Request(self.base + path, data=data, headers=headers or {})
        try:
            response = urllib.request.urlopen(request, context=self.context, timeout=30)
        except urllib.error.HTTPError as error:
            response = error
        with response:
            return response.status, response.headers, response.read()


@pytest.fixture
def database():
    """A new, empty database that the README's `migrate` fills; dropped afterwards."""
    require_postgres()
    import psycopg
    from django.conf import settings

    name = f"mailroom_smoke_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin_url = settings.TEST_DATABASE_URL.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    url = settings.TEST_DATABASE_URL.rsplit("/", 1)[0] + "/" + name
    yield url
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_the_readme_production_section_word_for_word(tmp_path, database, browser):
    require_program("nginx")
    require_program("openssl")
    names, commands = readme_commands()
    checkout = tmp_path / "mailroom"
    _copy_checkout(checkout)
    cert, key = _certificate(tmp_path)
    web_port, proxy_port = free_port(), free_port()
    origin = f"https://localhost:{proxy_port}"
    postmark = ProviderStub().start()
    values = {
        "DJANGO_SECRET_KEY": "smoke-" + uuid.uuid4().hex * 2,
        "DJANGO_ALLOWED_HOSTS": "localhost",
        "DJANGO_CSRF_TRUSTED_ORIGINS": origin,
        "DJANGO_SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto",
        "DATABASE_URL": database,
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
        "LOGTO_AUTHORIZATION": AUTHORIZATION,
        "EMAIL_PROVIDER": "postmark",
        "ANYMAIL_POSTMARK_SERVER_TOKEN": "smoke-token",
        "ANYMAIL_WEBHOOK_SECRET": "hooks:" + uuid.uuid4().hex,
        "DEFAULT_FROM_EMAIL": "Acme <no-reply@acme.example>",
        "EMAILS_PUBLIC_URL": origin,
        "DJANGO_MEDIA_ROOT": str(tmp_path / "media"),
    }
    missing = set(names) - set(values)
    assert not missing, f"the README exports variables this test does not set: {missing}"
    env = service_env(
        **{name: values[name] for name in names},
        # Only what a test machine needs besides: ports, the local Postmark, a private queue,
        # and sweeps every 2 s so that beat is seen to work within the test. Beat keeps its
        # schedule where it would on a fresh machine: its default, in this test's temp dir.
        MAILROOM_BIND=f"127.0.0.1:{web_port}",
        ANYMAIL_POSTMARK_API_URL=postmark.url,
        EMAILS_SWEEP_INTERVAL="2",
        TMPDIR=str(tmp_path),
        DJANGO_SUPERUSER_USERNAME="operator",
        DJANGO_SUPERUSER_EMAIL="operator@acme.example",
        DJANGO_SUPERUSER_PASSWORD="smoke-" + uuid.uuid4().hex,
    )
    # Nothing of the other tests' process settings: production's defaults, as the README's.
    for name in ("DJANGO_SETTINGS_MODULE", "DATABASE_CONN_MAX_AGE", "DJANGO_SECURE_SSL_REDIRECT"):
        env.pop(name, None)
    env.pop("DJANGO_STATIC_ROOT")
    env.pop("VIRTUAL_ENV", None)
    env["PATH"] = os.pathsep.join(
        part for part in env["PATH"].split(os.pathsep) if not part.startswith(sys.prefix)
    )

    services = []
    try:
        for command in commands:
            words = shlex.split(command)
            if words[0] == "git":
                continue  # the copy above is the clone
            if words[-1] == "createsuperuser":
                words.append("--no-input")  # the README's prompt, answered by the env
            if words[0].endswith(("gunicorn", "celery")):
                services.append(
                    Process(Path(words[0]).name + "-" + words[-3], words, env, cwd=checkout)
                )
                continue
            result = subprocess.run(
                command if "&&" in command else words,
                shell="&&" in command,
                cwd=checkout,
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
            )
            assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr}"
            if words[-1] == "--deploy":
                assert "System check identified no issues" in result.stdout, result.stderr
                assert "WARNINGS" not in result.stderr, result.stderr
        wait_for(lambda: _listens(web_port), timeout=60, what="gunicorn to listen")
        nginx = _nginx(tmp_path, port=proxy_port, upstream=web_port, cert=cert, key=key)
        services.append(nginx)
        with running(*services):
            _walk_through(Client(origin, cert), origin, env, postmark, database, checkout, browser)
    finally:
        postmark.stop()
        for service in services:
            service.stop()


def _walk_through(client, origin: str, env, postmark: ProviderStub, database, checkout, browser):
    # The admin, over HTTPS with HSTS, and its static files from WhiteNoise: hashed names,
    # cached for a year, compressed.
    status, headers, body = client.request("/admin/login/")
    assert status == 200, body[:500]
    assert headers["Content-Type"].startswith("text/html")
    assert headers["Strict-Transport-Security"].startswith("max-age=31536000")
    page = body.decode()
    # collectstatic's manifest names the editor's script (hashed, as the change page links it)
    manifest = json.loads((checkout / "staticfiles" / "staticfiles.json").read_text())
    editor_js = "/static/" + manifest["paths"]["emails/editor.js"]
    assert re.fullmatch(r"/static/emails/editor\.[0-9a-f]{12}\.js", editor_js)
    for path in [*re.findall(r'href="(/static/[^"]+\.css)"', page), editor_js]:
        status, headers, _ = client.request(path, headers={"Accept-Encoding": "br, gzip"})
        assert status == 200, path
        assert headers["Content-Type"].startswith(("text/css", "text/javascript")), path
        assert (
            "max-age=315360000" in headers["Cache-Control"]
            and "immutable" in headers["Cache-Control"]
        ), headers["Cache-Control"]
        assert headers["Content-Encoding"] == "br", path

    # A Logto POST through the proxy is accepted at once and delivered by the worker.
    body = json.dumps(load_payload("sign-in-fr.json")).encode()
    status, _, answer = client.request(
        "/api/logto/email",
        data=body,
        headers={"Content-Type": "application/json", "Authorization": AUTHORIZATION},
    )
    assert status == 200, answer
    assert json.loads(answer)["status"] == "queued"
    wait_for(lambda: postmark.requests, timeout=60, what="the email to reach Postmark")
    assert postmark.requests[0].headers["X-Postmark-Server-Token"] == "smoke-token"

    # Beat runs the sweeper (which the message log would otherwise warn about).
    import psycopg

    def swept():
        with psycopg.connect(database) as connection:
            return connection.execute(
                "SELECT 1 FROM emails_heartbeat WHERE name = 'sweeper'"
            ).fetchone()

    wait_for(swept, timeout=60, what="beat to run the sweeper")
    assert list((checkout.parent / f"mailroom-{os.getuid()}").glob("celerybeat-schedule*"))

    # The editor's live preview in Chromium, against this server.
    from playwright.sync_api import expect

    context = browser.new_context(ignore_https_errors=True)  # the test's own certificate
    try:
        page = context.new_page()
        page.set_default_timeout(20000)
        page.goto(f"{origin}/admin/login/")
        page.fill("#id_username", env["DJANGO_SUPERUSER_USERNAME"])
        page.fill("#id_password", env["DJANGO_SUPERUSER_PASSWORD"])
        page.click("input[type=submit]")
        page.wait_for_url(re.compile(r".*/admin/$"))
        page.goto(f"{origin}/admin/emails/message/")
        expect(page.locator("#result_list")).to_contain_text("jane")
        expect(page.locator(".messagelist")).to_have_count(0)  # no "sweeper" warning
        with psycopg.connect(database) as connection:
            [template_id] = connection.execute(
                "SELECT id FROM emails_template WHERE usage_type = 'SignIn' AND locale = 'en'"
            ).fetchone()  # the shipped default, installed by migrate
        page.goto(f"{origin}/admin/emails/template/{template_id}/change/")
        expect(page.locator("#mailroom-subject")).not_to_be_empty()
        page.fill("#id_subject", "Smoke {{ code }} through nginx")
        expect(page.locator("#mailroom-subject")).to_have_text(re.compile(r"^Smoke \d+ through"))
        frame = page.frame_locator("#mailroom-frame")
        page.locator(".CodeMirror[data-field=html_body]").click()
        page.keyboard.press("Control+End")
        page.keyboard.type("\n<p>Typed behind the proxy</p>")
        expect(frame.locator("body")).to_contain_text("Typed behind the proxy")

        # Brand settings: a logo uploaded in the admin is stored in DJANGO_MEDIA_ROOT, served
        # at /brand/ through the proxy, and the worker's next email points at it.
        logo = Path(env["DJANGO_MEDIA_ROOT"]).parent / "logo.png"
        logo.write_bytes(png())
        page.goto(f"{origin}/admin/emails/brand/")
        page.fill("#id_product_name", "Acme Smoke")
        page.set_input_files("#id_logo", str(logo))
        page.click("input[name=_save]")
        expect(page.locator(".messagelist")).to_contain_text("Brand settings saved")
        [stored] = (Path(env["DJANGO_MEDIA_ROOT"]) / "brand").glob("logo-*.png")
        status, headers, served = client.request(f"/brand/{stored.name}")
        assert (status, headers["Content-Type"], served) == (200, "image/png", logo.read_bytes())
        assert headers["X-Content-Type-Options"] == "nosniff"
    finally:
        context.close()
    payload = load_payload("sign-in-fr.json")
    payload["payload"]["code"] = "777888"
    del payload["payload"]["application"]["branding"]  # Logto's own logo would come first
    status, _, answer = client.request(
        "/api/logto/email",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "Authorization": AUTHORIZATION},
    )
    assert status == 200, answer
    wait_for(lambda: len(postmark.requests) >= 2, timeout=60, what="the second email")
    html = postmark.requests[1].json()["HtmlBody"]
    assert f'src="{origin}/brand/{stored.name}"' in html
