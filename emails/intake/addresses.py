"""One mailbox, one spelling; one network, one key: what intake stores and counts.

Logto passes ``to`` and ``ip`` on as its end user typed or sent them. Many spellings reach
one mailbox (fullwidth letters, needless quotes, ``。`` for a dot, IDN U-labels and A-labels)
and many textual forms name one IPv6 address or one /64 network. Stored as sent, each would
get a rate limit of its own. Both are therefore brought to one canonical form once, at intake
(emails/api.py), and that form is what is stored, delivered to, deduplicated and counted.

Pure Python, no I/O, no DNS. Measured with timeit: about 25 us for an ordinary address
(Django's EmailValidator, which it replaces, took 6 us), 60-80 us with an IDN domain, 3-15 us
for an IP. Crafted 254-character domains full of non-ASCII letters cost up to about 1 ms in
the idna package; the length caps (254 per address, 63 per label) keep it there.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata

from email_validator import EmailNotValidError, validate_email

# An IPv6 end user is counted by the network a single site gets (RFC 6177: a /64 at least):
# its interface identifiers are free for the user to change, and privacy addresses rotate.
IPV6_PREFIX = 64

# Invisible characters that Unicode's category Cf does not cover: variation selectors, the
# combining grapheme joiner and the line/paragraph separators. Category Cf holds the rest:
# soft hyphen, zero-width space/joiners, word joiner, BOM, bidi marks, embeddings, overrides
# and isolates, the Arabic letter mark, tag characters.
_INVISIBLE = frozenset(
    [
        *(chr(code) for code in range(0xFE00, 0xFE10)),  # variation selectors 1-16
        *(chr(code) for code in range(0xE0100, 0xE01F0)),  # variation selectors 17-256
        *(chr(code) for code in range(0x180B, 0x1810)),  # Mongolian variation selectors
        "\u034f",  # combining grapheme joiner
        "\u2028",  # line separator
        "\u2029",  # paragraph separator
    ]
)


# What separates a domain's labels once NFKC has folded the fullwidth and halfwidth stops
# (U+FF0E, U+FF61) and the one dot leader: the full stop and the ideographic full stop.
_LABEL_SEPARATORS = re.compile("[.\u3002]")
_MAX_LABEL = 63


class AddressRefused(ValueError):
    """``to`` or ``ip`` is not acceptable; ``reason`` completes "'<field>' ..." for the API's
    400 answer, which Logto shows to its end user: short, no internals."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


NOT_ONE_ADDRESS = "must be one email address"
INVISIBLE_CHARACTERS = "must not contain invisible characters"
NOT_AN_IP = "must be an IP address"


def mailbox(address: str, *, max_length: int = 254) -> str:
    """The canonical spelling of one deliverable mailbox, or AddressRefused.

    ``address`` is one line of valid Unicode text (emails/api.py's ``_text`` has refused
    control characters and unpaired surrogates, and capped its length). The steps:

    1. Refuse invisible characters (category Cf, variation selectors, U+2028/U+2029). Delivery
       and IDNA drop most of them, so ``ja\\u00adne`` would be a second spelling of ``jane``,
       and bidi controls make one address display as another. NFKC neither removes nor
       makes any of them (checked over every code point), so one check before folding
       sees all there will be.
    2. NFKC of the whole address: compatibility forms become what they stand for, so
       fullwidth ``ｊａｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ`` is ``jane@example.com``. Folding comes before
       parsing, so structure spelt in compatibility forms (``＜``, ``＂``, ``，``, ``＝？``) is
       judged as the ASCII it folds to: a display name, quotes, a list, an encoded word.
       (NFKC subsumes the NFC that RFC 6532 asks for.)
    3. Refuse RFC 2047 encoded words (``=?charset?q?...?=``): a mail header decoder turns them
       into another address than the one counted.
    4. email-validator (no DNS): one bare addr-spec, no display name, no domain literal; an
       ASCII local part (as Django's EmailValidator required before: Django's SMTP backend
       cannot send to an SMTPUTF8 local part); the domain through UTS-46 (lower case, NFC,
       ``。`` and ``．`` as dots) and IDNA 2008; special-use and reserved domains refused
       (``localhost``, ``.invalid``, ``.test``, ``.local``, ``.onion``, ``.arpa``, a domain
       without a dot or whose TLD is not a name). ``example.com`` passes, as it should.
    5. Quoted local parts: unquoted when the unquoted form is the same mailbox, refused when
       the quotes are needed. RFC 5321 §4.1.2 makes every quoted form equivalent to the
       minimal one, so ``"jane"@example.com`` *is* ``jane@example.com`` and gets its rate
       limit (Django's validator accepted quoted local parts, so refusing would turn away
       requests that worked). A local part that needs quotes (a space, an ``@``) is refused:
       no real sign-up has one, and it invites every parser downstream to disagree.

    Returned: the local part as email-validator gives it (case kept: only the receiving
    server may fold it; RFC 2142 role names such as Postmaster are lower-cased), ``@``, the
    domain's IDNA ASCII form (A-labels, lower case). The ASCII domain, not the Unicode one,
    because it is what goes on the wire whatever the backend: Django's SMTP backend encodes a
    Unicode domain with Python's IDNA 2003 codec, which would send ``straße.de`` to
    ``strasse.de``, another domain than the one validated and counted. The whole result is
    ASCII, so Python's ``lower()`` (the dedup key) and PostgreSQL's ``lower()`` (the rate
    limit) agree on it whatever the database's collation.
    """
    if not address.isascii():
        if any(char in _INVISIBLE or unicodedata.category(char) == "Cf" for char in address):
            raise AddressRefused(INVISIBLE_CHARACTERS)
        address = unicodedata.normalize("NFKC", address)
        if len(address) > max_length:  # folding can lengthen (U+FDFA is 18 characters)
            raise AddressRefused(NOT_ONE_ADDRESS)
    if "=?" in address:
        raise AddressRefused(NOT_ONE_ADDRESS)
    if any(
        len(label) > _MAX_LABEL for label in _LABEL_SEPARATORS.split(address.rpartition("@")[2])
    ):
        # No DNS label is longer (an A-label has at least one character per code point of
        # its U-label), and IDNA's checks of one label take time quadratic in its length
        # (a run of 250 Arabic-Indic digits: 5 ms); refused before they run.
        raise AddressRefused(NOT_ONE_ADDRESS)
    try:
        valid = validate_email(
            address,
            allow_smtputf8=False,
            allow_empty_local=False,
            allow_quoted_local=True,  # step 5: quotes are judged below
            allow_domain_literal=False,
            allow_display_name=False,
            strict=False,
            check_deliverability=False,
            test_environment=False,
            globally_deliverable=True,
        )
    except EmailNotValidError:
        raise AddressRefused(NOT_ONE_ADDRESS) from None
    if valid.ascii_local_part is None or valid.ascii_local_part.startswith('"'):
        raise AddressRefused(NOT_ONE_ADDRESS)
    return f"{valid.ascii_local_part}@{valid.ascii_domain}"


def network(ip: str) -> str:
    """The rate-limit key of an end user's IP, or AddressRefused; this key is also what
    Message.ip stores.

    - IPv4: the address, canonical (``203.0.113.7``; no leading zeros, which ``ipaddress``
      refuses as ambiguous).
    - IPv4-mapped IPv6 (``::ffff:203.0.113.7``, what a dual-stack socket reports for an IPv4
      client): the IPv4 address, so it shares the IPv4 address's limit.
    - Other IPv6: the /64 network (``2001:db8:1:2::/64``), in compressed lower case. A /64
      is one site, whose hosts pick any of its 2**64 addresses; counting addresses would give
      every end user unlimited fresh limits. Any zone index (``%eth0``) is dropped.

    Storing the key rather than the address as sent keeps the limit a one-column equality
    (``ip = %s``, served by the partial index on non-empty ``ip``), makes every spelling of
    one network one value, and keeps no more of the end user's address than the limit needs
    (for IPv6, no interface identifier). At most 24 characters (``ffff:ffff:ffff:ffff::/64``):
    Message.ip holds 64.
    """
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        raise AddressRefused(NOT_AN_IP) from None
    if isinstance(address, ipaddress.IPv4Address):
        return str(address)
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    prefix = int(address) >> (128 - IPV6_PREFIX) << (128 - IPV6_PREFIX)
    return str(ipaddress.IPv6Network((prefix, IPV6_PREFIX)))
