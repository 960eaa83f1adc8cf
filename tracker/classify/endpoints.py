"""Endpoint classification: what each outcome measure measures, as taxonomy endpoint keys with evidence.

Pure functions over a parsed study. The measure text is read first; the description (and the time frame)
only when the measure itself names nothing a rule recognises, and a measure that names nothing measurable
("efficacy", "primary endpoint") is `other` whatever its description says (taxonomy.md, "Endpoint").

Each key has strong patterns (words that name the domain) and some keys weak ones (generic words such as
"MRI", "disability" or "symptoms") that count only when no strong pattern matched the same text. A few
named rules then settle the taxonomy's doubts (composites, relapse recovery, drug-effect cell counts...).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from re import _constants, _parser  # the standard library's own regex parser and its opcodes
from typing import Any

from tracker.classify.dictionary import normalise
from tracker.classify.model import EndpointLabel, Evidence, OutcomeEndpoints
from tracker.classify.version import ENDPOINT_RULES_REVISION  # bumped there: a rule changed the output
from tracker.ctgov.parse import OutcomeMeasure, StudyRecord

OTHER = "other"
TRIAL_ROLES = ("primary", "secondary")  # "other" outcomes are classified and kept, but not in the trial sets


class _Branches:
    """Every key's patterns, each tried only when the literals it needs occur in the text.

    One alternation of some 500 patterns makes the regex engine try every branch at every position, and
    a Python loop of substring tests is not much cheaper; an Aho-Corasick automaton (pyahocorasick) finds
    all the literals present in one pass in C, so only their few patterns run. That keeps endpoint
    classification of the whole snapshot a fraction of the 2 s budget."""

    def __init__(self, patterns: dict[str, tuple[str, ...]]) -> None:
        import ahocorasick

        self._keys = tuple(patterns)
        self._branches: list[tuple[str, re.Pattern[str]]] = []  # (key, pattern) by rank
        # literal → its index; the branches filed under each as (rank, index of a literal needed besides)
        literals: dict[str, int] = {}
        by_literal: dict[int, list[tuple[int, int]]] = {}
        checked: list[tuple[int, tuple[frozenset[str], ...]]] = []
        for key, alternatives in patterns.items():
            for item in alternatives:
                _refuse_top_level_alternation(item)
            for alternative in (part for item in alternatives for part in _expand(item)):
                rank = len(self._branches)
                self._branches.append((key, re.compile(alternative)))
                groups = sorted(_gate_literals(alternative), key=_shortest, reverse=True)
                if groups and _shortest(groups[0]) > 1 and _one_more_literal(groups[1:]):
                    needs = literals.setdefault(min(groups[1]), len(literals)) if len(groups) > 1 else -1
                    for literal in groups[0]:
                        index = literals.setdefault(literal, len(literals))
                        by_literal.setdefault(index, []).append((rank, index if needs < 0 else needs))
                else:
                    # one-letter literals stay out of the automaton: "e" or "t" occur a dozen times in a
                    # text, each occurrence a tuple and a set insertion; a substring test answers at once
                    checked.append((rank, tuple(groups)))
        self._by_literal = tuple(tuple(by_literal.get(index, ())) for index in range(len(literals)))
        self._checked = tuple(checked)
        self._automaton = ahocorasick.Automaton()
        for literal, index in literals.items():
            self._automaton.add_word(literal, index)
        self._automaton.make_automaton()

    def find(self, text: str) -> dict[str, str]:
        """key → the words of its first pattern (in taxonomy and pattern order) that matches."""
        if not text:
            return {}
        present = set(map(_SECOND, self._automaton.iter(text)))
        # ranks, not branches: a branch filed under two literals runs once
        ranks = {rank for index in present for rank, needs in self._by_literal[index] if needs in present}
        ranks.update(
            rank
            for rank, groups in self._checked
            if all(any(literal in text for literal in group) for group in groups)
        )
        # Ranks run key by key in taxonomy order, so keys are found (and kept) in that order.
        found: dict[str, str] = {}
        for rank in sorted(ranks):
            key, pattern = self._branches[rank]
            if key in found:
                continue
            match = pattern.search(text)
            if match:
                found[key] = match.group(0).strip()
        return found


_SECOND = itemgetter(1)


def _refuse_top_level_alternation(pattern: str) -> None:
    """A pattern is gated by the literals it starts with, and "a|b" starts with "a" only: its "b" would
    never run. Each alternative is its own pattern in the rules (they are tried in order anyway)."""
    depth, in_class, index = 0, False, 0
    while index < len(pattern):
        char = pattern[index]
        index += 1
        if char == "\\":
            index += 1  # an escaped character is plain
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char in "()":
            depth += 1 if char == "(" else -1
        elif char == "|" and depth == 0:
            raise ValueError(f"endpoint pattern {pattern!r}: make each top-level alternative its own pattern")


def _gate_literals(pattern: str) -> list[frozenset[str]]:
    """Groups of literals a text must hold one of each for `pattern` to run on it.

    A branch has always run where its leading literal occurs and its longest required literal too (when
    longer): those decide which texts it is tried on, so they stay. Its start spelled out ("eg" or "ecg"
    for r"\bec?gs?\b", "t cell", "t-cell" or "tcell" for r"\bt[- ]?cells?\b") occurs in every text it
    matches, and replaces the literals each start holds: one letter ruled out nearly nothing."""
    leading = _leading_literal(pattern)
    required = _required_literal(pattern)
    needed = [leading] if leading else []
    if len(required) > len(leading):
        needed.append(required)
    starts = _leading_options(pattern)
    if not starts:
        return [frozenset({literal}) for literal in needed]
    return [starts] + [frozenset({literal}) for literal in needed if any(literal not in s for s in starts)]


def _shortest(group: frozenset[str]) -> int:
    return min(map(len, group))


def _one_more_literal(groups: list[frozenset[str]]) -> bool:
    """Nothing or one literal of two or more characters: what the automaton can require besides."""
    return not groups or (len(groups) == 1 and len(groups[0]) == 1 and _shortest(groups[0]) > 1)


# Spelling out a pattern's start stops before it would give more strings than this.
_MAX_STARTS = 8
_OPTIONAL = (_constants.MAX_REPEAT, _constants.MIN_REPEAT)


def _leading_options(pattern: str) -> frozenset[str]:
    """Strings of which every match of `pattern` starts with one: its plain characters, classes of plain
    characters and optional ones spelled out, up to the first other construct (zero-width assertions are
    stepped over). Empty when unsure."""
    try:
        parsed = _parser.parse(pattern)
    except re.error:
        return frozenset()
    if parsed.state.flags & re.IGNORECASE:
        return frozenset()
    starts = [""]
    for op, value in parsed:
        if op in (_constants.AT, _constants.ASSERT, _constants.ASSERT_NOT):
            continue
        optional = op in _OPTIONAL and value[:2] == (0, 1) and len(value[2]) == 1
        chars = _plain_characters(*(value[2][0] if optional else (op, value)))
        if not chars:
            break
        grown = [start + char for start in starts for char in chars]
        if len(grown) + optional * len(starts) > _MAX_STARTS:
            break
        starts = starts + grown if optional else grown
    # a string another one starts with adds nothing: wherever it occurs, so does the shorter one
    kept = {
        start for start in starts if not any(start != other and start.startswith(other) for other in starts)
    }
    return frozenset(kept) if all(kept) else frozenset()


def _plain_characters(op: Any, value: Any) -> list[str]:
    """The characters a plain character or a class of plain characters matches ([] for anything else)."""
    if op is _constants.LITERAL:
        return [chr(value)]
    if op is _constants.IN and all(item is _constants.LITERAL for item, _ in value):
        return [chr(char) for _, char in value]
    return []


def _required_literal(pattern: str) -> str:
    """The longest run of plain characters that every match of `pattern` contains ("" when unsure).

    Only the pattern's top-level sequence is read: a group, class, repeat or alternation ends a run and
    adds nothing, so the answer can be too short but never wrong."""
    try:
        parsed = _parser.parse(pattern)
    except re.error:
        return ""
    if parsed.state.flags & re.IGNORECASE:
        return ""
    runs, run = [""], []
    for op, value in parsed:
        if op is _constants.LITERAL:
            run.append(chr(value))
            continue
        runs.append("".join(run))
        run = []
    runs.append("".join(run))
    return max(runs, key=len)


_SIMPLE_GROUP = re.compile(r"\(\?:((?:[a-z0-9 ,/'-]|\\[-.])+(?:\|(?:[a-z0-9 ,/'-]|\\[-.])+)+)\)(\??)")
_SIMPLE_CLASS = re.compile(r"\[([a-z0-9]+)\](\??)")


def _expand(pattern: str, depth: int = 0) -> list[str]:
    """Equivalent patterns that start with a longer literal: a leading group of plain alternatives
    ("(?:ms|multiple sclerosis) severity") or a class of plain characters ("t[12]") is spelled out, so
    each branch can be found by its literal. Matches stay the same; only the grouping changes."""
    assertions = ""
    while match := _LEADING_ASSERTIONS.match(pattern, len(assertions)):
        assertions = pattern[: match.end()]
    rest = pattern[len(assertions) :]
    literal = _leading_literal(rest)
    if len(literal) >= 3 or depth > 3:
        return [pattern]
    # the leading literal stops where a construct starts; spell that construct out if it is simple
    cut = _literal_length(rest)
    head, tail = rest[:cut], rest[cut:]
    match = _SIMPLE_GROUP.match(tail) or _SIMPLE_CLASS.match(tail)
    if match is None:
        return [pattern]
    options = match.group(1).split("|") if match.re is _SIMPLE_GROUP else list(match.group(1))
    if match.group(2):  # optional
        options.append("")
    after = tail[match.end() :]
    return [
        expanded
        for option in options
        for expanded in _expand(f"{assertions}{head}{option}{after}", depth + 1)
    ]


def _literal_length(pattern: str) -> int:
    """How many pattern characters the leading literal spans (escapes count double)."""
    index = 0
    while index < len(pattern):
        char, step = pattern[index], 1
        if char == "\\" and pattern[index + 1 : index + 2] in ("-", ".", "/", "+", "(", ")"):
            step = 2
        elif not (char.isalnum() or char in " -/':,"):
            break
        if pattern[index + step : index + step + 1] in ("?", "*", "{", "+"):
            break
        index += step
    return index


def _leading_literal(pattern: str) -> str:
    """The plain characters every match of `pattern` starts with ("" when it starts with a class/group)."""
    while match := _LEADING_ASSERTIONS.match(pattern):
        pattern = pattern[match.end() :]
    literal: list[str] = []
    index = 0
    while index < len(pattern):
        char, step = pattern[index], 1
        if char == "\\" and pattern[index + 1 : index + 2] in ("-", ".", "/", "+", "(", ")"):
            char, step = pattern[index + 1], 2
        elif not (char.isalnum() or char in " -/':,"):
            break
        after = pattern[index + step : index + step + 1]
        if after in ("?", "*", "{"):
            break
        literal.append(char)
        if after == "+":
            break
        index += step
    return "".join(literal)


_LEADING_ASSERTIONS = re.compile(r"\(\?<[!=](?:[^()\\]|\\.)*\)|\\b")


def _rx(*alternatives: str) -> tuple[str, ...]:
    return alternatives


_PROGRAMME_WORDS = (
    r"(?:\w+ )?(?:program|intervention|device|app|service|training|course|platform|system|session|exercise"
    r"|rehabilitation|class)"
)

# Strong patterns, per key, in taxonomy order. Texts are normalised (lower case, Greek spelled out).
_STRONG: dict[str, tuple[str, ...]] = {
    "disability_progression": _rx(
        r"\bedss\b",
        r"expanded disability",
        r"disability status",
        r"kurtzke",
        r"disability (?:\w+ )?(?:progression|worsening|accumulation|improvement)",
        r"(?:progression|worsening|accumulation|improvement) (?:\w+ )?(?:of |in )?disability",
        r"confirmed disability",
        r"sustained (?:\w+ )?progression",
        r"(?<![a-z])c(?:dp|dw|da|di)\b",
        r"\bpira\b",
        r"progression independent",
        r"relapse[- ]associated worsening",
        r"\braw\b",
        r"\bmsfc\b",
        r"functional composite",
        r"functional systems? scores?",
        r"(?:ms|multiple sclerosis) severity",
        r"\bmsss\b",
        r"overall disability response",
        r"\bodrs\b",
        r"progression[- ]free survival",
        r"time to (?:\w+ )?progression",
        r"neurological (?:impairment|status|disability|deterioration)",
        r"disease progression",
    ),
    "relapse": _rx(
        r"(?<!independent of )(?<!independent of a )relaps(?:e|es|ed)\b(?![- ]associated worsening)",
        r"\barr\b",
        r"exacerbations?",
        r"\b(?:ms |multiple sclerosis )?attacks?\b",
        r"clinical conversion",
        r"conversion to (?:clinically definite )?(?:ms|multiple sclerosis|cdms)\b",
        r"\bcdms\b",
        r"corticosteroid",
        r"steroid (?:use|courses?|treatment)",
        r"methylprednisolone",
    ),
    "mri_lesions": _rx(
        r"gadolin",
        r"\bgd\b",
        r"\bgd ?\+",
        r"\bgd[e-]",
        r"enhanc\w* (?:\w+ ){0,2}lesions?",
        r"\bt[12][- ]?(?:weighted |hyperintense |hypointense |w )*(?:mri )?(?:brain )?lesions?",
        r"\bt[12][- ](?:lesion|hyperintense|hypointense|weighted)",
        r"hyperintens",
        r"hypointens",
        r"new (?:or |and |and/or )?(?:newly[- ])?enlarg",
        r"combined unique",
        r"\bcual?s?\b",
        r"\bcul\b",
        r"black holes?",
        r"lesions? (?:volume|load|burden|count|number|activity)",
        r"burden of disease",
        r"(?:number|volume|count) of (?:\w+ ){0,3}lesions",
        r"brain lesions",
        r"active (?:\w+ )?lesions",
        r"mri lesions",
        r"(?:mri|imaging) (?:disease )?activity",
        r"radiologi\w* (?:disease )?activity",
        r"new (?:mri )?lesions",
    ),
    "mri_atrophy": _rx(
        r"atroph",
        r"(?:brain|cerebral|cortical|cortex|thalamic|thalamus|grey matter|gray matter|white matter|cord"
        r"|parenchyma|parenchymal|deep grey|deep gray|hippocampal|hippocampus)\s+(?:\w+\s+){0,2}?"
        r"(?:volumes?|fraction|thickness|area)",
        r"(?:volume|volumes) of (?:the )?(?:whole |total )?"
        r"(?:brain|thalamus|cortex|grey matter|gray matter)\b"
        r"(?! lesion)",
        r"volume loss",
        r"\bpbvc\b",
        r"\bsiena",
        r"\bbpf\b",
        r"brain structure",
    ),
    "smouldering_lesions": _rx(
        r"slowly[- ]expanding",
        r"\bsels?\b",
        r"paramagnetic rim",
        r"\bprls?\b",
        r"iron[- ]rim",
        r"rim lesions?",
        r"rim[- ]positive",
        r"\btspo\b",
        r"microglia",
        r"smoulder",
        r"smolder",
        r"chronic active lesions?",
        r"ferumoxytol",
        r"\buspio\b",
    ),
    "myelin_repair": _rx(
        r"magneti[sz]ation transfer",
        r"\bmtr\b",
        r"myelin(?! lipid)(?! basic protein)(?! oligodendrocyte)",
        r"remyelinat",
        r"\brepair\b",
        r"evoked potential",
        r"\bveps?\b",
        r"\bmveps?\b",
        r"\bp100\b",
        r"diffusion",
        r"\bdti\b",
        r"fractional anisotropy",
        r"\bmwf\b",
        r"g[- ]ratio",
        r"normal[- ]appearing",
        r"microstructur",
        r"white matter integrity",
        r"\bnt1\b",
    ),
    "vision": _rx(
        r"visual (?:acuity|field|function|outcome)",
        r"\bvision\b",
        r"letter acuity",
        r"low[- ]contrast",
        r"contrast sensitivity",
        r"retinal",
        r"\brnfl\b",
        r"ganglion cell",
        r"\bgc(?:i?pl|l)\b",
        r"optical coherence",
        r"\boct\b",
        r"oculomotor",
        r"eye movements?",
        r"nystagmus",
        r"optic nerve",
        r"macular",
        r"\bsloan\b",
    ),
    "walking_mobility": _rx(
        r"\bwalk",
        r"\bgait\b",
        r"t25[- ]?f?w",
        r"25[- ]?(?:foot|ft|feet)",
        r"\b[62] ?mwt\b",
        r"(?:six|two|6|2)[- ]?min(?:ute)?s?[- ]walk",
        r"timed up",
        r"functional reach",
        r"\btug\b",
        r"balance",
        r"\bfalls?\b",
        r"(?<!spinal )(?<!trunk )(?<!joint )(?<!cervical )(?<!lumbar )mobility",
        r"postur",
        r"sit[- ]to[- ]stand",
        r"\bsts\b",
        r"\bberg\b",
        r"bestest",
        r"\bmsws",
        r"ambulat",
        r"stride",
        r"step length",
        r"cadence",
        r"limits of stability",
        r"trunk impairment",
        r"stair",
    ),
    "upper_limb": _rx(
        r"\b9[- ]?hpt\b",
        r"\bnhpt\b",
        r"(?:nine|9)[- ]?hole",
        r"peg ?board",
        r"peg test",
        r"grip",
        r"manual ability",
        r"fine motor",
        r"finger (?:tapping|movements?|dexterity)",
        r"\bpinch",
        r"dexterity",
        r"hand (?:function|motor|strength)",
        r"upper (?:limb|extremit)",
        r"\barm (?:function|motor)",
        r"\bamsq\b",
        r"box and blocks?",
        r"action research arm",
        r"abilhand",
        r"handwriting",
    ),
    "cognition": _rx(
        r"\bsdmt\b",
        r"symbol digit",
        r"\bpasat\b",
        r"paced auditory",
        r"\bbicams\b",
        r"\bcogniti",
        r"\bmemory\b",
        r"processing speed",
        r"information processing",
        r"\battention",
        r"executive function",
        r"verbal (?:learning|fluency)",
        r"\bcvlt",
        r"\bbvmt",
        r"selective reminding",
        r"stroop",
        r"trail making",
        r"\bmoca\b",
        r"montreal cognitive",
        r"\bmmse\b",
        r"mini[- ]mental",
        r"\badas[- ]?cog",
        r"cogstate",
        r"\bcantab\b",
        r"word association",
        r"neuropsycholog",
        r"\bsrt\b",
    ),
    "symptom_scale": _rx(
        r"fatig",
        r"\bmfis\b",
        r"spastic",
        r"ashworth",
        r"spasms?\b",
        r"\bpain",
        r"neuropath",
        r"bladder",
        r"urinary",
        r"urination",
        r"\burine (?:leak|output|flow|volume|retention)",
        r"micturition",
        r"incontinen",
        r"detrusor",
        r"cystometr",
        r"voiding",
        r"bowel",
        r"constipation",
        r"\bsleep",
        r"insomnia",
        r"restless legs",
        r"awakening",
        r"depress",
        r"anxiety",
        r"\bhads\b",
        r"\bbdi\b",
        r"\bham[ad]\b",
        r"\bphq",
        r"\bmood\b",
        r"(?<!oxidative )\bstress\b",
        r"distress",
        r"tremor",
        r"sexual",
        r"erectile",
        r"dizziness",
        r"vertigo",
        r"ataxia",
        r"\bicars\b",
        r"heat sensitivity",
        r"numbness",
        r"prurit",  # pruritus, and its frequent misspelling "pruritis"
        r"\bitch(?:ing|y|es)?\b",  # never "switching"
        r"dysphag",
        r"swallow",
        r"flu[- ]like",
        r"\bsymptom (?:severity|score)",
    ),
    "quality_of_life": _rx(
        r"quality of life",
        r"\bqol\b",
        r"qol\b",
        r"\bhrqol",
        r"\bmsqol",
        r"\bmsqli\b",
        r"multiple sclerosis impact",
        r"\bmsis\b",
        r"msis[- ]?29",
        r"\bsf[- ]?(?:36|12)\b",
        r"\bfs[- ]36\b",
        r"short[- ]form (?:health|36|12)",
        r"health survey",
        r"\beq[- ]?5d",
        r"euroqol",
        r"global impression",
        r"\bpgi[- ]?[ic]\b",
        r"\bpgic\b",
        r"\bcgi\b",
        r"\bcgi[- ]?[si]\b",
        r"global assessment",
        r"treatment satisfaction",
        r"(?:patient|medication|injection) satisfaction",
        rf"satisfaction (?:with|questionnaire)(?! (?:the )?{_PROGRAMME_WORDS})",
        r"impression of change",
        r"satisfaction with (?:the )?(?:treatment|medication|therapy|drug)",
        r"\btsqm",
        r"participat\w* in (?:\w+ ){0,2}(?:activities|roles|community|life)",
        r"activity participation",
        r"social (?:roles|integration|participation)",
        r"well[- ]?being",
        r"activities of daily living",
        r"daily life",
        r"daily activities",
        r"patient[- ]reported impact",
        r"\bwhodas\b",
        r"disability assessment schedule",
        r"\bzbi\b",
        r"zarit",
        r"(?:caregiver|carer) (?:burden|strain)",
        r"burden interview",
        r"strain index",
        r"\bmcsi\b",
        r"life space",
        r"trips outside",
        r"functional status",
    ),
    "fluid_biomarker": _rx(
        r"neurofilament",
        r"\bnfl\b",
        r"\bsnfl\b",
        r"\bnf-l\b",
        r"\bgfap\b",
        r"\bcsf\b",
        r"cerebrospinal",
        r"biomarker",
        r"oligoclonal",
        r"cytokin",
        r"interleukin",
        r"\bil-?\d+\b",
        r"\btnf",
        r"tumou?r necrosis",
        r"\bifn",
        r"\bt[- ]?cells?\b",
        r"\bb[- ]?cells?\b",
        r"lymphocyte",
        r"monocyte",
        r"\bnk[- ]?cells?\b",
        r"natural killer",
        r"immune[- ]cells?",
        r"immune (?:status|profile|function|phenotype)",
        r"\bcd\d+\b",
        r"regulatory t",
        r"\btregs?\b",
        r"gene expression",
        r"transcript",
        r"\brna\b",
        r"\bmirna",
        r"polymorphism",
        r"genotyp",
        r"metalloproteinase",
        r"\bmmp-?\d",
        r"chitinase",
        r"osteopontin",
        r"\bigg (?:synthesis|index)",
        r"free light chain",
        r"oxidative stress",
        r"serum (?:\w+ ){0,2}levels?",
        r"blood[- ]?(?:borne )?markers?",
        r"inflammatory markers",
        r"markers of inflammation",
        r"butyrate",
        r"short chain fatty",
        r"\bscfas?\b",
        r"metabolom",
        r"proteom",
        r"autoantibod",
        r"antibody levels?",
    ),
    "neda": _rx(
        r"\bneda\b",
        r"neda[- ]?\d",
        r"evidence (?:of )?(?:\w+ )?disease activity",
        r"disease[- ]activity[- ]free",
        r"free (?:of|from) (?:\w+ )?disease activity",
        r"clinical (?:and|or|and/or) (?:/or )?radiologi\w* (?:disease )?activity",
        r"disease remission",
        r"remission of (?:the )?disease",
    ),
    "safety": _rx(
        r"adverse",
        r"\baes?\b",
        r"\baesis?\b",
        r"\bsaes?\b",
        r"\bteaes?\b",
        r"\btesaes?\b",
        r"side[- ]effects?",
        r"safety",
        r"tolerab",
        r"toxicit",
        r"\bdlts?\b",
        r"laborator",
        r"vital signs?",
        r"\bec?gs?\b",
        r"\becgs?\b",
        r"electrocardiogra",
        r"blood pressure",
        r"heart rate (?:\w+ ){0,3}(?:from baseline|after (?:the )?first)",
        r"change in heart rate",
        r"bradycardia",
        r"pulse rate",
        r"\bweight\b",
        r"infections?\b",
        r"\bdeaths?\b",
        r"mortality",
        r"overall survival",
        r"hospitali[sz]",
        r"suicid",
        r"c-ssrs",
        r"physical exam",
        r"injection[- ]site",
        r"site of (?:the )?injection",
        r"infusion[- ](?:related )?reactions?",
        r"hypersensitivity",
        r"abnormalit\w* (?:in |of )?(?:vital|laborator|blood|hematolog|haematolog|ecg|chemistry)",
        r"clinically significant",
        r"thyroid function",
        r"autoimmunity",
        r"\blvef\b",
        r"cardiac (?:side|safety|toxicity|function)",
        r"who (?:discontinued|withdr)",
        r"discontinu\w* (?:due to|because of|from baseline)",
    ),
    "pharmacology": _rx(
        r"pharmacokinetic",
        r"\bpk\b",
        r"\bc ?max\b",
        r"\bt ?max\b",
        r"\bc ?trough\b",
        r"\bc ?predose\b",
        r"\bauc",
        r"area under the (?:plasma |serum )?(?:concentration|curve)",
        r"half[- ]life",
        r"\bt ?1/2\b",
        r"clearance",
        r"volume of distribution",
        r"\bv ?ss\b",
        r"\bvd\b",
        r"mean residence time",
        r"trough",
        r"(?:plasma|serum|blood|csf|drug) (?:\w+ ){0,2}concentrations?",
        r"steady[- ]state (?:\w+ ){0,2}concentrations?",
        r"concentrations? of (?:the )?(?:study drug|investigational|ip\b)",
        r"drug (?:level|exposure)",
        r"receptor occupancy",
        r"saturation",
        r"pharmacodynamic",
        r"\bpd\b",
        r"dose[- ](?:finding|response|ranging)",
        r"bioavailab",
        r"bioequivalen",
        r"immunogenicity",
        r"anti[- ]?drug antibod",
        r"\bad?as?\b",
        r"\badab\b",
        r"\bnabs?\b",
        r"neutrali[sz]ing antibod",
        r"antibodies against",
        r"anti-(?!sars|jc|jcv|aqp|mog|ebv|nuclear|spike|hbs|viral|measles|varicella)[a-z0-9-]+ antibod",
        r"depletion",
        r"repopulation",
        r"reconstitution",
        r"metabolite",
        r"pharmacogen",
        r"nrf2",
    ),
    "vaccine_response": _rx(
        r"vaccin\w* (?:\w+ ){0,2}respon",
        r"respon\w* (?:\w+ ){0,3}vaccin",
        r"seroconver",
        r"seroprotect",
        *(
            rf"{word}\b.{{0,40}}(?:sars-cov|covid|influenza|vaccin|tetanus|pneumococ|hepatitis b|varicella)"
            for word in (
                r"antibod\w*",
                "titers?",
                "titres?",
                "igg",
                r"t[- ]cells?",
                r"reactiv\w*",
                r"immun\w*",
            )
        ),
        *(
            rf"{word} (?:\w+ ){{0,2}}(?:antibod|titer|titre|igg|t[- ]cell)"
            for word in ("sars-cov-2", r"covid-?\s?19", "influenza", r"vaccin\w*")
        ),
    ),
    "feasibility": _rx(
        r"feasib",
        r"recruit",
        r"retention",
        r"adheren",
        r"complian\w* (?:with|to)",
        r"(?:treatment|medication|drug) complian",
        r"acceptab",
        r"usabilit",
        rf"satisfaction with (?:the )?{_PROGRAMME_WORDS}",
        r"attrition",
        r"drop[- ]?outs?",
        r"completion rate",
        r"completed the (?:study|program|intervention)",
        r"attendance",
        r"\bcosts?\b",
        r"cost[- ]effective",
        r"time to complete",
        r"enrol?lment rate",
        r"engagement",
        r"\binterviews?\b",
        r"fidelity",
        r"treatment (?:dis)?continuation",
        r"reasons for discontinu",
        r"discontinuation (?:from|of) (?:\w+ )?treatment",
        r"persistence",
    ),
    "diagnostic_accuracy": _rx(
        r"(?<!contrast )(?<!hyper)\bsensitivity(?! to)",
        r"specificity",
        r"reliabilit",
        r"validit",
        r"\bvalidat",
        r"agreement",
        r"concordance",
        r"accuracy",
        r"diagnostic (?:yield|performance|value|utility)",
        r"predictive value",
        r"\b[pn]pv\b",
        r"\broc\b",
        r"receiver operating",
        r"inter[- ]?rater",
        r"intra[- ]?rater",
        r"test[- ]retest",
        r"\bicc\b",
        r"correlation coefficient",
        r"psychometric",
        r"detecting",
        r"detection rate",
        r"comparison of (?:both|the two|two|different) (?:methods|techniques|modalities)",
        r"\bcompar\w* (?:\w+ ){0,4}with (?:the )?(?:clinically|standard|conventional|gold|manual)",
    ),
    OTHER: _rx(
        r"muscles? (?:strength|test|endurance|power|activity|structure|thickness|volume|oxygen)",
        r"\bvo2",
        r"oxygen (?:consumption|uptake)",
        r"anaerobic threshold",
        r"ventilatory",
        r"pulmonary function",
        r"\bfev1\b",
        r"\bfvc\b",
        r"(?:inspiratory|expiratory) pressure",
        r"respiratory muscle",
        r"body (?:fat|composition|mass)",
        r"\bbmi\b",
        r"waist",
        r"\bdiet(?:ary)?\b",
        r"food",
        r"nutrition",
        r"employment",
        r"work (?:ability|productivity)",
        r"absenteeism",
        r"(?:healthcare|health care|service|resource) (?:use|utili[sz]ation)",
        r"physical activity",
        r"physical fitness",
        r"aerobic fitness",
        r"exercise capacity",
        r"functional connectivity",
        r"\bfmri\b",
        r"functional mri",
        r"resting[- ]state",
        r"microbio",
        r"\bstool\b",
        r"\bgut\b",
        r"bacteria",
        r"self[- ]efficacy",
    ),
}

# Weak patterns: generic words that decide only when nothing strong matched the same text.
_WEAK: dict[str, tuple[str, ...]] = {
    "disability_progression": _rx(r"\bdisabilit", r"handicap", r"neurological (?:exam|function)"),
    "mri_lesions": _rx(r"\bmri\b", r"magnetic resonance", r"\bc?mri\b", r"\blesions?\b", r"\bimaging\b"),
    "symptom_scale": _rx(r"\bsymptoms?\b"),
    "quality_of_life": _rx(r"neuro-?qol", r"\bpromis\b", r"patient[- ]reported", r"\bpreference"),
    "fluid_biomarker": _rx(
        r"antibod", r"\bimmune\b", r"\bblood\b", r"\bserum\b", r"\bplasma\b", r"inflammat"
    ),
    "safety": _rx(r"\bsafe\b"),
}

_STRONG_BRANCHES = _Branches(_STRONG)
_WEAK_BRANCHES = _Branches(_WEAK)

# A measure that names nothing measurable is `other` (taxonomy rule), whatever its description says.
_VAGUE = re.compile(
    r"^(?:(?:the|to|an?|primary|secondary|main|overall|clinical|evaluate|evaluation of|assess(?:ment of)?"
    r"|determine|investigate|measure)\s+)*"
    r"(?:efficacy|effectiveness|effects?|clinical effects?|benefits?|outcomes?|endpoints?|response)\b"
)


@dataclass(frozen=True, slots=True)
class _Found:
    key: str
    words: str


# ---------------------------------------------------------------------------------------------------------
# Entry points


def classify_endpoints(record: StudyRecord) -> tuple[OutcomeEndpoints, ...]:
    """Endpoint keys (with evidence) for every outcome measure of the study, in registry order."""
    drug_names = _intervention_words(record)
    return tuple(classify_outcome(outcome, drug_names) for outcome in record.outcomes)


def trial_endpoints(outcomes: Iterable[OutcomeEndpoints]) -> tuple[EndpointLabel, ...]:
    """The union per role (primary, secondary) of the measures' keys, evidence merged, taxonomy order."""
    merged: dict[tuple[str, str], list[Evidence]] = {}
    for outcome in outcomes:
        if outcome.role not in TRIAL_ROLES:
            continue
        # a measure names each key once (keys come from a dict): evidence[i] is all there is for keys[i]
        for key, item in zip(outcome.keys, outcome.evidence, strict=True):
            merged.setdefault((outcome.role, key), []).append(item)
    labels = [EndpointLabel(key, role, tuple(evidence[:3])) for (role, key), evidence in merged.items()]
    labels.sort(key=lambda label: (TRIAL_ROLES.index(label.role), _KEY_ORDER.get(label.key, len(_KEY_ORDER))))
    return tuple(labels)


def classify_outcome(outcome: OutcomeMeasure, drug_words: Sequence[str] = ()) -> OutcomeEndpoints:
    """Keys for one outcome measure: measure text first, then its description and time frame as context."""
    field = f"outcomes.{outcome.role}[{outcome.order}]"
    measure = normalise(outcome.measure or "")
    found = _match_text(measure)
    source = f"{field}.measure"
    if not found and not _VAGUE.match(measure):
        for name, value in (("description", outcome.description), ("time_frame", outcome.time_frame)):
            if not value:
                continue  # an empty text matches nothing
            text = normalise(value)
            found = _match_text(text)
            if found:
                source = f"{field}.{name}"
                measure = text
                break
    if found:
        found = _settle(found, measure, drug_words)
    if not found:
        found = {OTHER: outcome.measure.strip()[:80] if outcome.measure else ""}
        source = f"{field}.measure"
    keys = tuple(sorted((key for key in found if key in _KEY_ORDER), key=_KEY_ORDER.__getitem__))
    evidence = tuple(Evidence(source, found[key]) for key in keys)
    return OutcomeEndpoints(outcome.role, outcome.order, outcome.measure, keys, evidence)


def clear_caches() -> None:
    """Forget the texts matched so far (benchmarks measure cold runs)."""
    _cached_match.cache_clear()


# ---------------------------------------------------------------------------------------------------------
# Matching


def _match_text(text: str) -> dict[str, str]:
    """Strong patterns; the weak ones only when no strong pattern matched. Short texts are cached (a fifth
    of the measures repeat across trials, most time frames do; long descriptions are unique): callers copy
    the result before changing it."""
    return _cached_match(text) if len(text) <= _CACHED_TEXT_LENGTH else _uncached_match(text)


_CACHED_TEXT_LENGTH = 300


def _uncached_match(text: str) -> dict[str, str]:
    return _STRONG_BRANCHES.find(text) or _WEAK_BRANCHES.find(text)


_cached_match = lru_cache(maxsize=16384)(_uncached_match)


def _settle(found: dict[str, str], text: str, drug_words: Sequence[str]) -> dict[str, str]:
    """The taxonomy's rules for measures that match several keys."""
    found = dict(found)
    _composite_disability_alone(found, text)
    _relapse_recovery_is_relapse(found, text)
    _neda_is_one_composite(found)
    _smouldering_lesions_are_not_activity(found)
    _repair_within_lesions_is_repair(found, text)
    _dual_task_is_not_cognition(found, text)
    _symptom_global_impression(found, text)
    _fatigue_impact_is_a_symptom(found, text)
    _vaccine_antibodies(found)
    _drug_antibodies_and_levels(found, text)
    _drug_effect_cell_counts(found, text, drug_words)
    _instrument_domains_over_batteries(found)
    _cognitive_fatigue_is_fatigue(found, text)
    _injection_site_pain_is_safety(found, text)
    _hospital_stay_for_relapse(found, text)
    return found


_COMPOSITE = re.compile(
    r"composite|overall (?:disability )?response|\bodrs\b|at least (?:one|1) of the following"
)
_DISABILITY_PARTS = ("walking_mobility", "upper_limb", "cognition")


def _composite_disability_alone(found: dict[str, str], text: str) -> None:
    """A composite disability score is disability_progression alone, not each of its parts."""
    if "disability_progression" in found and _COMPOSITE.search(text):
        for key in _DISABILITY_PARTS:
            found.pop(key, None)


_RELAPSE_RECOVERY = re.compile(r"recover|(?:treatment|steroid)[- ]response|response to (?:\w+ )?treatment")


def _relapse_recovery_is_relapse(found: dict[str, str], text: str) -> None:
    """Recovery (of EDSS) after a relapse measures the relapse treatment response: `relapse`."""
    if "relapse" in found and "disability_progression" in found and _RELAPSE_RECOVERY.search(text):
        found.pop("disability_progression")


def _neda_is_one_composite(found: dict[str, str]) -> None:
    """NEDA combines relapses, MRI and disability; its parts are not counted again from the same words."""
    if "neda" in found:
        for key in ("relapse", "mri_lesions", "disability_progression"):
            words = found.get(key, "")
            if words and words in found["neda"]:
                found.pop(key)
        if "disease activity" in found.get("mri_lesions", ""):
            found.pop("mri_lesions")


_SMOULDERING_WORDS = re.compile(
    r"rim|expanding|\bsels?\b|\bprls?\b|paramagnetic|smoulder|smolder|chronic active"
)


def _smouldering_lesions_are_not_activity(found: dict[str, str]) -> None:
    """Counting rim or slowly expanding lesions is smouldering imaging, not lesion activity."""
    if "smouldering_lesions" in found and _SMOULDERING_WORDS.search(found.get("mri_lesions", "")):
        found.pop("mri_lesions")


def _repair_within_lesions_is_repair(found: dict[str, str], text: str) -> None:
    if "myelin_repair" in found and "mri_lesions" in found and re.search(r"repair|remyelin", text):
        found.pop("mri_lesions")


_DUAL_TASK = re.compile(r"dual[- ]task|cognitive task|tug[- ]?cog|cognitive[- ]motor")


def _dual_task_is_not_cognition(found: dict[str, str], text: str) -> None:
    """Walking or balance under a cognitive task measures the walking; dual-task impact, daily life."""
    walking_or_daily_life = "walking_mobility" in found or "quality_of_life" in found
    if "cognition" in found and walking_or_daily_life and _DUAL_TASK.search(text):
        found.pop("cognition")


def _symptom_global_impression(found: dict[str, str], text: str) -> None:
    """A global impression of the severity of a named symptom measures that symptom."""
    if "quality_of_life" in found and "symptom_scale" in found and re.search(r"impression of severity", text):
        found.pop("quality_of_life")


def _fatigue_impact_is_a_symptom(found: dict[str, str], text: str) -> None:
    """The Fatigue (Symptom and) Impact scales are fatigue scores, not overall impact."""
    impact_scale = "quality_of_life" in found and re.search(r"fatigue (?:symptom and )?impact", text)
    if impact_scale and not re.search(r"quality of life|qol|msis|multiple sclerosis impact scale", text):
        found.pop("quality_of_life")


def _vaccine_antibodies(found: dict[str, str]) -> None:
    """Antibodies or T cells measured after a vaccine are the vaccine response, not a disease biomarker."""
    if "vaccine_response" in found:
        found.pop("fluid_biomarker", None)
        if found.get("pharmacology", "") in ("", "depletion"):
            found.pop("pharmacology", None)


_DRUG_ANTIBODIES = re.compile(
    r"immunogenicity|anti[- ]?drug|\bad?as?\b|\badab\b|\bnabs?\b|neutrali[sz]ing|antibodies against"
    r"|anti-\S+ antibod"
)
_DISEASE_ANALYTES = re.compile(
    r"neurofilament|\bs?nfl\b|\bgfap\b|cytokin|interleukin|\bil-?\d|osteopontin|chitinase|metalloproteinase"
    r"|butyrate|scfa|short chain|oligoclonal|free light chain|\bigg\b"
)


PK_WORDS = r"concentration|\bpk\b|pharmacokinetic|\bauc|c ?max"


def _drug_antibodies_and_levels(found: dict[str, str], text: str) -> None:
    """Anti-drug antibodies and drug concentrations are pharmacology; disease analytes stay biomarkers."""
    if "pharmacology" not in found:
        return
    if _DRUG_ANTIBODIES.search(text):
        found.pop("fluid_biomarker", None)
        if not re.search(r"adverse|safety|tolerab", text):
            found.pop("safety", None)
        return
    if _DISEASE_ANALYTES.search(text) and re.search(r"concentration|level|saturation", found["pharmacology"]):
        found.pop("pharmacology")
    elif not _DISEASE_ANALYTES.search(text) and re.search(PK_WORDS, found["pharmacology"]):
        found.pop("fluid_biomarker", None)


_CELLS = re.compile(
    r"\b[tb][- ]?cells?\b|lymphocyte|monocyte|\bnk[- ]?cells?|natural killer|immune[- ]cells?|\bcd\d+"
    r"|immune (?:status|profile|function|system|phenotype)|\btregs?\b"
)
_DRUG_CONTEXT = re.compile(
    r"treated|post[- ]treatment|after (?:\w+ )?(?:treatment|dosing|infusion|administration)|under treatment"
    r"|study drug|\bdrug\b|investigational|pharmacodynamic|\bpd\b|depletion|repopulation|reconstitution"
)


def _drug_effect_cell_counts(found: dict[str, str], text: str, drug_words: Sequence[str]) -> None:
    """Immune-cell counts measured to show what a drug does are pharmacology, not a disease biomarker."""
    if "fluid_biomarker" not in found:
        return
    cells = _CELLS.search(text)
    named_drug = next((word for word in drug_words if word in text), None)
    if cells is not None and not re.search(r"neurofilament|\bs?nfl\b|\bgfap\b", text):
        if named_drug or _DRUG_CONTEXT.search(text):
            found.pop("fluid_biomarker")
            found.setdefault("pharmacology", cells.group(0))
        return
    # activity of the named study drug in CSF or blood (not a disease analyte) is what the drug does
    if named_drug and not _DISEASE_ANALYTES.search(text) and "biomarker" not in text:
        found.pop("fluid_biomarker")
        found.setdefault("pharmacology", named_drug)


_BATTERIES = re.compile(r"neuro-?qol|\bpromis\b")


def _instrument_domains_over_batteries(found: dict[str, str]) -> None:
    """A domain of a general battery (PROMIS Fatigue, Neuro-QoL Upper Extremity) measures that domain."""
    if "quality_of_life" in found and _BATTERIES.search(found["quality_of_life"]) and len(found) > 1:
        found.pop("quality_of_life")


def _injection_site_pain_is_safety(found: dict[str, str], text: str) -> None:
    if (
        "safety" in found
        and "symptom_scale" in found
        and re.search(r"injection[- ]site|site of (?:the )?inj", text)
    ):
        found.pop("symptom_scale")


def _cognitive_fatigue_is_fatigue(found: dict[str, str], text: str) -> None:
    if "cognition" in found and "symptom_scale" in found and re.search(r"cognitive fatigue", text):
        found.pop("cognition")


def _hospital_stay_for_relapse(found: dict[str, str], text: str) -> None:
    """Hospitalisation or steroids for a relapse measure the relapse, not a harm of the treatment."""
    if "relapse" in found and "safety" in found and re.search(r"hospitali[sz]\w* for (?:a )?relapse", text):
        found.pop("safety")


def _intervention_words(record: StudyRecord) -> tuple[str, ...]:
    """Drug names of the study (lower case, at least 5 letters), to tell drug effects in measures."""
    words: list[str] = []
    for intervention in record.interventions:
        if intervention.type not in ("DRUG", "BIOLOGICAL", "GENETIC", "COMBINATION_PRODUCT"):
            continue
        for name in (intervention.name, *intervention.other_names):
            for token in re.findall(r"[a-z][a-z0-9-]{4,}", normalise(name)):
                if token not in _GENERIC_WORDS:
                    words.append(token)
    return tuple(dict.fromkeys(words))


_GENERIC_WORDS = frozenset(
    {
        "placebo",
        "tablet",
        "tablets",
        "capsule",
        "capsules",
        "injection",
        "infusion",
        "standard",
        "therapy",
        "treatment",
        "oral",
        "dose",
        "doses",
        "high-dose",
        "low-dose",
        "matching",
        "vitamin",
        "group",
        "control",
        "saline",
        "solution",
        "cells",
        "stem",
        "cell",
    }
)


def _load_keys() -> tuple[str, ...]:
    from tracker.taxonomy import load_taxonomy

    return tuple(item.key for item in load_taxonomy().endpoints)


ENDPOINT_KEYS = _load_keys()
_KEY_ORDER = {key: index for index, key in enumerate(ENDPOINT_KEYS)}
assert set(_STRONG) == set(ENDPOINT_KEYS), "endpoint rules and taxonomy keys disagree"

__all__ = [
    "ENDPOINT_KEYS",
    "ENDPOINT_RULES_REVISION",
    "classify_endpoints",
    "classify_outcome",
    "trial_endpoints",
]
