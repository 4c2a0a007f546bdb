"""Who may do what in the Airflow UI and REST API (the FAB auth manager).

The roles are data: ``config/roles.json``, in the format of FAB's own
``airflow roles export`` (``[{"name": role, "resource": ..., "action":
"can_read,can_edit"}, ...]``).  ``apply`` makes the database match the file:
missing roles are created, missing permissions added and permissions not in
the file removed, so a rerun converges (``airflow roles import`` skips roles
that exist).  Per-DAG resources (``DAG:<dag_id>``, ``DAG Run:<dag_id>``)
exist once the DAGs are serialized; ``apply`` syncs them first.

    python -m lifecycle access apply --roles config/roles.json \\
        --user responder:IncidentResponder ...

A user's password comes from ``$LIFECYCLE_PASSWORD_<USERNAME>``, never from a
file in the repository.
"""

from __future__ import annotations

import json
import os
import sys
from collections import defaultdict
from pathlib import Path


class AccessError(ValueError):
    """The roles file or a user is wrong; the message names which and why."""


def read_roles(path: Path) -> dict[str, set[tuple[str, str]]]:
    """``{role: {(action, resource), ...}}`` from a roles file."""
    try:
        rows = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise AccessError(f"{path}: cannot read the roles file: {exc}") from None
    if not isinstance(rows, list):
        raise AccessError(f"{path}: expected a list of {{name, resource, action}} objects")
    roles: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or set(row) != {"name", "resource", "action"}:
            raise AccessError(f"{path}: [{i}]: expected exactly the keys name, resource, action")
        for action in filter(None, (a.strip() for a in str(row["action"]).split(","))):
            roles[row["name"]].add((action, row["resource"]))
    return dict(roles)


def parse_users(specs: list[str], env: dict[str, str]) -> list[tuple[str, str, str]]:
    """``name:Role`` specs -> ``(name, role, password)``; the password from the environment."""
    users = []
    for spec in specs:
        name, _, role = spec.partition(":")
        if not name or not role:
            raise AccessError(f"--user {spec!r}: expected <username>:<role>")
        variable = f"LIFECYCLE_PASSWORD_{name.upper()}"
        password = env.get(variable, "")
        if len(password) < 8:
            raise AccessError(f"--user {name}: set {variable} to a password of at least 8 characters")
        users.append((name, role, password))
    return users


def apply(roles: dict[str, set[tuple[str, str]]], users: list[tuple[str, str, str]], say=print) -> None:
    """Make the FAB database hold exactly these roles' permissions, and these users."""
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

    with get_application_builder() as appbuilder:
        sm = appbuilder.sm
        appbuilder.add_permissions(update_perms=True)
        sm.sync_roles()
        sm.create_dag_specific_permissions()
        missing = sorted({res for perms in roles.values() for _, res in perms if sm.get_resource(res) is None})
        if missing:
            raise AccessError(
                f"config/roles.json names resources Airflow does not know: {', '.join(missing)} "
                "(a DAG not parsed yet, or a typo)"
            )
        for name, wanted in sorted(roles.items()):
            role = sm.find_role(name) or sm.add_role(name)
            have = {(p.action.name, p.resource.name): p for p in role.permissions}
            for action, resource in sorted(wanted - set(have)):
                sm.add_permission_to_role(role, sm.create_permission(action, resource))
            for key in sorted(set(have) - wanted):
                sm.remove_permission_from_role(role, have[key])
            say(f"role {name}: {len(wanted)} permission(s), +{len(wanted - set(have))} -{len(set(have) - wanted)}")
        for username, role_name, password in users:
            role = sm.find_role(role_name)
            if role is None:
                raise AccessError(f"--user {username}: no role {role_name!r}")
            user = sm.find_user(username=username)
            if user is None:
                sm.add_user(username, username, role_name, f"{username}@example.invalid", role, password)
            else:
                user.roles = [role]
                sm.update_user(user)
                sm.reset_password(user.id, password)
            say(f"user {username}: role {role_name}")


def cmd_apply(args) -> int:
    try:
        apply(read_roles(args.roles), parse_users(args.user, dict(os.environ)))
    except AccessError as exc:
        print(f"lifecycle access: {exc}", file=sys.stderr)
        return 2
    return 0


def add_commands(sub) -> None:
    """``apply``, as a subcommand of ``sub``: mounted under ``python -m lifecycle access``."""
    a = sub.add_parser("apply", help="make the roles (and users) match the roles file")
    a.add_argument("--roles", type=Path, default=Path("config") / "roles.json")
    a.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="NAME:ROLE",
        help="create or update a user (password from $LIFECYCLE_PASSWORD_<NAME>)",
    )
    a.set_defaults(run=cmd_apply)
