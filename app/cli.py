"""The `agentops` command line. Every command takes `--json` for machines; otherwise it prints tables.

Errors a user can fix print one line to stderr and exit 1; usage errors exit 2; a bug prints one line
(no traceback) and exits 70.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from agentops.errors import AgentOpsError
from agentops.intent import describe_reading
from agentops.schemas import DeploymentConfig, GuardrailReport, PlanSummary
from agentops.settings import Settings
from app.service import Orchestrator

app = typer.Typer(
    help="AgentOps: plan, check, approve and deploy SageMaker models from plain-language intents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
kb_app = typer.Typer(help="Search the policy knowledge base.", no_args_is_help=True)
audit_app = typer.Typer(help="Inspect, verify, digest, sync and export the audit trail.", no_args_is_help=True)
app.add_typer(kb_app, name="kb")
app.add_typer(audit_app, name="audit")
keys_app = typer.Typer(help="API keys for the HTTP service (stored hashed).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

console = Console()
JsonOption = typer.Option(False, "--json", help="Print JSON for machines instead of tables.")


def _emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


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


def _print_change(change: dict[str, Any]) -> None:
    """What the plan changes against what runs now: the diff an approver reads."""
    console.print(f"change: {change['summary']}", highlight=False)
    if change.get("diff"):
        table = Table("field", "now", "planned", title="against what runs now", title_justify="left")
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
            pinned = " (as requested)" if key in (view.get("pinned") or []) else ""
            table.add_row(key, f"{value}{pinned}")
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
    table = Table("plan", "status", "env", "requester", "endpoint", "peak cost", "expires", title=title, title_justify="left")
    for row in rows:
        table.add_row(
            row.plan_id,
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
    _emit_json(view) if as_json else _print_plan(view)


@app.command("validate")
def validate_command(
    env: str = typer.Option(..., "--env", help="dev, staging or prod"),
    config: Path = typer.Option(..., "--config", help="A deployment config as a JSON file."),
    as_json: bool = JsonOption,
) -> None:
    """Run the guardrail alone on a config file. Exits 1 when the config is blocked."""
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
        raise typer.Exit(1)


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
    _emit_json(view) if as_json else _print_plan(view)


@app.command("approvals")
def approvals_command(as_json: bool = JsonOption) -> None:
    """List plans waiting for a human decision (overdue requests are expired first)."""
    with Orchestrator.open(Settings()) as orchestrator:
        rows = orchestrator.approvals()
    _emit_json([r.model_dump(mode="json") for r in rows]) if as_json else _print_summaries(rows, "pending approvals")


@app.command("plans")
def plans_command(
    status: str | None = typer.Option(None, "--status"),
    env: str | None = typer.Option(None, "--env"),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
    as_json: bool = JsonOption,
) -> None:
    """List recent plans."""
    with Orchestrator.open(Settings()) as orchestrator:
        rows = orchestrator.plans(status=status, env=env, limit=limit)
    _emit_json([r.model_dump(mode="json") for r in rows]) if as_json else _print_summaries(rows, "plans")


@app.command("show")
def show_command(plan_id: str, as_json: bool = JsonOption) -> None:
    """Show one plan: config, costs, verdict, evidence, decision, deployment."""
    with Orchestrator.open(Settings()) as orchestrator:
        view = orchestrator.show(plan_id)
    _emit_json(view) if as_json else _print_plan(view)


def _decide(plan_id: str, approver: str, approved: bool, reason: str, as_json: bool) -> None:
    with Orchestrator.open(Settings()) as orchestrator:
        view = orchestrator.decide(plan_id, approver, approved, reason)
    _emit_json(view) if as_json else _print_plan(view)


@app.command("resume")
def resume_command(
    plan_id: str = typer.Argument(None, help="The plan to continue; omit with --all."),
    all_plans: bool = typer.Option(False, "--all", help="Every unfinished plan (what the service does at start-up)."),
    as_json: bool = JsonOption,
) -> None:
    """Continue plans a process that died left unfinished (safe to repeat)."""
    if bool(plan_id) == all_plans:
        raise AgentOpsError("name one plan, or pass --all")
    with Orchestrator.open(Settings()) as orchestrator:
        if plan_id:
            view = orchestrator.resume(plan_id)
            return _emit_json(view) if as_json else _print_plan(view)
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
    plan_id: str,
    approver: str = typer.Option(..., "--as", help="Who approves (not the requester)."),
    reason: str = typer.Option("", "--reason"),
    as_json: bool = JsonOption,
) -> None:
    """Approve a pending plan; the run continues to deploy."""
    _decide(plan_id, approver, True, reason, as_json)


@app.command("reject")
def reject_command(
    plan_id: str,
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
        raise typer.Exit(1)


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
def audit_show_command(plan_id: str, as_json: bool = JsonOption) -> None:
    """Print a plan's audit events in order."""
    events = _audit_trail().log.events(plan_id)
    if not events:
        raise AgentOpsError(f"no audit events for plan '{plan_id}'")
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


@keys_app.command("add")
def keys_add_command(
    name: str = typer.Argument(..., help="Whose key (the person or service it identifies)."),
    roles: list[str] = typer.Option(..., "--role", help="viewer, requester, approver or admin; repeat for several."),
) -> None:
    """Create an API key: printed once, stored as a hash. The running service accepts it at once."""
    from api.auth import add_key

    settings = Settings()
    key = add_key(settings.api_keys_path, name, roles)
    console.print(f"API key for {name} ({', '.join(roles)}), shown this once:\n{key}", highlight=False, soft_wrap=True)


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
        raise typer.Exit(1)


def main() -> None:
    """Console entry point: one line per error, never a traceback.

    Typer handles usage errors itself (exit 2); what it lets through is ours to report.
    """
    try:
        app()
    except AgentOpsError as exc:
        Console(stderr=True).print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except ValidationError as exc:
        if exc.title == Settings.__name__:  # a bad environment variable or .env value: the user's to fix
            first = exc.errors()[0]
            setting = ".".join(str(part) for part in first["loc"])
            Console(stderr=True).print(f"[red]error:[/] invalid setting {setting}: {first['msg']}", highlight=False, soft_wrap=True)
            sys.exit(1)
        Console(stderr=True).print(f"[red]internal error:[/] {type(exc).__name__}: {exc}", highlight=False, soft_wrap=True)
        sys.exit(70)
    except Exception as exc:  # a bug: say so in one line; never dump a traceback on a user
        Console(stderr=True).print(f"[red]internal error:[/] {type(exc).__name__}: {exc}", highlight=False, soft_wrap=True)
        sys.exit(70)


if __name__ == "__main__":
    main()
