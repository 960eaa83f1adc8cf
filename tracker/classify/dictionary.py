"""The intervention dictionary (data/agents.json), compiled once into fast matchers.

Every synonym is matched on normalised text (lower case, Greek letters spelled out, trade marks dropped)
with optional spaces, hyphens and similar separators between its tokens and between letters and digits,
so "SAR442168", "SAR-442168" and "SAR 442168" are one code name. A match is mapped back to its agent by
its canonical form (letters and digits only), which is why the dictionary refuses two agents sharing one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

_SEPARATOR = r"[\s\-/.,()\[\]'+:]*"
_TOKEN = re.compile(r"[a-z]+|\d+")
_BOUNDARY_START = r"(?<![a-z0-9])"
_BOUNDARY_END = r"(?![a-z0-9])"
_WORD_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")  # what _BOUNDARY_START looks behind for
_REPLACEMENTS = (
    ("β", "beta"),
    ("ß", "beta"),
    ("α", "alpha"),
    ("γ", "gamma"),
    ("κ", "kappa"),
    ("&#39;", "'"),
    ("&amp;", "&"),
    ("_", " "),
    ("\u00ae", ""),  # registered sign
    ("\u2122", ""),  # trade mark sign
    ("\u00a9", ""),  # copyright sign
    ("（", "("),
    ("）", ")"),
)

# Pseudo-mechanisms of the dictionary that add no taxonomy key.
NO_KEY = "premedication"


# The replacements an ASCII text can need (the others replace non-ASCII characters), in the same order.
_ASCII_REPLACEMENTS = tuple((old, new) for old, new in _REPLACEMENTS if old.isascii())


def normalise(text: str) -> str:
    """Lower case, Greek letters spelled out, trade-mark signs dropped, whitespace collapsed."""
    text = text.lower()
    for old, new in _ASCII_REPLACEMENTS if text.isascii() else _REPLACEMENTS:
        if old in text:
            text = text.replace(old, new)
    # str.split() splits on exactly the characters `\s` matches: runs of whitespace become one space
    return " ".join(text.split())


def canonical(text: str) -> str:
    """Letters and digits only: the identity of a name however it is spaced or hyphenated."""
    return "".join(_TOKEN.findall(normalise(text)))


def synonym_pattern(synonym: str) -> str:
    """A regex for one synonym: its tokens in order, any separator (or none) between them."""
    tokens = _TOKEN.findall(normalise(synonym))
    return _SEPARATOR.join(re.escape(token) for token in tokens)


@dataclass(frozen=True, slots=True)
class Agent:
    name: str
    mechanism: str  # a taxonomy key, or NO_KEY
    generic: bool  # a class word ("steroids", "diet"): counts only when nothing specific matched
    conditioning: bool  # conditioning/mobilisation: belongs to the trial's transplant or cell therapy
    prophylaxis: bool  # anti-infective prophylaxis: adds nothing next to a transplant or cell therapy


@dataclass(frozen=True, slots=True)
class AgentMatch:
    agent: Agent
    text: str


@dataclass(frozen=True, slots=True)
class TermMatch:
    key: str
    text: str


class AgentMatcher:
    """Finds every dictionary agent named in a text, longest name first, without overlaps.

    The one regex of all names is tried only where some name's first token starts (found in one pass by
    an Aho-Corasick automaton) after a non-word character: scanning every position of the text with
    thousands of alternatives cost ~20 µs a text. Every name's pattern starts with that token, and the
    regex's own look-behind rejects a start inside a word, so no match is missed, and trying the positions
    in order, past each match's end, gives exactly the matches `finditer` gives.

    The names are grouped by their first character, in their order within each group: the regex engine
    skips a group whose character is not the text's at once, where it used to test each of the thousands
    of names. Only names starting with that character can match there, and their order is kept, so each
    position gives the match it gave."""

    def __init__(self, agents: list[Agent], synonyms: dict[str, tuple[list[str], Agent]]) -> None:
        import ahocorasick

        self.agents = agents
        self._by_canonical = {key: agent for key, (_, agent) in synonyms.items()}
        names = [name for names, _ in synonyms.values() for name in names]
        # Longest first, then alphabetical: a set's order would follow the process's string hash seed.
        patterns = sorted(
            {synonym_pattern(name) for name in names}, key=lambda pattern: (-len(pattern), pattern)
        )
        # a pattern's first character is its first token's, a letter or digit (re.escape leaves those)
        by_first: dict[str, list[str]] = {}
        for pattern in patterns:
            by_first.setdefault(pattern[0], []).append(pattern)
        groups = "|".join("(?:" + "|".join(group) + ")" for group in by_first.values())
        self._regex = re.compile(_BOUNDARY_START + "(?:" + groups + ")" + _BOUNDARY_END)
        self._first_tokens = ahocorasick.Automaton()
        for token in {_TOKEN.findall(normalise(name))[0] for name in names}:
            self._first_tokens.add_word(token, len(token))
        self._first_tokens.make_automaton()

    def find(self, normalised_text: str) -> Iterator[AgentMatch]:
        for match in self._matches(normalised_text):
            agent = self._by_canonical.get(canonical(match.group(0)))
            if agent is not None:
                yield AgentMatch(agent, match.group(0).strip())

    def _matches(self, text: str) -> Iterator[re.Match[str]]:
        """`self._regex.finditer(text)`, trying only the positions where a name's first token starts."""
        if not text:
            return
        starts = sorted(
            {
                start
                for end, length in self._first_tokens.iter(text)
                if (start := end - length + 1) == 0 or text[start - 1] not in _WORD_CHARACTERS
            }
        )
        done = 0
        for start in starts:
            if start < done:
                continue
            match = self._regex.match(text, start)
            if match is not None:
                done = match.end()
                yield match


class TermMatcher:
    """Word rules for non-drug interventions, one regex per mechanism key."""

    def __init__(self, terms: dict[str, list[str]]) -> None:
        self._regexes = {
            key: re.compile(_BOUNDARY_START + "(?:" + "|".join(words) + ")" + _BOUNDARY_END)
            for key, words in terms.items()
            if words
        }

    def find(self, normalised_text: str) -> list[TermMatch]:
        found = []
        for key, regex in self._regexes.items():
            match = regex.search(normalised_text)
            if match:
                found.append(TermMatch(key, match.group(0)))
        return found


@dataclass(frozen=True, eq=False)  # hashed by identity: compiled once per process
class Dictionary:
    version: int
    specific_agents: AgentMatcher
    generic_agents: AgentMatcher
    specific_terms: TermMatcher
    generic_terms: TermMatcher
    neutral_anywhere: re.Pattern[str]
    neutral_whole: re.Pattern[str]
    neutral_when_unmatched: re.Pattern[str]
    type_fallback: dict[str, str]


def load_agents_data() -> dict[str, Any]:
    text = resources.files("tracker.classify").joinpath("data/agents.json").read_text("utf-8")
    return json.loads(text)


@cache
def load_dictionary() -> Dictionary:
    """Compile data/agents.json once per process."""
    return compile_dictionary(load_agents_data())


def compile_dictionary(data: dict[str, Any]) -> Dictionary:
    specific: dict[str, tuple[list[str], Agent]] = {}
    generic: dict[str, tuple[list[str], Agent]] = {}
    agents: list[Agent] = []
    for item in data["agents"]:
        agent = Agent(
            name=item["name"],
            mechanism=item["mechanism"],
            generic=bool(item.get("generic")),
            conditioning=bool(item.get("conditioning")),
            prophylaxis=bool(item.get("prophylaxis")),
        )
        agents.append(agent)
        target = generic if agent.generic else specific
        for name in (item["name"], *item.get("synonyms", ())):
            _add_synonym(target, name, agent)
    terms = data["intervention_terms"]
    neutral = data["neutral_terms"]
    return Dictionary(
        version=int(data["version"]),
        specific_agents=AgentMatcher([a for a in agents if not a.generic], specific),
        generic_agents=AgentMatcher([a for a in agents if a.generic], generic),
        specific_terms=TermMatcher({key: value["specific"] for key, value in terms.items()}),
        generic_terms=TermMatcher({key: value["generic"] for key, value in terms.items()}),
        # placebo-like words neutralise a whole intervention name part wherever they stand;
        # other neutral phrases must be the whole part ("control", not "control diet")
        neutral_anywhere=re.compile(
            r"(?<![a-z0-9])(?:" + "|".join(data["neutral_anywhere_terms"]) + r")(?![a-z0-9])"
        ),
        neutral_whole=re.compile(r"(?:" + "|".join(neutral) + r")"),
        # "Control intervention", "Active comparator", "Group B": a comparator that names no content
        neutral_when_unmatched=re.compile(
            r"(?<![a-z0-9])(?:" + "|".join(data["neutral_when_unmatched"]) + r")(?![a-z0-9])"
        ),
        type_fallback=dict(data["type_fallback"]),
    )


def _add_synonym(target: dict[str, tuple[list[str], Agent]], name: str, agent: Agent) -> None:
    key = canonical(name)
    if not key:
        return
    existing = target.get(key)
    if existing is None:
        target[key] = ([name], agent)
    elif existing[1].mechanism != agent.mechanism:
        raise ValueError(f"dictionary name {name!r} is both {existing[1].name} and {agent.name}")
    else:
        existing[0].append(
            name
        )  # same name spelled another way ("abobotulinumtoxin A" / "abobotulinumtoxinA")
