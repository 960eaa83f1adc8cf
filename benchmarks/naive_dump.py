"""The naive fetch-and-dump baseline: walk the /studies pages with httpx, json.loads each, and store
the ID, title, status and the raw JSON in one SQLite table. What a quick script would do, nothing more.

    python benchmarks/naive_dump.py BASE_URL QUERY DATABASE_FILE
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx


def walk_pages(http: httpx.Client, base_url: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The naive walk: raw pages, json.loads, follow nextPageToken."""
    later = {key: value for key, value in params.items() if key != "countTotal"}
    token = None
    while True:
        page_params = params if token is None else {**later, "pageToken": token}
        response = http.get(f"{base_url}/studies", params=page_params)
        response.raise_for_status()
        page = json.loads(response.content)
        yield page
        token = page.get("nextPageToken")
        if not token:
            return


def baseline(base_url: str, params: dict[str, Any], database: Path) -> int:
    connection = sqlite3.connect(database)
    connection.execute(
        "CREATE TABLE studies (registration_id TEXT PRIMARY KEY, title TEXT, status TEXT, raw TEXT)"
    )
    stored = 0
    with httpx.Client(timeout=60) as http:
        for page in walk_pages(http, base_url, params):
            rows = []
            for study in page["studies"]:
                protocol = study.get("protocolSection", {})
                ident = protocol.get("identificationModule", {})
                rows.append(
                    (
                        ident.get("nctId"),
                        ident.get("briefTitle"),
                        protocol.get("statusModule", {}).get("overallStatus"),
                        json.dumps(study),
                    )
                )
            connection.executemany("INSERT OR REPLACE INTO studies VALUES (?, ?, ?, ?)", rows)
            connection.commit()
            stored += len(rows)
    connection.close()
    return stored


if __name__ == "__main__":
    url, query, target = sys.argv[1:4]
    params = {"format": "json", "pageSize": 1000, "countTotal": "true", "query.cond": query}
    print(baseline(url, params, Path(target)))
