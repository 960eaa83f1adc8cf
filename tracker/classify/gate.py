"""Regexes behind a literal gate: a text that holds none of the literals every match needs is not searched.

Most of the classifier's regex time went to texts a rule does not match at all (a condition naming no
other disease, a summary naming no paediatric population), and a pattern that starts with a class or a
lookbehind makes the regex engine try it at every position. Every match of such a pattern contains one of
a few plain strings (`required_literals`, read from the standard library's own parse of the pattern), and
looking for those is a substring test or one Aho-Corasick pass in C. A text without any of them cannot
match, so the gated pattern answers exactly as the regex would, only sooner.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from re import _constants as sre  # the standard library's regex parser and its opcodes
from re import _parser as sre_parse
from typing import Any

# Substring tests beat building an automaton pass up to this many literals.
_SUBSTRING_TESTS = 4
_REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT, getattr(sre, "POSSESSIVE_REPEAT", sre.MAX_REPEAT))


def required_literals(pattern: re.Pattern[str]) -> frozenset[str] | None:
    """Plain strings of which every match of `pattern` contains at least one; None when none is known
    (case-insensitive patterns, patterns that can match without any literal)."""
    if pattern.flags & re.IGNORECASE:
        return None
    try:
        parsed = sre_parse.parse(pattern.pattern, pattern.flags)
    except re.error:
        return None
    found = _sequence(list(parsed))
    return found if found and all(found) else None


def _sequence(items: list[tuple[Any, Any]]) -> frozenset[str] | None:
    """The most selective requirement among a sequence's items: each run of literals, each group,
    alternation or repeat (at least once) that has one. Longer shortest literal wins, then fewer.

    A group of plain alternatives starts a run: r"(?:arterio|athero)sclerosis" needs "arteriosclerosis" or
    "atherosclerosis", not merely "sclerosis" (which every MS title holds)."""
    options: list[frozenset[str]] = []
    run = [""]  # what the current run can be: one of these strings occurs, whole
    for op, value in items:
        if op is sre.LITERAL:
            run = [head + chr(value) for head in run]
            continue
        if run != [""]:
            options.append(frozenset(run))
        strings = _plain_strings(op, value)
        run = strings if strings is not None else [""]
        option = _item(op, value) if strings is None else None
        if option:
            options.append(option)
    if run != [""]:
        options.append(frozenset(run))
    if not options:
        return None
    return max(options, key=lambda option: (min(map(len, option)), -len(option)))


# A run of plain items stops growing before it would stand for more strings than this.
_MAX_RUN_STRINGS = 16


def _plain_strings(op: Any, value: Any) -> list[str] | None:
    """The strings a literal, or a group or alternation of plain literals only, matches (None otherwise).
    (The parser has already turned an alternation of single characters into a class, which stays out.)"""
    if op is sre.LITERAL:
        return [chr(value)]
    if op is sre.SUBPATTERN:
        _group, add_flags, _del_flags, content = value
        return None if add_flags & re.IGNORECASE else _plain_sequence(list(content))
    if op is sre.BRANCH:
        strings: list[str] = []
        for branch in value[1]:
            branch_strings = _plain_sequence(list(branch))
            if branch_strings is None:
                return None
            strings += branch_strings
        return strings
    return None


def _plain_sequence(items: list[tuple[Any, Any]]) -> list[str] | None:
    strings = [""]
    for op, value in items:
        item_strings = _plain_strings(op, value)
        if item_strings is None or len(strings) * len(item_strings) > _MAX_RUN_STRINGS:
            return None
        strings = [head + tail for head in strings for tail in item_strings]
    return strings


def _item(op: Any, value: Any) -> frozenset[str] | None:
    if op is sre.SUBPATTERN:
        _group, add_flags, _del_flags, content = value
        return None if add_flags & re.IGNORECASE else _sequence(list(content))
    if op is sre.BRANCH:
        branches = [_sequence(list(branch)) for branch in value[1]]
        if any(branch is None for branch in branches):
            return None
        return frozenset().union(*branches)  # type: ignore[arg-type]
    if op in _REPEATS:
        low, _high, content = value
        return _sequence(list(content)) if low >= 1 else None
    if op is getattr(sre, "ATOMIC_GROUP", None):
        return _sequence(list(value))
    return None


class GatedPattern:
    """A compiled regex that skips the texts its required literals rule out; otherwise the same calls
    (search, match, fullmatch, finditer, sub, split) with the same answers."""

    __slots__ = ("regex", "pattern", "_may_match")

    def __init__(self, regex: re.Pattern[str]) -> None:
        self.regex = regex
        self.pattern = regex.pattern
        self._may_match = _gate(required_literals(regex))

    def search(self, text: str, pos: int = 0) -> re.Match[str] | None:
        return self.regex.search(text, pos) if self._may_match(text) else None

    def match(self, text: str, pos: int = 0) -> re.Match[str] | None:
        return self.regex.match(text, pos) if self._may_match(text) else None

    def fullmatch(self, text: str) -> re.Match[str] | None:
        return self.regex.fullmatch(text) if self._may_match(text) else None

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        return self.regex.finditer(text) if self._may_match(text) else iter(())

    def sub(self, replacement: str, text: str) -> str:
        return self.regex.sub(replacement, text) if self._may_match(text) else text

    def split(self, text: str) -> list[str]:
        return self.regex.split(text) if self._may_match(text) else [text]


def _gate(literals: frozenset[str] | None) -> Callable[[str], bool]:
    if literals is None:
        return lambda _text: True
    if len(literals) <= _SUBSTRING_TESTS:
        ordered = tuple(sorted(literals))
        return lambda text: any(literal in text for literal in ordered)
    import ahocorasick

    automaton = ahocorasick.Automaton()
    for literal in literals:
        automaton.add_word(literal, literal)
    automaton.make_automaton()
    return lambda text: next(automaton.iter(text), None) is not None


def gated(pattern: str, flags: int = 0) -> GatedPattern:
    """`re.compile(pattern, flags)` behind its literal gate."""
    return GatedPattern(re.compile(pattern, flags))
