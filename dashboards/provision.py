"""Export the Grafana provisioning files, or push datasource and dashboards through Grafana's API.

The shipped YAML uses ``${SHELFSENSE_INFLUX_URL}``, ``${SHELFSENSE_INFLUX_DB}`` and
``${SHELFSENSE_DASHBOARDS_DIR}`` (Grafana expands environment variables in provisioning files);
:func:`export_provisioning` fills them in so the folder works as is.
"""

from __future__ import annotations

import json
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

DATASOURCE_UID = "shelfsense-influxdb"
DATASOURCE_NAME = "ShelfSense InfluxDB"
FOLDER_UID = "shelfsense"
FOLDER_TITLE = "ShelfSense"


IMPORT_INPUT = "DS_SHELFSENSE_INFLUXDB"


class ProvisionError(Exception):
    """Grafana refused or could not be reached; the message says which call and why."""


def _root() -> Traversable:
    return files("dashboards") / "grafana"


def load_dashboards() -> dict[str, dict[str, Any]]:
    """Dashboard JSON by file stem (``cold-chain``, ``site-health``)."""
    folder = _root() / "dashboards"
    return {
        entry.name.removesuffix(".json"): json.loads(entry.read_text(encoding="utf-8"))
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".json")
    }


def import_variant(board: dict[str, Any]) -> dict[str, Any]:
    """The board for Grafana's *Import dashboard* page: an ``__inputs`` entry asks which InfluxDB
    datasource to use, and every datasource reference points at that choice."""
    ours = json.dumps({"type": "influxdb", "uid": DATASOURCE_UID})
    chosen = json.dumps({"type": "influxdb", "uid": "${" + IMPORT_INPUT + "}"})
    variant: dict[str, Any] = json.loads(json.dumps(board).replace(ours, chosen))
    variant.pop("id", None)
    inputs = {
        "name": IMPORT_INPUT,
        "label": DATASOURCE_NAME,
        "description": "InfluxDB 1.x (InfluxQL) holding the measurements the ShelfSense cloud writes",
        "type": "datasource",
        "pluginId": "influxdb",
        "pluginName": "InfluxDB",
    }
    requires = [{"type": "datasource", "id": "influxdb", "name": "InfluxDB", "version": "1.0.0"}]
    return {"__inputs": [inputs], "__requires": requires, **variant}


def _render(relative: str, values: dict[str, str]) -> str:
    text = (_root() / "provisioning" / relative).read_text(encoding="utf-8")
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    return text


def _yaml_scalar(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid YAML double-quoted scalar


def export_provisioning(directory: Path, *, influx_url: str, database: str) -> list[Path]:
    """Write ``provisioning/datasources``, ``provisioning/dashboards`` and ``dashboards/*.json``."""
    directory = directory.resolve()
    dashboards_dir = directory / "dashboards"
    values = {
        "SHELFSENSE_INFLUX_URL": _yaml_scalar(influx_url),
        "SHELFSENSE_INFLUX_DB": _yaml_scalar(database),
        "SHELFSENSE_DASHBOARDS_DIR": _yaml_scalar(str(dashboards_dir)),
    }
    written: list[Path] = []
    for relative in ("datasources/shelfsense.yaml", "dashboards/shelfsense.yaml"):
        target = directory / "provisioning" / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(_render(relative, values), encoding="utf-8")
        written.append(target)
    dashboards_dir.mkdir(parents=True, exist_ok=True)
    import_dir = directory / "import"  # for Grafana's Import page, not for provisioning
    import_dir.mkdir(parents=True, exist_ok=True)
    for name, board in load_dashboards().items():
        for target, content in (
            (dashboards_dir / f"{name}.json", board),
            (import_dir / f"{name}.json", import_variant(board)),
        ):
            target.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            written.append(target)
    return written


def datasource_model(influx_url: str, database: str) -> dict[str, Any]:
    """The datasource as Grafana's HTTP API takes it (same content as the provisioning YAML)."""
    return {
        "uid": DATASOURCE_UID,
        "name": DATASOURCE_NAME,
        "type": "influxdb",
        "access": "proxy",
        "url": influx_url,
        "isDefault": False,  # the boards name it by uid; the site's default stays what it was
        "jsonData": {"dbName": database, "httpMode": "POST", "timeInterval": "10s"},
    }


def push_to_grafana(
    grafana_url: str, token: str, *, influx_url: str, database: str, timeout_s: float = 10.0
) -> dict[str, Any]:
    """Create or update the datasource, the folder and every dashboard; returns what was done."""
    from grafana_client import GrafanaApi
    from grafana_client.client import GrafanaClientError, GrafanaException
    from niquests.exceptions import RequestException

    api = GrafanaApi.from_url(grafana_url, credential=token, timeout=timeout_s)
    step = "connect"
    try:
        step = "datasource"
        model = datasource_model(influx_url, database)
        try:
            api.datasource.get_datasource_by_uid(DATASOURCE_UID)
        except GrafanaClientError as exc:
            if exc.status_code != 404:
                raise
            api.datasource.create_datasource(model)
            datasource_action = "created"
        else:
            api.datasource.update_datasource_by_uid(DATASOURCE_UID, model)
            datasource_action = "updated"
        step = "folder"
        try:
            api.folder.get_folder(FOLDER_UID)
        except GrafanaClientError as exc:
            if exc.status_code != 404:
                raise
            api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
        uploaded = []
        for name, board in load_dashboards().items():
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
    "ProvisionError",
    "datasource_model",
    "export_provisioning",
    "import_variant",
    "load_dashboards",
    "push_to_grafana",
]
