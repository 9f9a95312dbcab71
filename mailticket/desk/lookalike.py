"""When two new tickets "look alike" (issue 11, spike detection): the topics of one ticket, as
keys that compare equal, pure and with no database.

A ticket that names a configured application (``outages.applications``: its key or one of its
``names``, as a phrase of whole words, in the subject or the body) has that application as its
topic, and nothing else. Otherwise its topics are the pairs of significant words of its subject
(stop words, numbers and words under three letters left out, a plural "s" taken off): two
tickets look alike when their subjects share two significant words, or when both subjects are
the same one word. Bodies are not read for words: greetings, signatures and quoted text are
alike in every mail, and would make every ticket look like every other.

The keys are exact, so the store can index them and a spike has one identity ("application:
records", "words:login portal") that every daemon agrees on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import combinations

from mailticket.config.outages import Application

MAX_WORDS = 5  # significant subject words kept (so at most 10 pairs a ticket)
KEY_LENGTH = 200

_WORD = re.compile(r"[^\W\d_]+")   # letters only: ticket tags, tokens and numbers fall out
_PHRASE = re.compile(r"\w+")

# Function words, and what every desk mail says whatever is broken (a spike is about one
# thing: "records system", not "not working").
STOP_WORDS = frozenset("""
a about above after again against all also am an and any are around as at be because been
before being below between both but by can cannot could did do does doing done down during each
few for from further had has have having he her here hers him his how i if in into is it its
just me more most my myself no nor not now of off on once only or other our ours out over own
same she should so some such than that the their them then there these they this those through
to too under until up very was we were what when where which while who whom why will with would
you your yours today morning afternoon yesterday still again since ago
fwd fw aw wg sv antw re
hello hi dear thanks thank please help urgent asap issue issues problem problems question
request error errors working work works broken fail fails failed failing failure trouble
unable able get getting got need needs needed cant dont doesnt isnt wont nothing anything
something everything every new ticket desk support
""".split())


@dataclass(frozen=True)
class Topic:
    key: str    # what tickets are compared by: "application:KEY" or "words:A B" / "word:A"
    label: str  # what the alert calls it: the application's key, or the words


def _stem(word: str) -> str:
    """Plural to singular, crudely ("pages" -> "page", "access" stays)."""
    if len(word) > 4 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def significant_words(text: str, limit: int = MAX_WORDS) -> list[str]:
    """The subject's words that say what it is about, in order, once each."""
    found: dict[str, None] = {}
    for raw in _WORD.findall(text.casefold()):
        word = _stem(raw)
        if len(raw) >= 3 and raw not in STOP_WORDS and word not in STOP_WORDS:
            found.setdefault(word, None)
            if len(found) == limit:
                break
    return list(found)


def _phrase(text: str) -> str:
    return " " + " ".join(_PHRASE.findall(text.casefold())) + " "


def applications_named(text: str, applications: Iterable[Application]) -> list[Application]:
    """The applications whose key or one of whose names appears in ``text`` as whole words."""
    haystack = _phrase(text)
    named = []
    for app in applications:
        for name in (app.name, *app.names):
            needle = _phrase(name)
            if needle.strip() and needle in haystack:
                named.append(app)
                break
    return named


def topics(subject: str, body: str, applications: Iterable[Application] = ()) -> list[Topic]:
    """The keys a new ticket is compared by (see the module's docstring); [] when its subject
    says nothing significant and it names no application."""
    apps = applications_named(f"{subject}\n{body}", applications)
    if apps:
        return [Topic(f"application:{app.name.casefold()}"[:KEY_LENGTH], app.name)
                for app in apps]
    words = significant_words(subject)
    if len(words) == 1:
        return [Topic(f"word:{words[0]}"[:KEY_LENGTH], words[0])]
    return [Topic(f"words:{' '.join(sorted(pair))}"[:KEY_LENGTH], " ".join(pair))
            for pair in combinations(words, 2)]
