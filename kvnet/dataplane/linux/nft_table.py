"""An nft table kvnet owns as a whole: replaced in one transaction, recognised by the digest of its
content in its comment (`kvnet:<digest>`), so observing it is one listing and diffing it one compare.

Used for the router namespaces' `ip kvnet` (NAT) and the host's `netdev kvnet` (gateway redirects).
"""

from __future__ import annotations

import hashlib
import re

from kvnet.sys.cmd import CommandError, in_netns
from kvnet.sys.runner import SYSTEM, Runner

_COMMENT = re.compile(r'comment "kvnet:([0-9a-f]+)"')
_ABSENT = "No such file or directory"  # what `nft list table` says of a table that does not exist


def digest(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def replace_script(family: str, name: str, table_digest: str | None, body: str) -> str:
    """One nft transaction that replaces the table atomically (no packet ever sees it half-written), or
    only deletes it when `table_digest` is None. Creating it empty first makes the delete safe when it
    does not exist."""
    script = f"table {family} {name} {{}}\ndelete table {family} {name}\n"
    if table_digest is not None:
        script += f'table {family} {name} {{\n  comment "kvnet:{table_digest}"\n{body}\n}}\n'
    return script


def observe_digest(family: str, name: str, netns: str | None, runner: Runner = SYSTEM) -> str | None:
    """The digest in the table's comment; None when there is no table, "" for one without kvnet's comment.
    Any other failure to list it raises `CommandError`: unknown is not absent."""
    argv = in_netns(["nft", "list", "table", family, name], netns)
    listing = runner.run(argv)
    if listing.returncode != 0:
        if _ABSENT in listing.stderr:
            return None
        raise CommandError(argv, listing.returncode, listing.stderr)
    match = _COMMENT.search(listing.stdout)
    return match.group(1) if match else ""
