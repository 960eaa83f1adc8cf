"""The classifier: one parsed study in, its relevance, mechanisms and phenotypes (with evidence) out.

Pure functions over `StudyRecord`; no database, no I/O beyond reading the packaged dictionary once.
The rules follow the taxonomy specification (taxonomy.md); each is small and named after what it decides.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

from tracker.classify import endpoints
from tracker.classify.dictionary import NO_KEY, Agent, Dictionary, load_dictionary, normalise
from tracker.classify.eligibility import classify_eligibility
from tracker.classify.endpoints import classify_endpoints, trial_endpoints
from tracker.classify.gate import GatedPattern, gated
from tracker.classify.model import (
    ClassificationResult,
    Evidence,
    MechanismLabel,
    PhenotypeLabel,
    RelevanceLabel,
)
from tracker.classify.roles import TITLE_FIELDS, RoleCue, arm_group_role, marked_comparator, title_roles
from tracker.classify.version import RULES_REVISION, classifier_version  # noqa: F401  (re-exported)
from tracker.ctgov.parse import Intervention, StudyRecord
from tracker.taxonomy import load_taxonomy

CLASSIFIER_VERSION = classifier_version()

CELL_THERAPY_KEYS = ("car_t", "ahsct", "msc_cell_therapy")  # priority for conditioning agents
_NAME_SPLIT = re.compile(
    r"\s*(?:[;+&]|,(?!\d)|(?<!\d)/|/(?!\d)|\bplus\b|\band\b|\bwith\b|\bvs\.?|\bversus\b|\bor\b|\bthen\b"
    r"|\bfollowed by\b)\s*"
)
_PARENTHESES = re.compile(r"\([^)]*\)|\[[^\]]*\]")
_OBSERVATIONAL = "OBSERVATIONAL"


@dataclass(frozen=True, slots=True)
class _Text:
    field: str
    text: str  # original
    norm: str  # normalised (lower case)
    ms: re.Match[str] | None  # MS words, once other "... sclerosis" diseases are taken out


# ---------------------------------------------------------------------------------------------------------
# Entry point


def classify_study(record: StudyRecord) -> ClassificationResult:
    """Classify one study. Deterministic; reads only the record."""
    texts = list(_relevance_texts(record))
    relevance = classify_relevance(record, texts)
    mechanisms = classify_mechanisms(record)
    phenotypes = classify_phenotypes(record, texts) if relevance.key in ("ms", "ms_plus") else ()
    outcome_endpoints = classify_endpoints(record)
    return ClassificationResult(
        relevance=relevance,
        mechanisms=mechanisms,
        phenotypes=phenotypes,
        multi_disease=relevance.key == "ms_plus",
        endpoints=trial_endpoints(outcome_endpoints),
        outcome_endpoints=outcome_endpoints,
        eligibility=classify_eligibility(record),
    )


# ---------------------------------------------------------------------------------------------------------
# Relevance

_MS_WORDS = gated(
    r"multiple\s*scler\w*|mult\w*\s+scle?ro?sis|sclerosis,?\s*multiple"
    r"|multiple\s+progressive\s+primary\s+sclerosis|scl[eé]rose en plaques|esclerosis m[uú]ltiple"
    r"|multiple sklerose|sclerosi multipla|stwardnienie rozsiane"
    r"|clinically[\s-]*isolated[\s-]*syndrome|radiologically[\s-]*isolated|optic neuritis"
    r"|first (?:clinical )?demyelinating (?:event|episode|attack)"
    r"|demyelinating disease of the central nervous system"
)
_MS_NAMED = re.compile(r"scler|^ms$|^rrms$|^rms$|^spms$|^ppms$")
# Abbreviations count only as written in capitals ("MS" is not "ms", "CIS" is not "cis-").
_MS_ABBREVIATIONS = gated(r"(?<![A-Za-z])(?:MS|RRMS|RMS|SPMS|nrSPMS|PPMS|POMS|CIS|RIS|pwMS|PwMS)(?![A-Za-z])")
_OTHER_DISEASES = gated(
    r"(?<![a-z])(?:neuromyelitis|\bnmosd\b|\bnmo\b|\bmogad\b|mog[\s-]*(?:antibody|igg)|myasthenia|\bcidp\b"
    r"|chronic inflammatory demyelinating polyneuropathy|guillain|\bstrokes?\b|parkinson|alzheimer|dementia"
    r"|amyotrophic|\bals\b|motor neurone? disease|epilep\w*|seizures?|spinal cord injur\w*|\bsci\b(?!-)"
    r"|traumatic brain injur\w*|brain injur\w*|cerebral palsy|muscular dystroph\w*|post[\s-]*polio"
    r"|rheumatoid arthritis|lupus|\bsle\b|psoria\w*|crohn|colitis|inflammatory bowel|\bibd\b"
    r"|(?<!non-)(?<!non )diabet\w*"
    r"|cancer|tumou?rs?\b(?! necrosis)|lymphoma|leuka?emia|myeloma|carcinoma|\bhiv\b|hepatitis"
    r"|fibromyalgia|migraines?"
    r"|acute disseminated encephalomyelitis|myalgic encephalomyelitis|\badem\b|autoimmune encephalitis"
    r"|sarcoidosis|uveitis|huntington|friedreich"
    r"|spinocerebellar"
    r"|peripheral neuropathy|polyneuropathy|sj[oö]gren|vasculitis|beh[cç]et|spondyl\w*|systemic sclerosis"
    r"|scleroderma|tuberous sclerosis|myositis|thyroiditis|graves|addison|c[o]?eliac|autism|schizophren\w*"
    r"|bipolar|post[\s-]*traumatic stress|\bptsd\b|tourette|glaucoma|sickle cell|chronic fatigue syndrome"
    r"|myalgic|lyme|long covid|post[\s-]*acute covid|congenital|lateral sclerosis|transverse myelitis"
    r"|susac|neurosarcoidosis|lymphangioleiomyomatosis|angiofibroma|arthritis|asthma|copd|heart failure"
    r"|kidney disease|renal disease|narcolepsy|dystonia|essential tremor"
    r"|polymyalgia|pemphig\w*|nephrotic|glomerul\w*|multiple system atrophy"
    r"|progressive supranuclear|leukodystroph\w*|ischa?emic optic neuropathy|\bnaion\b|ehlers|\bencephalitis"
    r"|\bmyelitis|\badhd\b|(?:opioid|alcohol|substance|cannabis) (?:dependence|use disorders?)|blistering)"
)
# (Symptoms an MS population has too, such as spasticity, hemiparesis or pain, are left out above.)
# "... in MS and other autoimmune diseases", "... for neurological diseases" (titles only)
_OTHER_DISEASE_GROUPS = gated(
    r"(?:rare|chronic|neurological|neurologic|neurodegenerative|autoimmune|immune[\s-]mediated|inflammatory"
    r"|neuroinflammatory|brain) (?:\w+ )?(?:diseases|disorders|conditions)\b"
    r"|persons? with disabilities|people with disabilities"
)
# Names of non-MS diseases that contain "sclerosis", removed before looking for MS words.
_NOT_MS_SCLEROSIS = gated(
    r"tuberous sclerosis|amyotrophic lateral sclerosis|(?:primary )?lateral sclerosis|systemic sclerosis"
    r"|hippocampal sclerosis|mesial temporal sclerosis|\w*sclerosing\b|glomerulosclerosis|arteriosclerosis"
    r"|atherosclerosis|otosclerosis|lichen sclerosus"
    r"|(?:arterio|athero|oto|nephro|glomerulo|osteo|phlebo|neuro)sclerosis"
)


def classify_relevance(record: StudyRecord, texts: Sequence[_Text] | None = None) -> RelevanceLabel:
    """ms when the study enrols people with MS (or CIS/RIS/MS optic neuritis); ms_plus when other
    diseases too; not_ms when no MS population is named."""
    texts = list(_relevance_texts(record)) if texts is None else texts
    ms_evidence = _ms_evidence(texts)
    if any(t.field in _TITLE_FIELDS and _NEGATED_MS.search(t.norm) for t in texts):
        # the title says the optic neuritis (or CIS) enrolled is not MS-related
        ms_evidence = [e for e in ms_evidence if _MS_NAMED.search(e.text.lower())]
    if not ms_evidence:
        other = _first_matches(texts, _NOT_MS_SCLEROSIS, limit=2) or _first_matches(texts, _OTHER_DISEASES, 2)
        return RelevanceLabel("not_ms", tuple(other))
    # "Obstructive sleep apnea in MS patients" names a comorbidity of the MS population, not another cohort
    listed = [t for t in texts if t.field.startswith(("conditions", "keywords", "condition_mesh"))]
    others = [t for t in listed if not t.ms]
    others += [t for t in texts if t.field.endswith("title")]
    other_evidence = _other_disease_evidence(others, limit=3)
    if all(e.field.startswith("keywords") for e in ms_evidence) and any(
        e.field.startswith("conditions") for e in other_evidence
    ):
        # MS named only among keywords of a trial whose conditions are other diseases (FTY720 in asthma)
        return RelevanceLabel("not_ms", tuple(other_evidence))
    other_evidence += _first_matches(
        [t for t in texts if t.field.endswith("title")], _OTHER_DISEASE_GROUPS, limit=1
    )
    if other_evidence:
        return RelevanceLabel("ms_plus", tuple(ms_evidence[:2] + other_evidence))
    return RelevanceLabel("ms", tuple(ms_evidence[:3]))


# "Spinal cord injuries in patients with MS", "Epilepsy in MS": a title naming what happens to the MS
# population, not a second cohort.
_WITHIN_THE_MS_POPULATION = gated(
    r"[\w\s'-]{0,25}?\bin (?:(?:patients|people|persons|subjects|individuals|adults|children|participants)"
    r" (?:with|suffering from|affected by|living with) )?(?:[\w-]+ ){0,2}(?:multiple sclerosis|ms)\b"
)


def _other_disease_evidence(texts: Sequence[_Text], limit: int) -> list[Evidence]:
    """The first other-disease words of each text (up to `limit` texts), skipping those a title places
    within the MS population."""
    found = []
    for item in texts:
        in_title = item.field.endswith("title")
        for match in _OTHER_DISEASES.finditer(item.norm):
            if in_title and _WITHIN_THE_MS_POPULATION.match(item.norm, match.end()):
                continue
            found.append(Evidence(item.field, match.group(0)))
            break
        if len(found) >= limit:
            break
    return found


def _relevance_texts(record: StudyRecord) -> Iterable[_Text]:
    for i, value in enumerate(record.conditions):
        yield _text(f"conditions[{i}]", value)
    for i, value in enumerate(record.condition_mesh_terms):
        yield _text(f"condition_mesh_terms[{i}]", value)
    for i, value in enumerate(record.keywords):
        yield _text(f"keywords[{i}]", value)
    for name in ("brief_title", "official_title", "acronym"):
        value = getattr(record, name)
        if value:
            yield _text(name, value)


# "Optic neuritis not related to multiple sclerosis", "non-MS controls": MS named only to be excluded.
_NEGATED_MS = gated(
    r"(?:not|non|unrelated)[\s-]+(?:related |associated |due |linked |secondary )?(?:to |with )?"
    r"(?:multiple sclerosis|ms)\b|other than (?:multiple sclerosis|ms)\b|without (?:multiple sclerosis|ms)\b"
)


def _without_other_scleroses(norm: str) -> str:
    if "scler" not in norm and " ms" not in norm:
        return norm
    return _NEGATED_MS.sub(" ", _NOT_MS_SCLEROSIS.sub(" ", norm))


def _ms_evidence(texts: Sequence[_Text]) -> list[Evidence]:
    found = []
    for item in texts:
        match = item.ms
        if match:
            found.append(Evidence(item.field, match.group(0)))
            continue
        if item.field == "acronym":
            continue
        match = _MS_ABBREVIATIONS.search(item.text)
        if match:
            found.append(Evidence(item.field, match.group(0)))
    return found


# ---------------------------------------------------------------------------------------------------------
# Phenotypes

_RMS = gated(
    r"relaps\w*[\s-]*remit\w*|remitt\w*[\s-]*relaps\w*|relapsing[\s-]+(?:forms?|onset|type)"
    r"|relapsing (?:forms? of )?(?:multiple\s*scler\w*|ms)\b|(?:multiple sclerosis|ms) with relapses"
    r"|multiple sclerosis,? relapsing|\brr[\s-]?ms\b|highly active (?:relapsing )?(?:multiple sclerosis|ms)\b"
    r"|relapsing and (?:progressive|secondary)|relapsing or (?:progressive|secondary)"
)
_NON_RELAPSING = gated(r"non[\s-]*(?:relapsing|active)\w*")
_RMS_ABBREVIATIONS = gated(r"(?<![A-Za-z])(?:RMS|RRMS|RR-MS)(?![A-Za-z])")
# Active or relapsing SPMS is counted among the relapsing forms, in the sponsors' own words.
_ACTIVE_SPMS = gated(
    r"(?<!non-)(?<!non )(?<!in)(?<![a-z])(?:active|relapsing)[\s-]+"
    r"(?:secondary[\s-]*progressive(?: multiple sclerosis| ms)?|spms)"
    r"|(?:spms|secondary[\s-]*progressive (?:multiple sclerosis|ms)) with (?:superimposed )?relapses"
)
_RELAPSE_TREATMENT = gated(
    r"(?<!first )(?<!first clinical )(?<!no )(?<!without )"
    r"\b(?:relapses?|exacerbations?|attacks?|flares?)\b(?![\s-]free)"
    r"|acute (?:multiple sclerosis|ms)\b"
)
_SPMS = gated(
    r"secondary[\s-]*progressive|\bnr[\s-]?spms\b|\bspms\b|non[\s-]*relapsing (?:secondary|spms)"
    r"|multiple sclerosis,? secondary progressive|secondarily progressive"
)
_PPMS = gated(
    r"primary[\s-]*progressive|progressive[\s-]*primary|\bppms\b|multiple sclerosis,? primary progressive"
)
_PROGRESSIVE = gated(
    r"progressive[\s-]+(?:forms?[\s-]+of[\s-]+|onset[\s-]+|course[\s-]+)?(?:multiple\s*scler\w*|ms)\b"
    r"|chronic[\s-]*progressive|multiple sclerosis,? (?:chronic )?progressive|progressive forms?"
    r"|progressive phase|progressive disease course"
)
# ("PMS" is left out on purpose: in titles it is as often "post-marketing surveillance")
_PROGRESSIVE_ABBREVIATIONS = gated(r"(?<![A-Za-z])(?:PwPMS|pwPMS)(?![A-Za-z])")
_CIS = gated(
    r"clinically[\s-]*isolated[\s-]*syndrome"
    r"|first (?:clinical )?(?:demyelinating|neurologic(?:al)?) (?:event|episode|attack|symptom)s?"
    r"|first[\s-]+(?:acute[\s-]+)?(?:clinical[\s-]+)?(?:event|episode|attack)s?\b"
    r"|single (?:clinical )?demyelinating (?:event|episode)"
    r"|high risk (?:of|for) (?:developing |converting to )?(?:multiple sclerosis|ms)\b"
    r"|(?:acute|first|isolated|monosymptomatic) (?:\w+ ){0,3}optic neuritis"
    r"|monosymptomatic|first demyelinating"
)
# "Extending the time to a first attack" (a RIS or prevention trial) names an outcome, not a CIS population.
_FIRST_EVENT_AS_OUTCOME = gated(
    r"(?:time to|delay(?:s|ing)?(?: of)?|prevent(?:s|ing|ion of)?|until|before) (?:the |a |an )?first\b"
)
# Plain "optic neuritis" means CIS where it names who is enrolled (conditions, titles), not as a keyword
# of an RMS trial measuring the optic nerve.
_OPTIC_NEURITIS = re.compile(r"optic neuritis")
_CIS_ABBREVIATIONS = gated(r"(?<![A-Za-z])CIS(?![A-Za-z])")
_RIS = gated(r"radiologically[\s-]*isolated|radiological(?:ly)? isolated")
_RIS_ABBREVIATIONS = gated(r"(?<![A-Za-z])RIS(?![A-Za-z])")
_PEDIATRIC = gated(
    r"p(?:a)?ediatric|juvenile|\bpoms\b|childhood[\s-]onset|under (?:the age of )?18"
    r"|\b(?:children|adolescents?|youths?|teenagers|minors|kids)"
    r"(?: and (?:adolescents|young adults|teenagers|youths?))?"
    r" (?:with|who have|having|suffering|affected|diagnosed|living with|aged)\b"
)
_PEDIATRIC_WORD = gated(r"p(?:a)?ediatric|juvenile|\bpoms\b")
# Cheap first look: an item without any of these stems names no phenotype, so no need to run each rule.
_PHENOTYPE_CUES = gated(
    r"relaps|remit|rms|progress|spms|ppms|\bpms|isolated|\bcis\b|\bris\b|optic|demyelinat|first|monosympt"
    r"|high risk|ediatric|child|adolescen|juvenile|poms|teen|youth|under (?:the age of )?18"
)
_EXCLUSION_HEADER = re.compile(
    r"exclusion criteria|key exclusion|exclusion:|\bexclusions?\b\s*\n", re.IGNORECASE
)
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(year|month|week|day)s?", re.IGNORECASE)

# Titles name who is enrolled as strongly as conditions do (summary and eligibility text only add to them).
_TITLE_FIELDS = ("brief_title", "official_title", "acronym")


def classify_phenotypes(
    record: StudyRecord, texts: Sequence[_Text] | None = None
) -> tuple[PhenotypeLabel, ...]:
    """Every phenotype the study explicitly enrols; ms_unspecified when none is named."""
    texts = list(_phenotype_texts(record, texts))
    strong = [
        t for t in texts if t.field.startswith(("conditions", "condition_mesh")) or t.field in _TITLE_FIELDS
    ]
    strong_fields = {item.field for item in strong}
    found: dict[str, list[Evidence]] = {}

    def add(key: str, field: str, text: str) -> None:
        found.setdefault(key, []).append(Evidence(field, text))

    for item in texts:
        for key, words in _phenotype_hits(item, item.field in strong_fields):
            add(key, item.field, words)
    if not set(found) - {"pediatric"}:
        # No phenotype named, only relapse words: a trial treating or preventing relapses enrols relapsing MS.
        for item in strong + [t for t in texts if t.field.startswith("keywords")]:
            match = _RELAPSE_TREATMENT.search(item.norm)
            if match:
                add("rms", item.field, match.group(0))
                break
    pediatric_age = _pediatric_by_age(record)
    if pediatric_age:
        add("pediatric", "maximum_age", pediatric_age)
    _drop_background_mentions(found)
    _drop_spms_listed_among_relapsing_forms(found, strong)
    if "spms" in found or "ppms" in found:
        found.pop("progressive_unspecified", None)
    order = [item.key for item in load_taxonomy().phenotypes]
    labels = [PhenotypeLabel(key, tuple(_dedupe(found[key]))[:3]) for key in order if key in found]
    if not labels:
        labels = [PhenotypeLabel("ms_unspecified", ())]
    return tuple(labels)


def _phenotype_hits(item: _Text, strong: bool) -> tuple[tuple[str, str], ...]:
    """(phenotype key, words) named by one text, in the order found. Cached for short texts: conditions
    and keywords repeat across studies, and the answer depends only on the text and its kind of field."""
    if item.field in _TITLE_FIELDS:
        kind = "title"
    elif item.field.startswith(("conditions", "keywords")):
        kind = "listed"
    else:
        kind = "other"
    args = (item.text, item.norm, item.ms is not None, strong, kind)
    if len(item.text) > CACHED_TEXT_LENGTH:
        return _text_phenotype_hits.__wrapped__(*args)
    return _text_phenotype_hits(*args)


@lru_cache(maxsize=65536)
def _text_phenotype_hits(
    text: str, norm: str, ms: bool, strong: bool, kind: str
) -> tuple[tuple[str, str], ...]:
    """The phenotype rules over one text (`norm` its normalised form, `ms` whether it names MS); `strong`
    for a condition or title, `kind` "title", "listed" (a condition or keyword) or "other"."""
    if not _PHENOTYPE_CUES.search(norm):
        return ()
    hits: list[tuple[str, str]] = []
    without_active_spms = norm
    for match in _ACTIVE_SPMS.finditer(norm):
        hits.append(("rms", match.group(0)))
        without_active_spms = without_active_spms.replace(match.group(0), " ")
    texts_for = {
        "spms": without_active_spms,
        "rms": _NON_RELAPSING.sub(" ", norm),
        "cis": _FIRST_EVENT_AS_OUTCOME.sub(" ", norm),
    }
    for regex, key in ((_RMS, "rms"), (_SPMS, "spms"), (_PPMS, "ppms"), (_CIS, "cis"), (_RIS, "ris")):
        match = regex.search(texts_for.get(key, norm))
        if match:
            hits.append((key, match.group(0)))
    for regex, key in (
        (_RMS_ABBREVIATIONS, "rms"),
        (_CIS_ABBREVIATIONS, "cis"),
        (_RIS_ABBREVIATIONS, "ris"),
    ):
        match = regex.search(text)
        if match:
            hits.append((key, match.group(0)))
    if strong:
        match = _OPTIC_NEURITIS.search(norm)
        if match:
            hits.append(("cis", match.group(0)))
    specific_progressive = _SPMS.sub(" ", _PPMS.sub(" ", norm))
    match = _PROGRESSIVE.search(specific_progressive) or _PROGRESSIVE_ABBREVIATIONS.search(text)
    if match:
        hits.append(("progressive_unspecified", match.group(0)))
    if _may_name_pediatric_ms(kind, norm, ms):
        match = _PEDIATRIC.search(norm) or _PEDIATRIC_WORD.search(norm)
        if match:
            hits.append(("pediatric", match.group(0)))
    return tuple(hits)


def _may_name_pediatric_ms(kind: str, norm: str, ms: bool) -> bool:
    """Titles, or a condition/keyword that is about MS or is just the word ("Pediatric"); not
    "Celiac disease in children" or "Pediatric acute-onset neuropsychiatric syndrome"."""
    if kind == "title":
        return True
    if kind != "listed":
        return False
    if _OTHER_DISEASES.search(norm):
        return False
    return len(norm.split()) <= 2 or ms


_DESCRIPTIVE_FIELDS = ("brief_summary", "eligibility_criteria.inclusion")


def _drop_background_mentions(found: dict[str, list[Evidence]]) -> None:
    """Summary and eligibility words count only when conditions, titles and keywords name no disease course.

    Otherwise the other phenotypes a summary names are background ("approved for relapsing MS" in a PPMS
    trial), not who is enrolled. Paediatric onset is not a disease course, so it does not decide."""
    named = any(
        evidence.field not in _DESCRIPTIVE_FIELDS
        for key, evidence_list in found.items()
        if key != "pediatric"
        for evidence in evidence_list
    )
    if not named:
        return
    for key in list(found):
        kept = [evidence for evidence in found[key] if evidence.field not in _DESCRIPTIVE_FIELDS]
        if kept:
            found[key] = kept
        else:
            del found[key]


def _drop_spms_listed_among_relapsing_forms(found: dict[str, list[Evidence]], strong: list[_Text]) -> None:
    """A relapsing-MS trial that names SPMS only in keywords or summary means the active SPMS among its
    relapsing forms, not a separate SPMS population."""
    if "spms" not in found or "rms" not in found:
        return
    strong_fields = {item.field for item in strong}
    if any(evidence.field in strong_fields for evidence in found["spms"]):
        return
    if any(evidence.field in strong_fields for evidence in found["rms"]):
        found.pop("spms")


def _phenotype_texts(record: StudyRecord, texts: Sequence[_Text] | None) -> Iterable[_Text]:
    yield from _relevance_texts(record) if texts is None else texts
    if record.brief_summary:
        yield _text("brief_summary", record.brief_summary)
    inclusion = inclusion_criteria(record.eligibility_criteria)
    if inclusion:
        yield _text("eligibility_criteria.inclusion", inclusion)


def inclusion_criteria(criteria: str | None) -> str | None:
    """The eligibility text before the exclusion criteria: words after it describe who is kept out."""
    if not criteria:
        return None
    match = _EXCLUSION_HEADER.search(criteria)
    return criteria[: match.start()] if match else criteria


def _pediatric_by_age(record: StudyRecord) -> str | None:
    """Maximum age under 18 years means a paediatric population."""
    if not record.maximum_age:
        return None
    match = _AGE.match(record.maximum_age)
    if not match:
        return None
    value, unit = float(match.group(1)), match.group(2).lower()
    years = value if unit == "year" else value / {"month": 12, "week": 52, "day": 365}[unit]
    return record.maximum_age if years < 18 else None


# ---------------------------------------------------------------------------------------------------------
# Mechanisms


@dataclass(frozen=True, slots=True)
class _Hit:
    key: str  # taxonomy key, NO_KEY, or "conditioning:<fallback key>"
    field: str
    text: str
    conditioning: bool = False
    prophylaxis: bool = False
    fallback: bool = False  # named by the intervention type only: nothing in the dictionary matched
    generic: bool = False  # named by a class word only ("device", "programme", "training")


def classify_mechanisms(record: StudyRecord) -> tuple[MechanismLabel, ...]:
    """Union of the interventions' mechanism keys, each with its role and evidence.

    `none` when nothing is listed (or only placebo, sham, usual care)."""
    dictionary = load_dictionary()
    observational = (record.study_type or "").upper() == _OBSERVATIONAL
    per_intervention = [
        (intervention, _intervention_hits(dictionary, i, intervention, observational))
        for i, intervention in enumerate(record.interventions)
    ]
    if not observational:
        per_intervention = _named_by_the_title(dictionary, record, per_intervention)
    cell_context = _cell_therapy_context(dictionary, record, per_intervention)
    per_intervention = _devices_in_an_assessment_battery(per_intervention, observational)
    evidence: dict[str, list[Evidence]] = {}
    keys_per_intervention: list[tuple[int, Intervention, list[str]]] = []
    for index, (intervention, hits) in enumerate(per_intervention):
        keys: list[str] = []
        for hit in hits:
            key = _resolve_key(hit, cell_context)
            if key is None:
                continue
            evidence.setdefault(key, []).append(Evidence(hit.field, hit.text))
            keys.append(key)
        keys_per_intervention.append((index, intervention, keys))
    if not evidence:
        field = "interventions" if record.interventions else "interventions (none listed)"
        return (MechanismLabel("none", None, (Evidence(field, ""),)),)
    roles = _mechanism_roles(dictionary, record, keys_per_intervention)
    order = [item.key for item in load_taxonomy().mechanisms]
    return tuple(
        MechanismLabel(
            key,
            roles[key].role if key in roles else None,
            tuple(_dedupe(evidence[key]))[:4],
            (roles[key].evidence,) if key in roles else (),
        )
        for key in order
        if key in evidence
    )


def _mechanism_roles(
    dictionary: Dictionary,
    record: StudyRecord,
    keys_per_intervention: list[tuple[int, Intervention, list[str]]],
) -> dict[str, RoleCue]:
    """The role of each mechanism key: from the registry's arm groups, else from an intervention marked as
    the comparator, else from the titles. Investigational wins when a key plays both roles. Inferred
    comparator roles are dropped when they would leave the trial investigating nothing (a biosimilar
    "versus" its reference product)."""
    unassigned = {key for _, i, keys in keys_per_intervention if arm_group_role(i) is None for key in keys}
    # One class alone cannot be a comparator with nothing investigated beside it: nothing to infer.
    infer = len(unassigned) > 1
    titles = [(name, getattr(record, name)) for name in TITLE_FIELDS if getattr(record, name)]
    from_titles = title_roles(dictionary, titles) if infer and titles else {}
    registry: dict[str, RoleCue] = {}
    inferred: dict[str, RoleCue | None] = {}  # None: an intervention of that class with no role cue
    for index, intervention, keys in keys_per_intervention:
        role = arm_group_role(intervention)
        if role is not None:
            labels = ", ".join(intervention.arm_group_labels) or intervention.name
            cue = RoleCue(role, Evidence(f"interventions[{index}].arm_group_labels", labels))
            for key in keys:
                registry[key] = _stronger(registry.get(key), cue)
            continue
        if not infer:
            continue
        marked = marked_comparator(index, intervention)
        for key in keys:
            inferred[key] = _weaker_claim(inferred, key, marked or from_titles.get(key))
    roles = {key: cue for key, cue in inferred.items() if cue is not None}
    if roles and len(roles) == len(inferred) and all(c.role == "comparator" for c in roles.values()):
        roles = {}  # every class a comparator: the inference is wrong (a biosimilar "versus" its original)
    return {**roles, **registry}


def _weaker_claim(inferred: dict[str, RoleCue | None], key: str, cue: RoleCue | None) -> RoleCue | None:
    """Investigational beats no cue beats comparator: a class is a comparator only when every
    intervention of that class is one."""
    if key not in inferred:
        return cue
    current = inferred[key]
    if current is None or cue is None:
        if (current and current.role == "investigational") or (cue and cue.role == "investigational"):
            return current if current and current.role == "investigational" else cue
        return None
    return _stronger(current, cue)


def _stronger(current: RoleCue | None, new: RoleCue) -> RoleCue:
    if current is None or (current.role == "comparator" and new.role == "investigational"):
        return new
    return current


def _devices_in_an_assessment_battery(
    per_intervention: list[tuple[Intervention, list[_Hit]]], observational: bool
) -> list[tuple[Intervention, list[_Hit]]]:
    """An unnamed device listed among measurements only ("Capacity of muscular oxygen extraction" next to
    blood samples and questionnaires) measures: diagnostic, not neuromodulation."""
    named = {hit.key for _, hits in per_intervention for hit in hits if not hit.fallback}
    if observational or "diagnostic" not in named or not named <= {"diagnostic", "other"}:
        return per_intervention
    return [
        (
            intervention,
            [
                replace(hit, key="diagnostic")
                if hit.fallback and hit.key == "neuromodulation_device"
                else hit
                for hit in hits
            ],
        )
        for intervention, hits in per_intervention
    ]


def _resolve_key(hit: _Hit, cell_context: tuple[str, Evidence] | None) -> str | None:
    if cell_context is not None:
        if hit.prophylaxis:
            return None
        if hit.conditioning:
            return cell_context[0]
    if hit.key == NO_KEY:
        return None
    return hit.key


def _intervention_hits(
    dictionary: Dictionary,
    index: int,
    intervention: Intervention,
    observational: bool,
    context: _TitleContext | None = None,
) -> list[_Hit]:
    """Keys named by one intervention: its name parts and other names; the description only as a fallback,
    then what the title says the trial's unnamed intervention is, then the intervention type."""
    name_field = f"interventions[{index}].name"
    parts = [part for part in _NAME_SPLIT.split(normalise(intervention.name)) if part.strip()]
    active_parts = [part for part in parts if not _is_neutral(dictionary, part)]
    if not active_parts:
        return []  # placebo, sham, usual care, no intervention: adds nothing
    hits: list[_Hit] = []
    for part in active_parts:
        hits.extend(_part_hits(dictionary, part, name_field))
    for j, other in enumerate(intervention.other_names):
        norm = normalise(other)
        if _is_neutral(dictionary, norm):
            continue
        hits.extend(
            _agent_hit(match.agent, f"interventions[{index}].other_names[{j}]", match.text)
            for match in dictionary.specific_agents.find(norm)
        )
    if hits and not all(hit.generic for hit in hits):
        return hits
    if len(active_parts) < len(parts):
        return []  # "placebo; phase 2", "placebo cream with no active ingredients"
    if intervention.description:
        described = _part_hits(
            dictionary, normalise(intervention.description), f"interventions[{index}].description"
        )
        if described and not all(hit.generic for hit in described):
            return described
        hits = hits or described
    if dictionary.neutral_when_unmatched.search(normalise(intervention.name)):
        return []
    # A brand name, acronym or code ("MSFIT", "ADSTEP", "Formulation A") or only a class word ("device",
    # "program"): the title says what it is, within what the intervention type allows.
    titled = _titled_hits(context, intervention)
    if titled:
        return titled
    if hits:
        return hits
    fallback = dictionary.type_fallback.get((intervention.type or "OTHER").upper(), "other")
    if observational and fallback == "neuromodulation_device":
        fallback = "diagnostic"  # an observational study's device measures, it does not treat
    return [_Hit(fallback, name_field, intervention.name, fallback=True)]


@dataclass(frozen=True, slots=True)
class _TitleContext:
    """What the titles say the trial studies: named agents (not background ones) and non-drug words."""

    agents: tuple[_Hit, ...]
    terms: tuple[_Hit, ...]


# Intervention types whose unnamed interventions the title's agents name, and those its non-drug words do.
_DRUG_TYPES = frozenset({"DRUG", "BIOLOGICAL", "GENETIC", "COMBINATION_PRODUCT"})
_NON_DRUG_TYPES = frozenset({"BEHAVIORAL", "OTHER", "DEVICE", "PROCEDURE"})
_TITLE_TERM_KEYS = frozenset({"rehabilitation", "behavioural", "neuromodulation_device", "diet_supplement"})
_MEASURING_KEYS = frozenset({"diagnostic", "other"})
# "... in patients treated with natalizumab": a background therapy, not what is studied
_BACKGROUND = re.compile(
    r"(?:treated|receiving|taking|on|under|after|switch\w*|transition\w*|discontinu\w*|stopping|using|"
    r"exposed to|starting|initiating|from)\s+(?:\w+\s+){0,2}$"
)


def _named_by_the_title(
    dictionary: Dictionary, record: StudyRecord, per_intervention: list[tuple[Intervention, list[_Hit]]]
) -> list[tuple[Intervention, list[_Hit]]]:
    """Interventions named only by their type or a class word, named again with the title as context.

    Title words a named intervention already accounts for ("magnetic stimulation" beside "Functional
    magnetic stimulation") do not describe the others."""
    vague = [bool(hits) and all(hit.generic or hit.fallback for hit in hits) for _, hits in per_intervention]
    if not any(vague):
        return per_intervention
    named = {hit.key for _, hits in per_intervention for hit in hits if not (hit.generic or hit.fallback)}
    kinds = {
        (i.type or "OTHER").upper()
        for (i, _), unclear in zip(per_intervention, vague, strict=True)
        if unclear
    }
    context = _title_context(
        dictionary, record, named, agents=bool(kinds & _DRUG_TYPES), terms=bool(kinds & _NON_DRUG_TYPES)
    )
    if context is None:
        return per_intervention
    return [
        (intervention, _intervention_hits(dictionary, i, intervention, False, context) if unclear else hits)
        for i, ((intervention, hits), unclear) in enumerate(zip(per_intervention, vague, strict=True))
    ]


def _title_context(
    dictionary: Dictionary, record: StudyRecord, named: set[str], *, agents: bool, terms: bool
) -> _TitleContext | None:
    """The title's agents (when an unnamed drug needs them) and non-drug words (for an unnamed programme
    or device), leaving out words a named intervention accounts for."""
    texts = [(name, normalise(getattr(record, name))) for name in TITLE_FIELDS if getattr(record, name)]
    if not texts or not (agents or terms):
        return None
    found_agents: list[_Hit] = []
    found_terms: list[_Hit] = []
    # a title naming a drug names no programme: the specific agents are looked for either way
    matchers = (
        (dictionary.specific_agents, dictionary.generic_agents) if agents else (dictionary.specific_agents,)
    )
    for field, norm in texts:
        for matcher in matchers:
            for match in matcher.find(norm):
                at = norm.find(match.text)
                if at >= 0 and _BACKGROUND.search(norm[max(0, at - 40) : at]):
                    continue
                if match.agent.mechanism != NO_KEY and not match.agent.conditioning:
                    found_agents.append(_agent_hit(match.agent, field, match.text))
        if not terms:
            continue
        found = dictionary.specific_terms.find(norm)
        if any(term.key in _MEASURING_KEYS for term in found):
            continue  # "validity of the dual-task questionnaire": the title names what is measured
        found_terms += [
            _Hit(term.key, field, term.text)
            for term in found
            if term.key in _TITLE_TERM_KEYS and term.key not in named
        ]
    return _TitleContext(tuple(found_agents), tuple(found_terms))


def _titled_hits(context: _TitleContext | None, intervention: Intervention) -> list[_Hit]:
    """The title's agents for an unnamed drug, its non-drug words for an unnamed programme or device."""
    if context is None:
        return []
    kind = (intervention.type or "OTHER").upper()
    if kind in _DRUG_TYPES:
        return list(context.agents) if len({hit.key for hit in context.agents}) == 1 else []
    if kind in _NON_DRUG_TYPES and not context.agents:
        return list(context.terms)
    return []


def _part_hits(dictionary: Dictionary, part: str, field: str) -> list[_Hit]:
    if len(part) > CACHED_TEXT_LENGTH:  # a description: unique to its trial, not worth keeping
        return _uncached_part_hits(dictionary, part, field)
    return [replace(hit, field=field) for hit in _part_matches(dictionary, part)]


@lru_cache(maxsize=65536)
def _part_matches(dictionary: Dictionary, part: str) -> tuple[_Hit, ...]:
    """Specific agents, else word rules, else class words (generic agents), else generic word rules.
    (Cached per text: intervention names repeat across studies; the field is filled in by the caller.)"""
    return tuple(_uncached_part_hits(dictionary, part, ""))


def _uncached_part_hits(dictionary: Dictionary, part: str, field: str) -> list[_Hit]:
    agents = [_agent_hit(m.agent, field, m.text) for m in dictionary.specific_agents.find(part)]
    if agents:
        return agents
    terms = dictionary.specific_terms.find(part)
    if terms:
        keys = {term.key for term in terms}
        if keys & {"diagnostic", "other"}:
            # "physical activity questionnaire", "6 minute walk test": the activity is what is measured
            terms = [term for term in terms if term.key not in ("rehabilitation", "behavioural")]
        # "blood withdrawal": a word inside another key's longer match ("withdrawal") is part of that match
        terms = [t for t in terms if not any(t.text != o.text and t.text in o.text for o in terms)]
        return [_Hit(term.key, field, term.text) for term in terms]
    generic = [_agent_hit(m.agent, field, m.text) for m in dictionary.generic_agents.find(part)]
    if generic:
        return generic
    return [_Hit(term.key, field, term.text, generic=True) for term in dictionary.generic_terms.find(part)]


def _agent_hit(agent: Agent, field: str, text: str) -> _Hit:
    return _Hit(agent.mechanism, field, text, conditioning=agent.conditioning, prophylaxis=agent.prophylaxis)


@lru_cache(maxsize=65536)
def _is_neutral(dictionary: Dictionary, part: str) -> bool:
    """Placebo, sham, standard/usual care, no intervention, unnamed background DMTs: add nothing."""
    if dictionary.neutral_anywhere.search(part):
        return True
    stripped = _PARENTHESES.sub(" ", part)
    stripped = re.sub(r"[^a-z0-9% ]+", " ", stripped)
    stripped = re.sub(r"\b(group|arm|only|alone|therapy continuation)\b", " ", stripped)
    stripped = " ".join(stripped.split())
    return not stripped or dictionary.neutral_whole.fullmatch(stripped) is not None


def _cell_therapy_context(
    dictionary: Dictionary, record: StudyRecord, per_intervention: list[tuple[Intervention, list[_Hit]]]
) -> tuple[str, Evidence] | None:
    """The transplant or cell therapy that conditioning agents in this trial prepare, if any.

    Looked for among the interventions first, then in titles and keywords ("AHSCT with fludarabine
    conditioning" may list only fludarabine)."""
    listed = {
        hit.key: Evidence(hit.field, hit.text)
        for _, hits in per_intervention
        for hit in hits
        if hit.key in CELL_THERAPY_KEYS and not hit.conditioning
    }
    for key in CELL_THERAPY_KEYS:
        if key in listed:
            return key, listed[key]
    if not any(hit.conditioning for _, hits in per_intervention for hit in hits):
        return None
    texts = [_text(name, getattr(record, name)) for name in _TITLE_FIELDS if getattr(record, name)]
    texts += [_text(f"keywords[{i}]", value) for i, value in enumerate(record.keywords)]
    for key in CELL_THERAPY_KEYS:
        for item in texts:
            for matcher in (dictionary.specific_agents, dictionary.generic_agents):
                for match in matcher.find(item.norm):
                    if match.agent.mechanism == key and not match.agent.conditioning:
                        return key, Evidence(item.field, match.text)
    return None


# ---------------------------------------------------------------------------------------------------------
# Helpers


# Texts longer than this (summaries, eligibility criteria, descriptions) are analysed without the caches:
# each is unique to its trial, so caching them finds nothing and only holds memory, up to the caches' size
# times their length (hundreds of MB over a 100k sync). Names, conditions, keywords and titles are shorter.
CACHED_TEXT_LENGTH = 300


def _text(field: str, value: str) -> _Text:
    norm, ms = _analyse(value) if len(value) <= CACHED_TEXT_LENGTH else _analyse.__wrapped__(value)
    return _Text(field, value, norm, ms)


@lru_cache(maxsize=65536)
def _analyse(value: str) -> tuple[str, re.Match[str] | None]:
    """Normalised text and its MS words; cached because conditions and keywords repeat across studies."""
    norm = normalise(value)
    return norm, _MS_WORDS.search(_without_other_scleroses(norm))


def clear_caches() -> None:
    """Forget cached text analyses (benchmarks measure cold runs)."""
    _analyse.cache_clear()
    _part_matches.cache_clear()
    _is_neutral.cache_clear()
    _text_phenotype_hits.cache_clear()
    endpoints.clear_caches()


def _first_matches(
    texts: Sequence[_Text], regex: re.Pattern[str] | GatedPattern, limit: int
) -> list[Evidence]:
    found = []
    for item in texts:
        match = regex.search(item.norm)
        if match:
            found.append(Evidence(item.field, match.group(0)))
            if len(found) >= limit:
                break
    return found


def _dedupe(items: Iterable[Evidence]) -> list[Evidence]:
    seen: set[tuple[str, str]] = set()
    unique = []
    for item in items:
        marker = (item.field, item.text.lower())
        if marker not in seen:
            seen.add(marker)
            unique.append(item)
    return unique
