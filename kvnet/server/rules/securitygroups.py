"""Security groups: their rules (with ids, added and removed one by one), each project's `default`
group, and what may not be deleted while it is used.

The `default` group of a project is made on first use (the project's first network, port or group,
or a group it creates with that name):
ingress from its own members, all egress, IPv4 and IPv6 -- Neutron's. Its id is kept under
`/kvnet/alloc/defaultsg/<project>`, so two first uses racing make one group.
"""

from __future__ import annotations

from kvnet.errors import Conflict, InvalidInput, NotFound
from kvnet.model.resources import KEY_PREFIX, MAX_RULES, Port, SecurityGroup, SecurityGroupRule, is_uuid
from kvnet.server.rules.common import load, load_all, save
from kvnet.store.txn import Txn

DEFAULT_NAME = "default"
LISTED = 5


def default_key(project: str) -> str:
    return f"{KEY_PREFIX}alloc/defaultsg/{project}"


def allow_all_egress() -> list[SecurityGroupRule]:
    return [SecurityGroupRule(direction="egress", ethertype=e) for e in ("IPv4", "IPv6")]


def default_rules(group_id: str) -> list[SecurityGroupRule]:
    return [SecurityGroupRule(direction="ingress", ethertype=e, remote_group_id=group_id)
            for e in ("IPv4", "IPv6")] + allow_all_egress()


def ensure_default(txn: Txn, project: str) -> str:
    """The id of the project's `default` group, made now if the project has none yet."""
    known = txn.get(default_key(project))
    if known is not None:
        return str(known["owner"])
    group = SecurityGroup(name=DEFAULT_NAME, project_id=project,
                          description="ingress from the group's own members, all egress")
    group.rules = default_rules(group.id)
    txn.put(default_key(project), {"owner": group.id})
    save(txn, group)
    return group.id


def create(txn: Txn, group: SecurityGroup) -> None:
    """A group named `default` is the project's default group, if the project has none yet (a cloud file
    may give its rules before the project's first network or port)."""
    if group.name == DEFAULT_NAME:
        if txn.get(default_key(group.project_id)) is not None:
            raise Conflict(f"project {group.project_id} has its default group already; change its rules instead",
                           field="name")
        txn.put(default_key(group.project_id), {"owner": group.id})
        if "rules" not in group.model_fields_set:
            group.rules = default_rules(group.id)
    else:
        ensure_default(txn, group.project_id)
        if "rules" not in group.model_fields_set:
            group.rules = allow_all_egress()
    _check_rules(txn, group, group.rules)


def update(txn: Txn, old: SecurityGroup, new: SecurityGroup) -> None:
    if new.name != old.name and DEFAULT_NAME in (old.name, new.name) and _is_default(txn, old):
        raise Conflict("the project's default group keeps its name", field="name")
    if new.name == DEFAULT_NAME and not _is_default(txn, old):
        raise Conflict("`default` is the name of the project's own default group", field="name")
    if new.project_id != old.project_id:
        raise Conflict("cannot be changed after creation", field="project_id")
    # A rule given again (same match) keeps its id; a new one gets one.
    kept = {rule.match(): rule.id for rule in old.rules}
    new.rules = [rule.model_copy(update={"id": kept.get(rule.match(), rule.id)}) for rule in new.rules]
    _check_rules(txn, new, new.rules)


def delete(txn: Txn, group: SecurityGroup) -> None:
    users = [p for p in load_all(txn, Port) if group.id in p.security_group_ids]
    if users:
        raise Conflict(f"security group {group.ref()} is used by {len(users)} port(s): "
                       + ", ".join(p.name or p.id for p in users[:LISTED]), field="id")
    referrers = [g for g in load_all(txn, SecurityGroup)
                 if g.id != group.id and any(r.remote_group_id == group.id for r in g.rules)]
    if referrers:
        raise Conflict(f"security group {group.ref()} is the remote group of rules of "
                       + ", ".join(g.ref() for g in referrers[:LISTED]), field="id")
    if _is_default(txn, group):
        txn.delete(default_key(group.project_id))


def add_rule(txn: Txn, group: SecurityGroup, rule: SecurityGroupRule) -> SecurityGroupRule:
    if len(group.rules) >= MAX_RULES:
        raise Conflict(f"security group {group.ref()} has {MAX_RULES} rules, the most a group may have",
                       field="rules")
    _check_rules(txn, group, [*group.rules, rule], new=rule)
    group.rules = [*group.rules, rule]
    save(txn, group)
    return rule


def remove_rule(txn: Txn, group: SecurityGroup, rule_id: str) -> None:
    rules = [r for r in group.rules if r.id != rule_id]
    if len(rules) == len(group.rules):
        raise NotFound(f"security group {group.ref()} has no rule {rule_id[:60]}", field="rule_id")
    group.rules = rules
    save(txn, group)


def _check_rules(txn: Txn, group: SecurityGroup, rules: list[SecurityGroupRule],
                 new: SecurityGroupRule | None = None) -> None:
    """No rule twice (by what it matches, or by id); remote groups exist, in the group's project."""
    seen: dict[tuple[object, ...], int] = {}
    ids: set[str] = set()
    for i, rule in enumerate(rules):
        field = "rule" if new is rule else f"rules[{i}]"
        if rule.match() in seen:
            raise Conflict(f"the same rule as rules[{seen[rule.match()]}] (id {rules[seen[rule.match()]].id})",
                           field=field)
        if not is_uuid(rule.id):
            raise InvalidInput(f"{rule.id[:60]!r} is not a UUID (leave a rule's id out and the server picks one)",
                               field=f"{field}.id")
        if rule.id in ids:
            raise Conflict(f"rule id {rule.id} is given twice", field=f"{field}.id")
        seen[rule.match()] = i
        ids.add(rule.id)
        remote = rule.remote_group_id
        if remote and remote != group.id:
            other = load(txn, SecurityGroup, remote, field=f"{field}.remote_group_id")
            if other.project_id != group.project_id:
                raise InvalidInput(f"security group {remote} belongs to another project",
                                   field=f"{field}.remote_group_id")


def _is_default(txn: Txn, group: SecurityGroup) -> bool:
    known = txn.get(default_key(group.project_id))
    return known is not None and known["owner"] == group.id
