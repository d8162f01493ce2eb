import factory

from emails.logto import UsageType
from emails.models import Message, Template


class TemplateFactory(factory.django.DjangoModelFactory):
    """The template for (usage_type, locale, application_id, organization_id) becomes exactly
    this one, replacing a starter template of the same pair if the database has it."""

    class Meta:
        model = Template

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        key = {name: kwargs.pop(name) for name in ("usage_type", "locale")}
        for name in ("application_id", "organization_id"):
            key[name] = kwargs.pop(name, "")
        template, _ = model_class.objects.update_or_create(**key, defaults=kwargs)
        return template

    usage_type = UsageType.SIGN_IN
    locale = "en"
    subject = factory.LazyAttribute(lambda t: f"[{t.locale}] {t.usage_type} code {{{{ code }}}}")
    html_body = factory.LazyAttribute(
        lambda t: f"<p lang='{t.locale}'>{t.usage_type}: <b>{{{{ code }}}}</b> {{{{ link }}}}</p>"
    )
    text_body = factory.LazyAttribute(
        lambda t: f"[{t.locale}] {t.usage_type}: {{{{ code }}}} {{{{ link }}}}"
    )
    enabled = True


class MessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Message

    to = factory.Sequence(lambda n: f"user{n}@example.com")
    usage_type = UsageType.SIGN_IN
    payload = factory.LazyFunction(lambda: {"code": "123456", "locale": "en"})
    template = factory.SubFactory(TemplateFactory)
    template_usage_type = factory.SelfAttribute("template.usage_type")
    template_locale = factory.SelfAttribute("template.locale")
    requested_locale = "en"
