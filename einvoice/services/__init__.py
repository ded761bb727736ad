"""Service functions: the only entry points to the domain (enqueue, submit, reconcile, sync,
operator actions). They call the repositories of :mod:`einvoice.db` (no SQL here) and never
commit a session they are given (STYLE.md habit 4); a service that calls Factus between two
transactions runs each of them as a :class:`einvoice.db.uow.UnitOfWork`. The leased-worker
plumbing that submissions and follow-ups share is :mod:`einvoice.services.runner`."""
