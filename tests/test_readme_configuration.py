"""README's configuration table lists exactly the environment variables the code reads, and
they are read in one place, project/settings.py, as the README says (and gunicorn's own
settings in project/gunicorn.conf.py, which the web process reads before Django starts)."""

import ast
import re
from pathlib import Path

from tests.readme import code_spans, readme_table

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ROOT / "project" / "settings.py"
GUNICORN_CONF = ROOT / "project" / "gunicorn.conf.py"
# anymail_settings_from_env(os.environ) turns each ANYMAIL_<NAME> into ANYMAIL["<NAME>"].
ANYMAIL_PATTERN = "ANYMAIL_<NAME>"


def documented_variables() -> set[str]:
    names = set()
    for row in readme_table("Configuration"):
        names.update(code_spans(row["variable"]))
    return names


def _is_os_environ(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "environ"
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
    )


def _first_string(call: ast.Call) -> str | None:
    if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
        return call.args[0].value
    return None


def variables_read_by(path: Path) -> set[str]:
    """Names read with django-environ's ``env.<cast>("NAME")``/``env("NAME")``,
    ``os.environ[...]``, ``os.environ.get(...)`` or ``os.getenv(...)``; ``ANYMAIL_<NAME>`` when
    the whole environment is handed to ``anymail_settings_from_env``."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Call):
            func = node.func
            is_env = (isinstance(func, ast.Name) and func.id == "env") or (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.value.id == "env"
            )
            is_os_get = (
                isinstance(func, ast.Attribute)
                and func.attr == "get"
                and _is_os_environ(func.value)
            ) or (
                isinstance(func, ast.Attribute)
                and func.attr == "getenv"
                and isinstance(func.value, ast.Name)
                and func.value.id == "os"
            )
            if (is_env or is_os_get) and (name := _first_string(node)):
                names.add(name)
            if (
                isinstance(func, ast.Name)
                and func.id == "anymail_settings_from_env"
                and any(_is_os_environ(arg) for arg in node.args)
            ):
                names.add(ANYMAIL_PATTERN)
        elif (
            isinstance(node, ast.Subscript)
            and _is_os_environ(node.value)
            and isinstance(node.slice, ast.Constant)
        ):
            names.add(node.slice.value)
    return names


def test_every_variable_settings_reads_is_in_the_configuration_table_and_back():
    read = variables_read_by(SETTINGS) | variables_read_by(GUNICORN_CONF)
    documented = documented_variables()
    assert len(read) > 30  # the parser found the reads (it is not reading nothing)
    undocumented = sorted(read - documented)
    unread = sorted(documented - read)
    assert not undocumented and not unread, (
        "README.md's configuration table and project/settings.py differ:\n"
        f"  read by settings.py, missing from the table: {', '.join(undocumented) or '-'}\n"
        f"  in the table, never read by settings.py: {', '.join(unread) or '-'}"
    )


def test_only_settings_reads_the_environment():
    """README: "Everything is read from the environment, once, in project/settings.py". Other
    modules of the app may only name the settings module (wsgi, celery) or be handed a mapping."""
    readers = {}
    for path in sorted([*(ROOT / "emails").rglob("*.py"), *(ROOT / "project").rglob("*.py")]):
        if path in (SETTINGS, GUNICORN_CONF):
            continue
        extra = variables_read_by(path) - {"DJANGO_SETTINGS_MODULE"}
        text = path.read_text()
        # (Setting a variable for a library, os.environ[NAME] = value, reads nothing.)
        reads_by_key = re.search(r"os\.environ\[[^\]]+\](?!\s*=[^=])", text)
        if extra or reads_by_key or "environ.Env(" in text:
            readers[str(path.relative_to(ROOT))] = sorted(extra)
    assert readers == {}, f"modules besides project/settings.py read the environment: {readers}"


def test_the_reader_finds_each_kind_of_read(tmp_path):
    source = tmp_path / "sample.py"
    source.write_text(
        "import os\n"
        "A = env.bool('ONE', default=False)\n"
        "B = env('TWO')\n"
        "C = os.environ['THREE']\n"
        "D = os.environ.get('FOUR')\n"
        "E = os.getenv('FIVE')\n"
        "F = anymail_settings_from_env(os.environ)\n"
        "G = other.get('NOT_ENV')\n"
    )
    assert variables_read_by(source) == {"ONE", "TWO", "THREE", "FOUR", "FIVE", ANYMAIL_PATTERN}
