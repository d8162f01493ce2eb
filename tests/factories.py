import factory

from emails.models import Message, Template, UsageType


class TemplateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Template

    usage_type = UsageType.SIGN_IN
    locale = "en"
    subject = factory.LazyAttribute(lambda t: f"[{t.locale}] {t.usage_type} code {{{{ code }}}}")
    html_body = factory.LazyAttribute(
        lambda t: f"<p lang='{t.locale}'>{t.usage_type}: <b>{{{{ code }}}}</b>"
        f" {{{{ link }}}}</p>"
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
