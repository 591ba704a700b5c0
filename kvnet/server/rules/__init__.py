"""Per-kind rules: what creating, updating or deleting a resource checks, allocates and cascades.

Each module exposes `create(txn, obj)`, `update(txn, old, new)` and `delete(txn, obj)`; all run inside
one store transaction (`kvnet.server.cloud.Cloud`), so a rule that raises leaves nothing written.
"""
