"""Commands: classify, override."""

from __future__ import annotations

import json
from pathlib import Path

import click

from tracker.cli.app import AppContext, main, pass_app


@main.command()
@click.option("--all", "all_studies", is_flag=True, help="Reclassify every study (after a taxonomy change).")
@click.option(
    "--evaluate",
    "labels_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    metavar="LABELS.jsonl",
    help="Score the classifier against gold labels (nct_id with relevance, mechanisms, phenotypes "
    "and/or endpoint primary, secondary).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_app
def classify(app: AppContext, all_studies: bool, labels_path: Path | None, as_json: bool) -> None:
    """Classify new and changed studies by relevance, mechanism, MS phenotype, endpoints and
    eligibility facets.

    Sync and import already do this for what they land; run it with --all after a taxonomy or
    dictionary change. With --evaluate, the labelled studies are classified from the database and
    compared with the labels (overrides do not count).
    """
    from tracker.classify.evaluate import evaluate_file, format_evaluation
    from tracker.classify.rules import CLASSIFIER_VERSION
    from tracker.classify.store import classify_pending
    from tracker.locks import INGEST, Lease
    from tracker.store import one_shot_process
    from tracker.workers import worker_count

    engine = app.engine()
    if labels_path is not None:
        if all_studies:
            with Lease(engine, INGEST, purpose="classify"):
                classify_pending(engine, all_studies=True)
        evaluation = evaluate_file(engine, labels_path)
        if as_json:
            click.echo(json.dumps(evaluation.to_dict(), indent=2))
        else:
            click.echo(format_evaluation(evaluation))
        return
    # Labels have one writer at a time, like studies.
    with one_shot_process(), Lease(engine, INGEST, purpose="classify"):
        count = classify_pending(engine, all_studies=all_studies, workers=worker_count(app.settings.workers))
    if as_json:
        click.echo(json.dumps({"classified": count, "classifier_version": CLASSIFIER_VERSION}))
    else:
        click.echo(
            f"Classified {count} stud{'y' if count == 1 else 'ies'} (classifier {CLASSIFIER_VERSION})."
        )


@main.command()
@click.argument("registration_id")
@click.option("--mechanism", "mechanisms", metavar="KEY,…", help="Mechanism keys (comma-separated).")
@click.option("--phenotype", "phenotypes", metavar="KEY,…", help="Phenotype keys (comma-separated).")
@click.option("--relevance", metavar="KEY", help="ms, ms_plus or not_ms.")
@click.option("--endpoint-primary", metavar="KEY,…", help="Endpoint keys of the primary outcomes.")
@click.option("--endpoint-secondary", metavar="KEY,…", help="Endpoint keys of the secondary outcomes.")
@click.option(
    "--facet",
    "facets",
    multiple=True,
    metavar="NAME=VALUE,…",
    help="An eligibility facet (age_min, age_max, sex, healthy_volunteers, edss_min, edss_max, "
    "prior_treatment, excluded_therapy); repeatable; NAME= clears it.",
)
@click.option("--note", metavar="TEXT", help="Why (required unless --clear).")
@click.option("--clear", is_flag=True, help="Remove the override and restore the automatic labels.")
@pass_app
def override(
    app: AppContext,
    registration_id: str,
    mechanisms: str | None,
    phenotypes: str | None,
    relevance: str | None,
    endpoint_primary: str | None,
    endpoint_secondary: str | None,
    facets: tuple[str, ...],
    note: str | None,
    clear: bool,
) -> None:
    """Correct a study's labels by hand; the correction wins over the automatic labels and survives
    re-sync and reclassification. Only the dimensions given are overridden."""
    from tracker.classify.store import clear_override, parse_facets, parse_key_list, set_override

    engine = app.engine()
    if clear:
        given = (mechanisms, phenotypes, relevance, endpoint_primary, endpoint_secondary)
        if any(value is not None for value in given) or facets:
            raise click.UsageError("--clear takes no label options")
        removed = clear_override(engine, registration_id)
        nct = registration_id.strip().upper()
        click.echo(f"Override of {nct} removed." if removed else f"{nct} had no override.")
        return
    saved = set_override(
        engine,
        registration_id,
        mechanisms=parse_key_list(mechanisms),
        phenotypes=parse_key_list(phenotypes),
        relevance=relevance.strip() if relevance else None,
        endpoints_primary=parse_key_list(endpoint_primary),
        endpoints_secondary=parse_key_list(endpoint_secondary),
        eligibility=parse_facets(facets) if facets else None,
        note=note or "",
    )
    parts = [
        f"{name}={','.join(value) if isinstance(value, list) else value}"
        for name, value in (
            ("relevance", saved.relevance),
            ("mechanisms", saved.mechanisms),
            ("phenotypes", saved.phenotypes),
            ("endpoints_primary", saved.endpoints_primary),
            ("endpoints_secondary", saved.endpoints_secondary),
        )
        if value is not None
    ]
    parts += [f"{name}={','.join(values)}" for name, values in (saved.eligibility or {}).items()]
    click.echo(f"Override of {saved.registration_id} saved (manual): {'; '.join(parts)}.")


@main.command()
@click.argument(
    "dimension",
    required=False,
    metavar="[mechanism|phenotype|relevance|status|phase|study-type|endpoint|primary-endpoint]",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object: dimension → keys.")
@pass_app
def keys(app: AppContext, dimension: str | None, as_json: bool) -> None:
    """List the keys a filter flag takes, with their labels and how many stored trials carry each.

    Without DIMENSION, every dimension. Keys are matched in any case (--phase phase3 is PHASE3).
    """
    from tracker.keys import KEY_DIMENSIONS, dimension_named, format_keys, list_keys

    chosen = [dimension_named(dimension)] if dimension else list(KEY_DIMENSIONS.values())
    listing = list_keys(app.reader(), chosen)
    if as_json:
        click.echo(
            json.dumps({name: [row.to_dict() for row in rows] for name, rows in listing.items()}, indent=2)
        )
    else:
        click.echo(format_keys(listing))
