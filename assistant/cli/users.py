"""`tutor users`: the accounts of a shared instance (assistant/web/accounts.py), by name, each owning its work by a
stable id.

    tutor users add alice [--admin] [--password-stdin | --no-password]
    tutor users list [--removed] [--usage] [--json]     # ids, names, roles; disk and jobs against the quotas
    tutor users remove alice                             # her sessions end at once; her work stays
    tutor users transfer OLD_ID bob                      # hand a removed account's work over
"""

from __future__ import annotations

import json

import typer

from assistant.cli.common import fail, open_registry
from assistant.web.accounts import owner_named
from training.base.errors import TutorError
from training.base.registry import RegistryError

users_app = typer.Typer(help="Accounts for a shared instance (TUTOR_AUTH=password).", no_args_is_help=True)


@users_app.command("add")
def users_add(name: str, admin: bool = typer.Option(False, help="An admin sees and manages everyone's work."),
              password_stdin: bool = typer.Option(False, help="Read the password from standard input."),
              no_password: bool = typer.Option(False, help="An account that logs in through a proxy header or OAuth.")):
    """Add an account; the password comes from a prompt (typed twice) or from stdin."""
    import sys

    from assistant.web.accounts import add_user

    if no_password:
        password = None
    elif password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        add_user(open_registry(), name, password, admin=admin)
    except (TutorError, RegistryError) as exc:
        fail(str(exc), False)
    typer.echo(f"Added {'admin' if admin else 'user'} {name}.")


@users_app.command("list")
def users_list(as_json: bool = typer.Option(False, "--json"),
               removed: bool = typer.Option(False, "--removed", help="Removed accounts (their work waits for "
                                                                   "`tutor users transfer`)."),
               usage: bool = typer.Option(False, "--usage", help="Each account's disk use and jobs, against the "
                                                                 "quotas.")):
    """Accounts, their ids and roles (never a password or its hash)."""
    from assistant.web.history import files_bytes
    from training.base import quotas
    from training.base.registry import ACTIVE
    from training.base.settings import get_settings

    registry = open_registry()
    try:
        accounts = [{"id": u.id, "name": u.name, "role": u.role, "password": bool(u.password_hash)}
                    for u in registry.users(removed=removed)]
        settings = get_settings()
        for account in accounts if usage else []:
            used = quotas.usage(settings, registry, account["id"], files_bytes(settings, account["id"]))
            account.update(disk_gb=round(used / quotas.GB, 3), jobs=len(registry.runs(account["id"], ACTIVE)))
    except (RegistryError, TutorError) as exc:
        fail(str(exc), as_json)
    if as_json:
        print(json.dumps(accounts, indent=2))
    for account in [] if as_json else accounts:
        print(f"{account['id']:<20} {account['name']:<24} {account['role']:<6} "
              f"{'password' if account['password'] else 'no password'}" + (
                  f"  {account['disk_gb']:.2f} of {settings.max_learner_gb:g} GB, {account['jobs']} of "
                  f"{settings.max_queued_jobs} jobs" if usage else ""))


@users_app.command("remove")
def users_remove(name: str):
    """Remove an account: it can't log in, and its open sessions stop at once; its work stays, for
    `tutor users transfer` (the same name added again is a new person and sees none of it)."""
    try:
        removed = open_registry().remove_user(name)
    except RegistryError as exc:
        fail(str(exc), False)
    if not removed:
        fail(f"No account named {name}.", False)
    typer.echo(f"Removed {name}.")


@users_app.command("transfer")
def users_transfer(from_id: str = typer.Argument(..., help="The id of the account whose work moves "
                                                           "(`tutor users list --removed` shows it)."),
                   to_name: str = typer.Argument(..., help="The account that receives it.")):
    """Hand all the work of one account (datasets, uploads, runs, models, comparisons, evaluations) to another."""
    registry = open_registry()
    try:
        if not any(u.id == from_id for u in registry.users() + registry.users(removed=True)):
            raise TutorError(f"No account has the id {from_id}: `tutor users list --removed` shows them.")
        moved = registry.transfer(from_id, owner_named(registry, to_name))
    except (TutorError, RegistryError) as exc:
        fail(str(exc), False)
    typer.echo(f"Moved to {to_name}: " + ", ".join(f"{count} {table}" for table, count in moved.items()) + ".")
