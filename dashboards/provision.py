"""Export the Grafana provisioning files, or push datasource and dashboards through Grafana's API.

The shipped YAML uses ``${SHELFSENSE_INFLUX_URL}``, ``${SHELFSENSE_INFLUX_DB}`` and
``${SHELFSENSE_DASHBOARDS_DIR}`` (Grafana expands environment variables in provisioning files);
:func:`export_provisioning` fills them in so the folder works as is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from dashboards import boards
from dashboards.panels import BOARDS

DATASOURCE_UID = boards.DATASOURCE_UID["influxql"]
DATASOURCE_NAME = "ShelfSense InfluxDB"
FOLDER_UID = "shelfsense"
FOLDER_TITLE = "ShelfSense"
IMPORT_INPUT = boards.IMPORT_INPUT["influxql"]


@dataclass(frozen=True, slots=True)
class Flux:
    """An InfluxDB 2.x datasource in Flux mode instead of 1.x InfluxQL."""

    org: str
    bucket: str = boards.DEFAULT_BUCKET
    token: str = "${SHELFSENSE_INFLUX_TOKEN}"  # provisioning: Grafana expands it from its environment


class ProvisionError(Exception):
    """Grafana refused or could not be reached; the message says which call and why."""


def _root() -> Traversable:
    return files("dashboards") / "grafana"


def load_dashboards(
    flavor: boards.Flavor = "influxql", *, bucket: str | None = None
) -> dict[str, dict[str, Any]]:
    """Dashboard JSON by name (``cold-chain``, ``site-health``), generated from :mod:`dashboards.panels`."""
    found = boards.all_boards(flavor)
    if flavor == "flux" and bucket and bucket != boards.DEFAULT_BUCKET:
        found = {name: _with_bucket(board, bucket) for name, board in found.items()}
    return found


def _with_bucket(board: dict[str, Any], bucket: str) -> dict[str, Any]:
    for variable in board["templating"]["list"]:
        if variable["name"] == "bucket":
            variable["query"] = bucket
            variable["current"] = {"text": bucket, "value": bucket}
    return board


def import_variant(name: str, flavor: boards.Flavor = "influxql") -> dict[str, Any]:
    """The board for Grafana's *Import dashboard* page: ``__inputs`` asks which InfluxDB datasource
    (and, for Flux, which bucket) to use, and every datasource reference points at that choice."""
    return boards.build(BOARDS[name], flavor, for_import=True)


def _render(relative: str, values: dict[str, str]) -> str:
    text = (_root() / "provisioning" / relative).read_text(encoding="utf-8")
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    return text


def _yaml_scalar(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid YAML double-quoted scalar


def export_provisioning(
    directory: Path, *, influx_url: str, database: str, flux: Flux | None = None
) -> list[Path]:
    """Write ``provisioning/datasources``, ``provisioning/dashboards``, ``dashboards/*.json`` (the
    boards for the provisioned datasource) and ``import/*.json`` (every board, InfluxQL and Flux,
    for Grafana's Import page)."""
    directory = directory.resolve()
    dashboards_dir = directory / "dashboards"
    values = {"SHELFSENSE_DASHBOARDS_DIR": _yaml_scalar(str(dashboards_dir))}
    written: list[Path] = []
    datasource = directory / "provisioning" / "datasources" / "shelfsense.yaml"
    provider = directory / "provisioning" / "dashboards" / "shelfsense.yaml"
    for target, text in (
        (datasource, _datasource_yaml(influx_url, database, flux)),
        (provider, _render("dashboards/shelfsense.yaml", values)),
    ):
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        written.append(target)
    flavor: boards.Flavor = "flux" if flux else "influxql"
    provisioned = load_dashboards(flavor, bucket=flux.bucket if flux else None)
    contents = {dashboards_dir / f"{name}.json": board for name, board in provisioned.items()}
    for each in boards.FLAVORS:
        suffix = "" if each == "influxql" else "-flux"
        contents |= {
            directory / "import" / f"{name}{suffix}.json": import_variant(name, each) for name in BOARDS
        }
    for target, content in contents.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(boards.dump(content), encoding="utf-8")
        written.append(target)
    return written


def _datasource_yaml(influx_url: str, database: str, flux: Flux | None) -> str:
    if flux is None:
        values = {
            "SHELFSENSE_INFLUX_URL": _yaml_scalar(influx_url),
            "SHELFSENSE_INFLUX_DB": _yaml_scalar(database),
        }
        return _render("datasources/shelfsense.yaml", values)
    model = datasource_model(influx_url, database, flux)
    # JSON is YAML: one document Grafana's provisioning reads like the shipped file
    return (
        "# Grafana datasource provisioning: InfluxDB 2.x, Flux (written by shelfsense dashboards export)\n"
        + json.dumps({"apiVersion": 1, "datasources": [{**model, "editable": False}]}, indent=2)
        + "\n"
    )


def datasource_model(influx_url: str, database: str, flux: Flux | None = None) -> dict[str, Any]:
    """The datasource as Grafana's HTTP API takes it (same content as the provisioning YAML)."""
    model: dict[str, Any] = {
        "uid": DATASOURCE_UID,
        "name": DATASOURCE_NAME,
        "type": "influxdb",
        "access": "proxy",
        "url": influx_url,
        "isDefault": False,  # the boards name it by uid; the site's default stays what it was
        "jsonData": {"dbName": database, "httpMode": "POST", "timeInterval": "10s"},
    }
    if flux is not None:
        model |= {
            "uid": boards.DATASOURCE_UID["flux"],
            "name": DATASOURCE_NAME + " (Flux)",
            "jsonData": {
                "version": "Flux",
                "organization": flux.org,
                "defaultBucket": flux.bucket,
                "timeInterval": "10s",
            },
            "secureJsonData": {"token": flux.token},
        }
    return model


def push_to_grafana(
    grafana_url: str,
    token: str,
    *,
    influx_url: str,
    database: str,
    flux: Flux | None = None,
    timeout_s: float = 10.0,
) -> dict[str, Any]:
    """Create or update the datasource, the folder and every dashboard; returns what was done."""
    from grafana_client import GrafanaApi
    from grafana_client.client import GrafanaClientError, GrafanaException
    from niquests.exceptions import RequestException

    api = GrafanaApi.from_url(grafana_url, credential=token, timeout=timeout_s)
    step = "connect"
    try:
        step = "datasource"
        model = datasource_model(influx_url, database, flux)
        uid = model["uid"]
        try:
            api.datasource.get_datasource_by_uid(uid)
        except GrafanaClientError as exc:
            if exc.status_code != 404:
                raise
            api.datasource.create_datasource(model)
            datasource_action = "created"
        else:
            api.datasource.update_datasource_by_uid(uid, model)
            datasource_action = "updated"
        step = "folder"
        try:
            api.folder.get_folder(FOLDER_UID)
        except GrafanaClientError as exc:
            if exc.status_code != 404:
                raise
            api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
        uploaded = []
        flavor: boards.Flavor = "flux" if flux else "influxql"
        for name, board in load_dashboards(flavor, bucket=flux.bucket if flux else None).items():
            step = f"dashboard {name}"
            api.dashboard.update_dashboard({"dashboard": board, "folderUid": FOLDER_UID, "overwrite": True})
            uploaded.append(board["uid"])
    except GrafanaException as exc:
        raise ProvisionError(f"Grafana {step}: {exc.status_code or ''} {exc.message}".strip()) from None
    except RequestException as exc:
        raise ProvisionError(f"Grafana {step}: cannot reach {grafana_url}: {exc}") from None
    return {"datasource": datasource_action, "folder": FOLDER_UID, "dashboards": uploaded}


__all__ = [
    "DATASOURCE_UID",
    "Flux",
    "ProvisionError",
    "datasource_model",
    "export_provisioning",
    "import_variant",
    "load_dashboards",
    "push_to_grafana",
]
