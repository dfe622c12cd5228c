"""Finding an order the way a dispatcher is asked for it: by the customer's name or phone number,
the street, the shop's reference, part of the order id (pure: the matching; the store reads).

The personal data is sealed at rest, so there is no index of it in Redis to look words up in:
the store reads the open orders and the newest ended ones, opens their personal data in memory
and keeps those that match (:meth:`server.orders.store.OrderStore.search`). Text is compared
case- and accent-blind ("aino" finds "Äinö"); every word of the query must begin a word of the
order's (or, digits, end its phone number: "korhonen 4321"). A query of
digits (spaces, ``+``, ``-``, brackets allowed) is a phone number: found in the customer's
phone written in any form ("040 123 4567" finds "+358 40 1234567": leading zeros, the trunk
prefix, are not compared), or else in the text.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

MIN_QUERY = 2  # characters, spaces aside
MIN_PHONE_DIGITS = 4
_PHONE = re.compile(r"^[\d\s+\-().]+$")
_WORD = re.compile(r"\w+")
_NOT_DIGIT = re.compile(r"\D+")


def folded(text: str) -> str:
    """``text`` compared case- and accent-blind, with runs of spaces as one.

    >>> folded("  Äinö   VIRTANEN ")
    'aino virtanen'
    """
    if text.isascii():  # (most text: five times faster)
        return " ".join(text.casefold().split())
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(bare.split())


def digits(text: str) -> str:
    return _NOT_DIGIT.sub("", text)


@dataclass(frozen=True, slots=True)
class Query:
    words: tuple[str, ...]  # folded; each must be found in the order's text
    phone: str  # the digits of a phone number asked for, leading zeros dropped ('' = not one)

    @property
    def parts(self) -> list[str]:
        """The words cut where the text's words are (``shop-881`` → ``shop``, ``881``)."""
        return _WORD.findall(" ".join(self.words))


def parse_query(text: str) -> Query:
    """The query in ``text``; ``ValueError`` when it is too short to mean anything.

    >>> parse_query("Aino  Mannerheimintie")
    Query(words=('aino', 'mannerheimintie'), phone='')
    >>> parse_query("040 123 4567")
    Query(words=('040', '123', '4567'), phone='401234567')
    >>> parse_query(" x ")
    Traceback (most recent call last):
    ...
    ValueError: give at least 2 characters to search for
    """
    words = tuple(folded(text).split())
    if sum(len(w) for w in words) < MIN_QUERY:
        raise ValueError(f"give at least {MIN_QUERY} characters to search for")
    number = digits(text).lstrip("0")
    phone = number if _PHONE.match(text) and len(number) >= MIN_PHONE_DIGITS else ""
    return Query(words, phone)


def matches(query: Query, phone: str, text: str) -> bool:
    """Whether an order whose customer's phone is ``phone`` and whose other searchable text is
    ``text`` (id, reference, customer's name, addresses: :func:`folded`) is one asked for: each
    word of the query begins a word of the text, or, all digits, ends the phone number.

    >>> text = folded("o-3f2a9c Aino Virtanen Mannerheimintie 5 Helsinki REF-881")
    >>> [matches(parse_query(q), "+358 40 1234567", text) for q in
    ...  ["aino", "VIRTANEN mannerheim", "040 1234567", "1234567", "ref-881", "3f2a",
    ...   "aino 4567", "aino korhonen", "050 1234567", "irtanen", "aino 40"]]
    [True, True, True, True, True, True, True, False, False, False, False]
    """
    number = digits(phone)
    if query.phone and query.phone in number:
        return True
    words = query.parts
    ends = [word.isdigit() and number.endswith(word) for word in words]
    if not all(end or word in text for word, end in zip(words, ends, strict=True)):
        return False  # (most orders: no need to look at the words one by one)
    tokens = _WORD.findall(text)
    return all(
        end or any(token.startswith(word) for token in tokens)
        for word, end in zip(words, ends, strict=True)
    )
