"""The scheduling samples: what can be checked here without cron, systemd, a cluster or
Airflow — their command lines parse with click (every option exists), the CronJob has the
structure Kubernetes needs, the Airflow file compiles, imports and maps outcomes."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
from pathlib import Path

import click
import pandas as pd
import pytest

import batchtag
from batchtag.api import APPLY_NAMES
from batchtag.cli import main
from batchtag.config import ENV_API_KEY

SAMPLES = Path(__file__).parent.parent / "samples"
SCHEDULE = SAMPLES / "schedule"
EXPECTED_FLAGS = {"--max-changes", "--summary-json", "--log-format", "--yes"}


def parse(argv: list[str]) -> dict:
    """Parse a `batchtag ...` argument list with the real click command; return its params."""
    assert argv[0].endswith("batchtag"), argv
    command = main.get_command(click.Context(main), argv[1])
    assert command is not None, argv[1]
    with click.Context(main) as parent:
        return command.make_context(argv[1], argv[2:], parent=parent).params


def crontab_commands() -> list[list[str]]:
    """The batchtag part of every crontab entry, unescaped the way cron does ('\\%')."""
    out = []
    for line in (SCHEDULE / "crontab").read_text().splitlines():
        if not line.strip() or line.startswith("#") or "=" in line.split()[0]:
            continue
        fields = line.split(None, 5)
        assert len(fields) == 6 and all(re.fullmatch(r"[\d*/,-]+", f) for f in fields[:5])
        command = fields[5].replace("\\%", "%").replace("$(date +%F)", "2026-01-01")
        words = shlex.split(command)
        start = words.index("batchtag")
        end = next(i for i, w in enumerate(words) if w in (">>", "||", "&&") and i > start)
        out.append(words[start:end])
    return out


def test_crontab_lines_parse_with_the_real_options():
    nightly, check = crontab_commands()
    params = parse(nightly)
    assert params["max_changes"] == "10%" and params["log_format"] == "json"
    assert params["yes"] and params["summary_json"] and params["report"].endswith("{started}.csv")
    assert "--undo-file" in nightly
    assert params["undo_file"].endswith("{started}.undo.jsonl")
    assert parse(check)["check"] is True and parse(check)["output"].endswith("{started}.csv")
    text = (SCHEDULE / "crontab").read_text()
    assert f"{ENV_API_KEY}" in text and "--api-key" not in text


def unit_value(path: Path, key: str) -> str:
    lines = [line for line in path.read_text().splitlines() if line.startswith(f"{key}=")]
    assert len(lines) == 1, (path, key)
    return lines[0].split("=", 1)[1]


def test_systemd_service_and_timer():
    service = SCHEDULE / "batchtag-enforce.service"
    argv = shlex.split(unit_value(service, "ExecStart").replace("%%", "%"))
    assert argv[0].startswith("/") and EXPECTED_FLAGS <= set(argv)
    params = parse(argv)
    assert params["max_changes"] == "10%" and not params["overwrite"]  # {started}: new files
    assert "--undo-file" in argv and params["undo_file"].endswith("{started}.undo.jsonl")
    assert unit_value(service, "Type") == "oneshot"
    assert unit_value(service, "EnvironmentFile").startswith("/etc/")
    timer = SCHEDULE / "batchtag-enforce.timer"
    assert unit_value(timer, "OnCalendar") == "*-*-* 02:30:00"
    assert unit_value(timer, "WantedBy") == "timers.target"


def test_cronjob_manifest_structure_and_command_line():
    text = (SCHEDULE / "cronjob.yaml").read_text()
    assert "\t" not in text and "NOT RUN HERE" in text
    try:
        import yaml
    except ImportError:  # not installed here: check the parts Kubernetes insists on
        for needed in ["apiVersion: batch/v1", "kind: CronJob", "restartPolicy: Never"]:
            assert re.search(rf"^\s*{re.escape(needed)}$", text, re.MULTILINE), needed
        indents = {len(m) for m in re.findall(r"^( *)\S", text, re.MULTILINE)}
        assert all(n % 2 == 0 for n in indents)
        args = json.loads(re.search(r"^\s*args: (\[.*\])$", text, re.MULTILINE)[1])
        secret = re.search(r"secretKeyRef:\n\s+name: (\S+)\n\s+key: (\S+)", text)
        assert secret and f"name: {ENV_API_KEY}" in text
    else:  # pragma: no cover - where PyYAML exists
        job = yaml.safe_load(text)
        assert (job["apiVersion"], job["kind"]) == ("batch/v1", "CronJob")
        container = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
        args = container["args"]
        assert container["env"][0]["name"] == ENV_API_KEY
    params = parse(["batchtag", *args])
    assert EXPECTED_FLAGS <= set(args) and params["log_format"] == "json"
    dockerfile = (SCHEDULE / "Dockerfile").read_text()
    assert "pip install" in dockerfile and 'ENTRYPOINT ["batchtag"]' in dockerfile


def load_airflow_sample():
    spec = importlib.util.spec_from_file_location(
        "airflow_enforce", SCHEDULE / "airflow_enforce.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_airflow_task_compiles_imports_and_maps_outcomes(monkeypatch):
    compile((SCHEDULE / "airflow_enforce.py").read_text(), "airflow_enforce.py", "exec")
    sample = load_airflow_sample()
    monkeypatch.setenv(ENV_API_KEY, "k-from-env")
    calls = []

    def fake(policy, **options):
        calls.append((policy, options))
        report = pd.DataFrame({"status": ["ok"]})
        report.attrs["summary"] = {"exit_code": 0}
        return report

    assert sample.enforce_task(ds="2026-01-01", enforce=fake) == {"exit_code": 0}
    policy, options = calls[0]
    assert options["api_key"] == "k-from-env" and options["max_changes"] == "10%"
    assert set(options) <= set(APPLY_NAMES)  # every option it passes exists
    assert options["undo_file"].endswith("2026-01-01-{started}.undo.jsonl")

    def failing(policy, **options):
        report = pd.DataFrame()
        report.attrs["summary"] = {"exit_code": 1}
        return report

    with pytest.raises(RuntimeError, match="exit code 1"):
        sample.enforce_task(enforce=failing)

    def guarded(policy, **options):
        raise batchtag.AbortRun("refusing to start")

    with pytest.raises(batchtag.AbortRun):
        sample.enforce_task(enforce=guarded)
