"""Service functions: the only entry points to the domain (enqueue, submit, reconcile, sync,
operator actions). They take a session they do not commit (STYLE.md habit 4)."""
