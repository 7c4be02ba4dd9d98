"""The `agentops` command line. Every command takes `--json` for machines; otherwise it prints tables.

Errors print one line to stderr, never a traceback; the exit code says what happened (app/exit_codes.py:
the table is in `agentops --help` and the README). Commands whose result is a plan (run, plan, approve,
resume) exit with the code of the plan's status, so a script can tell `blocked` from `deployed`.
"""

from __future__ import annotations

import contextlib
import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Any, get_args

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup
from typer.exceptions import TyperException

from agentops.errors import AgentOpsError, NotFound
from agentops.intent import describe_reading
from agentops.schemas import DeploymentConfig, GuardrailReport, PlanStatus, PlanSummary
from agentops.settings import Settings
from app import exit_codes
from app.exit_codes import ExitCode
from app.service import MIN_ID_PREFIX, Orchestrator, resolve_plan_id


def _fail(message: str, code: ExitCode, label: str = "error") -> typer.Exit:
    Console(stderr=True).print(f"[red]{label}:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(int(code))


# The domain's refusals name no front end's field (HTTP sends the same words); here, say which option fixes them.
_OPTION_HINTS = {
    "a rejection needs a reason": "--reason",
    "say who decides": "--as",
    "the requester is empty: say who asks": "--user",
}


class _Commands(TyperGroup):
    """Every command runs inside this: a refusal becomes one line on stderr and its exit code (in-process
    callers such as CliRunner see the same codes as the console script)."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, TyperException):  # exits, usage errors (2): typer reports them itself
            raise
        except AgentOpsError as exc:
            hint = _OPTION_HINTS.get(str(exc))
            raise _fail(f"{exc} ({hint})" if hint else str(exc), exit_codes.for_error(exc)) from None
        except ValidationError as exc:
            if exc.title == Settings.__name__:  # a bad environment variable or .env value: the user's to fix
                first = exc.errors()[0]
                setting = ".".join(str(part) for part in first["loc"])
                raise _fail(f"invalid setting {setting}: {first['msg']}", ExitCode.INPUT_ERROR) from None
            raise _fail(f"{type(exc).__name__}: {exc}", ExitCode.INTERNAL, "internal error") from None
        except Exception as exc:  # a bug: say so in one line; never dump a traceback on a user
            raise _fail(f"{type(exc).__name__}: {exc}", ExitCode.INTERNAL, "internal error") from None


app = typer.Typer(
    cls=_Commands,
    help="AgentOps: plan, check, approve and deploy SageMaker models from plain-language intents.",
    epilog="Exit codes (app/exit_codes.py; scripts can rely on them):\n" + exit_codes.table(),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
kb_app = typer.Typer(help="Search the policy knowledge base.", no_args_is_help=True)
audit_app = typer.Typer(help="Inspect, verify, digest, sync and export the audit trail.", no_args_is_help=True)
app.add_typer(kb_app, name="kb")
app.add_typer(audit_app, name="audit")
keys_app = typer.Typer(
    help="API keys for the HTTP service: stored hashed, named by id; changes reach the running service on its next request.",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")

console = Console()
JsonOption = typer.Option(False, "--json", help="Print JSON for machines instead of tables.")


def _emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def _plan_result(view: dict[str, Any], as_json: bool) -> None:
    """Print a plan, then exit with the code of its status (0 for done or waiting)."""
    _emit_json(view) if as_json else _print_plan(view)
    code = exit_codes.for_status(view.get("status"))
    if code != ExitCode.OK:
        raise typer.Exit(int(code))


def _plan_id(orchestrator: Orchestrator, text: str) -> str:
    """A whole plan id or a unique prefix (at least MIN_ID_PREFIX characters), as tables show them."""
    return orchestrator.resolve_id(text)


TABLE_ID_LENGTH = 12  # > MIN_ID_PREFIX: unique in practice (48 bits), like a short git or docker id
PlanIdArgument = typer.Argument(..., help=f"A plan id, or any unique part of its start (at least {MIN_ID_PREFIX} characters).")


def _constraints(budget: float | None, max_instances: int | None, instance_type: str | None) -> dict[str, Any]:
    values = {"budget_usd_per_hour": budget, "max_instance_count": max_instances, "instance_type": instance_type}
    return {k: v for k, v in values.items() if v is not None}


def _money(value: float | None) -> str:
    return "unknown" if value is None else f"${value:,.2f}/h"


def _print_report(report: dict[str, Any]) -> None:
    verdict = report.get("verdict") or {}
    colour = "green" if verdict.get("allowed") else "red"
    console.print(
        f"verdict: [bold {colour}]{'allowed' if verdict.get('allowed') else 'blocked'}[/]   "
        f"hourly {_money(report.get('hourly_cost_usd'))}   peak {_money(report.get('peak_cost_usd'))}"
    )
    if verdict.get("violations"):
        table = Table("rule", "why", "policy", title="violations", title_justify="left")
        for v in verdict["violations"]:
            table.add_row(v["rule"], v["message"], f"{v['policy']} § {v.get('section') or '-'}")
        console.print(table)
    for warning in verdict.get("warnings", []):
        console.print(f"[yellow]warning:[/] {warning}")
    if report.get("requires_approval"):
        console.print("[bold]needs human approval:[/] " + "; ".join(report.get("approval_reasons", [])))


def _origin(field: str, view: dict[str, Any]) -> str:
    """Where a config value came from, when not from the planner: the requester's words, or the deployment
    the plan started from (agentops/updates.py)."""
    if field in (view.get("pinned") or []):
        return " (as requested)"
    basis = view.get("basis") or {}
    if field in (basis.get("kept") or []):
        return f" (kept from plan {basis['plan_id'][:TABLE_ID_LENGTH]}, deployed)"
    return ""


def _print_change(change: dict[str, Any]) -> None:
    """What the plan changes against what runs now: the diff an approver reads."""
    console.print(f"change: {change['summary']}", highlight=False)
    if change.get("diff"):
        against = "against what runs now" if change.get("known") else "against what AgentOps last deployed there"
        table = Table("field", "now", "planned", title=against, title_justify="left")
        for row in change["diff"]:
            table.add_row(
                row["field"], "-" if row["current"] is None else str(row["current"]), "-" if row["planned"] is None else str(row["planned"])
            )
        console.print(table)
    for resource in change.get("removes", []):
        console.print(f"  deletes {resource}", highlight=False)
    for warning in change.get("warnings", []):
        console.print(f"[yellow]warning:[/] {warning}")
    if change.get("error"):
        console.print(f"[red]cannot run as it stands:[/] {change['error']}")


def _print_plan(view: dict[str, Any]) -> None:
    if view.get("plan_id"):
        console.print(
            f"plan [bold]{view['plan_id']}[/]  status [bold]{view.get('status')}[/]  env {view.get('env')}  requester {view.get('requester')}"
        )
    if view.get("question"):
        console.print(f"[yellow]needs clarification:[/] {view['question']}", highlight=False)
    for line in describe_reading(view.get("reading") or {}):
        console.print(f"from your words: {line}", highlight=False)
    planner = view.get("planner") or {}
    if planner.get("llm_calls") or planner.get("fallback"):
        console.print(
            f"planner {planner['name']}: {planner['rounds']} round(s), {planner['llm_calls']} LLM call(s), {planner['tokens']} tokens",
            highlight=False,
        )
    if view.get("config"):
        table = Table("field", "value", title="deployment config", title_justify="left")
        ordered = [f for f in DeploymentConfig.model_fields if f in view["config"]] + [
            f for f in view["config"] if f not in DeploymentConfig.model_fields
        ]
        for key in ordered:
            value = view["config"][key]
            table.add_row(key, f"{value}{_origin(key, view)}")
        console.print(table)
    if view.get("change"):
        _print_change(view["change"])
    if view.get("verdict"):  # a plan that failed before the guardrail has none
        _print_report(view)
    if view.get("evidence"):
        table = Table("policy", "section", "score", title="policy evidence", title_justify="left")
        for e in view["evidence"]:
            table.add_row(e["policy"], e["section"], f"{e['score']:.3f}")
        console.print(table)
    if view.get("decision"):
        d = view["decision"]
        console.print(
            f"decision: {'approved' if d['approved'] else 'rejected'} by {d['approver']}" + (f" — {d['reason']}" if d.get("reason") else "")
        )
    if view.get("deployment"):
        dep = view["deployment"]
        ops = ", ".join(c["operation"] for c in dep.get("calls", []))
        console.print(f"deployment ({dep.get('mode')}): {dep.get('status')}" + (f" — calls: {ops}" if ops else ""))
        if dep.get("created") and dep.get("status") == "failed":
            console.print("created before the failure: " + ", ".join(dep["created"]), highlight=False)
    if view.get("error"):
        console.print(f"[red]error:[/] {view['error']}")
    if "approval" in (view.get("waiting_for") or []):
        console.print(
            f"waiting for approval until {view.get('expires_at', '')[:16].replace('T', ' ')} UTC: agentops approve {view['plan_id']} --as APPROVER"
        )


def _print_summaries(rows: list[PlanSummary], title: str) -> None:
    table = Table(title=title, title_justify="left")
    # Ids as 12-character prefixes (every command takes them), never cut or wrapped, so what a person
    # copies from an 80-column terminal is an id; --json has whole ids.
    table.add_column("plan", no_wrap=True, min_width=TABLE_ID_LENGTH)
    table.add_column("status", no_wrap=True)
    for header in ("env", "requester", "endpoint", "peak cost", "expires"):
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(
            row.plan_id[:TABLE_ID_LENGTH],
            row.status,
            row.env,
            row.requester,
            row.endpoint_name or "-",
            _money(row.peak_cost_usd),
            f"{row.expires_at:%Y-%m-%d %H:%M}" if row.expires_at else "-",
        )
    console.print(table if rows else f"{title}: none")


@app.command("plan")
def plan_command(
    intent: str = typer.Argument(..., help="What to deploy, in plain words."),
    env: str = typer.Option(..., "--env", help="dev, staging or prod"),
    user: str = typer.Option("anonymous", "--user", help="Who asks."),
    budget: float | None = typer.Option(None, "--budget", help="Your own limit in $/hour (only tightens policy)."),
    max_instances: int | None = typer.Option(None, "--max-instances", help="Your own instance limit."),
    instance_type: str | None = typer.Option(None, "--instance-type", help="Require exactly this instance type."),
    as_json: bool = JsonOption,
) -> None:
    """Retrieve policies, plan and check — no side effects."""
    with Orchestrator.open(Settings()) as orchestrator:
        view = orchestrator.preview(intent, env, user, _constraints(budget, max_instances, instance_type))
    _plan_result(view, as_json)  # blocked, needs_clarification and failed exit as a run would


@app.command("validate")
def validate_command(
    env: str = typer.Option(..., "--env", help="dev, staging or prod"),
    config: Path = typer.Option(..., "--config", help="A deployment config as a JSON file."),
    as_json: bool = JsonOption,
) -> None:
    """Run the guardrail alone on a config file (examples/deployment-config.json is one). Exits 10 when it is blocked."""
    try:
        data = json.loads(config.read_text())
    except FileNotFoundError:
        raise AgentOpsError(f"no such file: {config}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AgentOpsError(f"{config} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise AgentOpsError(f"{config} must hold a JSON object (the deployment config)")
    with Orchestrator.open(Settings()) as orchestrator:
        report: GuardrailReport = orchestrator.validate(data, env)
    _emit_json(report.model_dump(mode="json")) if as_json else _print_report(report.model_dump(mode="json"))
    if not report.verdict.allowed:
        raise typer.Exit(int(ExitCode.BLOCKED))


@app.command("run")
def run_command(
    intent: str = typer.Argument(..., help="What to deploy, in plain words."),
    env: str = typer.Option(..., "--env", help="dev, staging or prod"),
    user: str = typer.Option(..., "--user", help="Who asks (never the approver)."),
    budget: float | None = typer.Option(None, "--budget"),
    max_instances: int | None = typer.Option(None, "--max-instances"),
    instance_type: str | None = typer.Option(None, "--instance-type"),
    as_json: bool = JsonOption,
) -> None:
    """Run the whole workflow: plan, check, wait for approval if policy asks, deploy (dry-run by default)."""
    with Orchestrator.open(Settings()) as orchestrator:
        view = orchestrator.run(intent, env, user, _constraints(budget, max_instances, instance_type))
    _plan_result(view, as_json)


class Sort(StrEnum):
    created = "created"
    expires = "expires"


@app.command("approvals")
def approvals_command(
    env: str | None = typer.Option(None, "--env", help="Only this environment."),
    sort: Sort = typer.Option(Sort.expires, "--sort", help="expires: the soonest deadline first (default); created: newest first."),
    as_json: bool = JsonOption,
) -> None:
    """List plans waiting for a human decision, the soonest deadline first (overdue requests are expired first)."""
    with Orchestrator.open(Settings()) as orchestrator:
        rows = orchestrator.approvals(env=env, sort=sort.value)
    _emit_json([r.model_dump(mode="json") for r in rows]) if as_json else _print_summaries(rows, "pending approvals")


@app.command("plans")
def plans_command(
    status: str | None = typer.Option(None, "--status", help="Only plans in this status (e.g. pending_approval, deployed, blocked)."),
    env: str | None = typer.Option(None, "--env", help="Only this environment."),
    sort: Sort = typer.Option(
        Sort.created, "--sort", help="created: newest first (default); expires: the soonest approval deadline first."
    ),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
    as_json: bool = JsonOption,
) -> None:
    """List recent plans, newest first."""
    if status is not None and status not in get_args(PlanStatus):
        raise AgentOpsError(f"unknown status '{status}': expected one of {', '.join(get_args(PlanStatus))}")
    with Orchestrator.open(Settings()) as orchestrator:
        rows = orchestrator.plans(status=status, env=env, limit=limit, sort=sort.value)
    _emit_json([r.model_dump(mode="json") for r in rows]) if as_json else _print_summaries(rows, "plans")


@app.command("show")
def show_command(plan_id: str = PlanIdArgument, as_json: bool = JsonOption) -> None:
    """Show one plan: config, costs, verdict, evidence, decision, deployment."""
    with Orchestrator.open(Settings()) as orchestrator:
        view = orchestrator.show(_plan_id(orchestrator, plan_id))
    _emit_json(view) if as_json else _print_plan(view)


def _decide(plan_id: str, approver: str, approved: bool, reason: str, as_json: bool) -> None:
    with Orchestrator.open(Settings()) as orchestrator:
        view = orchestrator.decide(_plan_id(orchestrator, plan_id), approver, approved, reason)
    if approved:
        _plan_result(view, as_json)  # deployed 0, pending another approver 0, failed 13, ...
    else:
        _emit_json(view) if as_json else _print_plan(view)  # a rejection that lands is what was asked: 0


@app.command("resume")
def resume_command(
    plan_id: str = typer.Argument(None, help=f"The plan to continue (or a unique prefix, >= {MIN_ID_PREFIX} characters); omit with --all."),
    all_plans: bool = typer.Option(False, "--all", help="Every unfinished plan (what the service does at start-up)."),
    as_json: bool = JsonOption,
) -> None:
    """Continue plans a process that died left unfinished (safe to repeat)."""
    if bool(plan_id) == all_plans:
        raise AgentOpsError("name one plan, or pass --all")
    with Orchestrator.open(Settings()) as orchestrator:
        if plan_id:
            view = orchestrator.resume(_plan_id(orchestrator, plan_id))
            return _plan_result(view, as_json)
        looked_at = orchestrator.recover()
        views = [orchestrator.show(p) for p in looked_at]
    if as_json:
        return _emit_json([{"plan_id": v["plan_id"], "status": v["status"]} for v in views])
    for view in views:
        typer.echo(f"{view['plan_id']}  {view['status']}")
    if not views:
        typer.echo("no unfinished plans")


@app.command("approve")
def approve_command(
    plan_id: str = PlanIdArgument,
    approver: str = typer.Option(..., "--as", help="Who approves (not the requester)."),
    reason: str = typer.Option("", "--reason"),
    as_json: bool = JsonOption,
) -> None:
    """Approve a pending plan; the run continues to deploy."""
    _decide(plan_id, approver, True, reason, as_json)


@app.command("reject")
def reject_command(
    plan_id: str = PlanIdArgument,
    approver: str = typer.Option(..., "--as", help="Who rejects (not the requester)."),
    reason: str = typer.Option(..., "--reason", help="Why (required)."),
    as_json: bool = JsonOption,
) -> None:
    """Reject a pending plan; nothing is deployed."""
    _decide(plan_id, approver, False, reason, as_json)


@kb_app.command("search")
def kb_search_command(question: str, k: int = typer.Option(3, "--k", min=1, max=20), as_json: bool = JsonOption) -> None:
    """Find the policy passages that answer a question."""
    from graph.wiring import build_retriever

    results = build_retriever(Settings()).search(question, k=k)
    if as_json:
        _emit_json([e.model_dump(mode="json") for e in results])
        return
    for e in results:
        console.print(f"[bold]{e.policy} § {e.section}[/]  (score {e.score:.3f})\n{e.text}\n")


def _audit_trail():
    from tools.audit.trail import build_audit_trail

    return build_audit_trail(Settings())


def _parse_time(option: str, value: str):
    from tools.audit.chain import parse_time

    try:
        return parse_time(value)
    except ValueError:
        raise AgentOpsError(f"{option} must be a date or an ISO time, e.g. 2026-11-24 or 2026-11-24T12:00Z (got '{value}')") from None


def _sync_errors(report) -> None:
    if report.errors:
        raise AgentOpsError("kept in the local log but not written remotely (retry: agentops audit sync): " + "; ".join(report.errors))


@audit_app.command("verify")
def audit_verify_command(as_json: bool = JsonOption) -> None:
    """Check events, chains and digests in every configured store. Exits 1 naming the first thing wrong."""
    result = _audit_trail().verify()
    if as_json:
        _emit_json(result.model_dump())
    elif result.ok:
        console.print(
            f"[green]audit log intact[/]: {result.events} events, {result.digests} digest(s) verified in {', '.join(result.stores)}"
        )
        if result.undigested:
            console.print(f"{result.undigested} newest event(s) not covered by a digest yet (agentops audit digest)")
    else:
        console.print(f"[red]audit log BROKEN[/]: {result.problem}")
    for warning in result.warnings if not as_json else []:
        console.print(f"[yellow]warning:[/] {warning}")
    if not result.ok:
        raise typer.Exit(int(ExitCode.AUDIT_BROKEN))


@audit_app.command("digest")
def audit_digest_command(as_json: bool = JsonOption) -> None:
    """Digest the events since the last digest and publish pending digests (run it hourly from cron)."""
    made, report = _audit_trail().digest()
    if as_json:
        _emit_json({"digest": made.model_dump() if made else None, "sync": report.model_dump()})
    elif made:
        console.print(
            f"digest {made.digest_seq}: events {made.first_seq}–{made.last_seq}, {len(made.plans)} plan(s), hash {made.hash[:16]}"
        )
    else:
        console.print("no new events since the last digest")
    _sync_errors(report)


@audit_app.command("sync")
def audit_sync_command(as_json: bool = JsonOption) -> None:
    """Write to DynamoDB and S3 whatever the local log holds that they do not (safe to repeat)."""
    report = _audit_trail().sync()
    if as_json:
        _emit_json(report.model_dump())
    else:
        for target, count in report.written.items():
            console.print(f"{target}: {count} written")
        if not report.written:
            console.print("no remote audit store configured: the local log is the whole trail")
    _sync_errors(report)


@audit_app.command("export")
def audit_export_command(
    since: str = typer.Option(..., "--since", help="Date or ISO time; UTC unless it names a zone."),
    until: str | None = typer.Option(None, "--until", help="End (exclusive); default now."),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl: one event per line, with its hashes."),
    source: str = typer.Option("local", "--source", help="local (the source of truth) or dynamodb (read through its day index)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
    as_json: bool = JsonOption,
) -> None:
    """Export audit events for auditors, in chain order."""
    if fmt != "jsonl":
        raise AgentOpsError(f"unknown export format '{fmt}': jsonl is supported")
    start, end = _parse_time("--since", since), (_parse_time("--until", until) if until else None)
    events = _audit_trail().export(start, end, source)
    lines = "".join(json.dumps(e.model_dump(), ensure_ascii=False, sort_keys=True) + "\n" for e in events)
    if output is None:
        sys.stdout.write(lines)
        return
    try:
        output.write_text(lines)
    except OSError as exc:
        raise AgentOpsError(f"cannot write {output}: {exc.strerror}") from None
    summary = {"events": len(events), "output": str(output), "source": source}
    _emit_json(summary) if as_json else console.print(f"exported {len(events)} events to {output}")


@audit_app.command("show")
def audit_show_command(plan_id: str = PlanIdArgument, as_json: bool = JsonOption) -> None:
    """Print a plan's audit events in order."""
    from tools.storage.plan_index import PlanIndex

    with contextlib.suppress(NotFound):  # else the audit log is asked under the name as given
        plan_id = resolve_plan_id(PlanIndex(Settings().database), plan_id)
    events = _audit_trail().log.events(plan_id)
    if not events:
        raise NotFound(f"no audit events for plan '{plan_id}'")
    if as_json:
        _emit_json([e.model_dump() for e in events])
        return
    table = Table("seq", "time", "step", "actor", "hash", title=f"audit log of {plan_id}", title_justify="left")
    for e in events:
        table.add_row(str(e.seq), e.ts, e.step, e.actor, e.hash[:16])
    console.print(table)


@app.command("serve")
def serve_command(
    host: str | None = typer.Option(None, "--host", help="Listen address (default AGENTOPS_HOST, 127.0.0.1)."),
    port: int | None = typer.Option(None, "--port", help="Port (default AGENTOPS_PORT, 8080)."),
    dev_keys: bool = typer.Option(False, "--dev-keys", help="On first start, create demo API keys and print them once."),
) -> None:
    """Run the HTTP service and the approvals page."""
    from api.server import serve

    serve(Settings(**{k: v for k, v in {"host": host, "port": port}.items() if v is not None}), dev_keys=dev_keys)


def _key_store():
    from api.keys import KeyStore

    return KeyStore(Settings().api_keys_path)


def _key_row(entry) -> dict[str, Any]:
    return {"id": entry.id, "name": entry.name, "roles": list(entry.roles), "created_at": entry.created_at}


def _show_new_key(entry, key: str, as_json: bool, verb: str) -> None:
    if as_json:
        return _emit_json(_key_row(entry) | {"key": key})
    console.print(
        f"{verb} key {entry.id} for {entry.name} ({', '.join(entry.roles)}); the key, shown this once:\n{key}",
        highlight=False,
        soft_wrap=True,
    )


@keys_app.command("list")
def keys_list_command(as_json: bool = JsonOption) -> None:
    """The keys in the keys file: id, owner, roles, when made (never the keys: only their hashes are kept)."""
    store = _key_store()
    entries = store.list()
    if as_json:
        return _emit_json([_key_row(e) for e in entries])
    if not entries:
        console.print(f"no API keys in {store.path}")
        return
    table = Table(title=f"API keys in {store.path}", title_justify="left")
    table.add_column("id", no_wrap=True, min_width=12)
    for header in ("name", "roles", "created"):
        table.add_column(header)
    for e in entries:
        table.add_row(e.id, e.name, ", ".join(e.roles), f"{e.created_at:%Y-%m-%d %H:%M}" if e.created_at else "-")
    console.print(table)


@keys_app.command("add")
def keys_add_command(
    name: str = typer.Argument(..., help="Whose key (the person or service it identifies)."),
    roles: list[str] = typer.Option(..., "--role", help="viewer, requester, approver or admin; repeat for several."),
    as_json: bool = JsonOption,
) -> None:
    """Create an API key: printed once with its id, stored as a hash. The running service accepts it at once."""
    entry, key = _key_store().add(name, roles)
    _show_new_key(entry, key, as_json, "created")


@keys_app.command("revoke")
def keys_revoke_command(
    key_id: str = typer.Argument(..., help="The key's id from `agentops keys list` (or a unique prefix, >= 6 characters)."),
    as_json: bool = JsonOption,
) -> None:
    """Remove a key; the running service refuses it from its next request."""
    entry = _key_store().revoke(key_id)
    _emit_json(_key_row(entry) | {"revoked": True}) if as_json else console.print(
        f"revoked key {entry.id} of {entry.name}", highlight=False
    )


@keys_app.command("rotate")
def keys_rotate_command(
    key_id: str = typer.Argument(..., help="The key's id from `agentops keys list` (or a unique prefix, >= 6 characters)."),
    as_json: bool = JsonOption,
) -> None:
    """Replace a key by a new one for the same person and roles, in one write: the old key stops working at once."""
    old, new, key = _key_store().rotate(key_id)
    if as_json:
        return _emit_json(_key_row(new) | {"key": key, "replaces": old.id})
    _show_new_key(new, key, False, f"replaced key {old.id} by")


@app.command("demo")
def demo_command(
    intent: str = typer.Option("deploy fraud-detector v3 to prod on 2 ml.g5.xlarge, canary 10%", "--intent"),
    requester: str = typer.Option("alice@example.com", "--user"),
    approver: str = typer.Option("bob@example.com", "--approver"),
) -> None:
    """Walk one prod intent through the whole workflow on the embedded defaults (dry-run)."""
    settings = Settings()
    console.rule("1. plan (no side effects)")
    with Orchestrator.open(settings) as orchestrator:
        _print_plan(orchestrator.preview(intent, "prod", requester))
        console.rule("2. run: prod always needs a human, so the run pauses")
        view = orchestrator.run(intent, "prod", requester)
        _print_plan(view)
        console.rule(f"3. {requester} tries to approve their own plan")
        try:
            orchestrator.decide(view["plan_id"], requester, True, "looks fine to me")
        except AgentOpsError as exc:
            console.print(f"[red]refused:[/] {exc}")
        console.rule(f"4. {approver} approves; the run resumes and deploys (dry-run)")
        _print_plan(orchestrator.decide(view["plan_id"], approver, True, "capacity and cost reviewed"))
    console.rule("5. the audit log")
    audit_show_command(view["plan_id"], as_json=False)
    audit_verify_command(as_json=False)
    console.print(f"\nState lives in {settings.state_dir}. Try: agentops plans; agentops show {view['plan_id']}")


@app.command("doctor")
def doctor_command(as_json: bool = JsonOption) -> None:
    """Show which planner, embeddings and reranker are configured, and check each NVIDIA endpoint answers.
    Exits 1 when any of them has a problem."""
    from tools.nvidia.doctor import diagnose

    report = diagnose(Settings())
    if as_json:
        _emit_json(report)
    else:
        table = Table("part", "uses", "endpoint", "model", "status", title="model-backed parts", title_justify="left")
        for c in report["checks"]:
            status = "[green]ok[/]" if c["ok"] else "[red]problem[/]"
            table.add_row(
                c["service"], c["uses"], c["endpoint"] or "-", c["model"] or "-", f"{status} {c['detail'] if c['ok'] else ''}".strip()
            )
        console.print(table)
        console.print("  ".join(f"{k.replace('_', ' ')}: {v}" for k, v in report["settings"].items()), highlight=False)
        for c in report["checks"]:
            if not c["ok"]:
                console.print(f"[red]problem:[/] {c['service']}: {c['detail']}", highlight=False, soft_wrap=True)
    if not report["ok"]:
        raise typer.Exit(int(ExitCode.ENVIRONMENT))


def main() -> None:
    """Console entry point. Refusals and bugs are turned into one line and an exit code by `_Commands`."""
    app()


if __name__ == "__main__":
    main()
