"""A strict, stateful simulator of the Factus v1 API (FACTUS_API.md "The simulator", §11).

It is the other side of the wire for every test, demo and benchmark: an ASGI app
(:func:`einvoice.sandbox.app.create_app`) served by uvicorn (:func:`einvoice.sandbox.server.serve`,
``einvoice sandbox serve``, ``python -m einvoice.sandbox``) or started as a child process by
:class:`einvoice.sandbox.server.SandboxServer`.

Wall: this package never imports ``einvoice.factus`` nor ``einvoice.domain``; it is written from the
contract alone, so that a misreading on one side shows up as a failing test on the other.

Modules: ``catalogs`` (reference tables), ``amounts`` (§4.2 arithmetic), ``validation`` (422 rules),
``artifacts`` (CUFE, QR, PDF, XML), ``state`` (accounts, tokens, documents, stats), ``faults``,
``ratelimit``, ``render`` (JSON shapes), ``app`` (routes), ``server`` and ``cli``.
``docs/simulator.md`` lists every behaviour the contract left open and what the simulator does
there.
"""
