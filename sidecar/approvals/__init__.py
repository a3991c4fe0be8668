"""Human-in-the-loop approvals (CONTRACT section 2.4).

- ``model``: one approval and the request hash that binds it;
- ``book``: the approvals in memory and their transitions, replayed from the trail;
- ``trail``: reading ``approval`` records back at start;
- ``signing``: approvers' Ed25519-signed decisions;
- ``service``: the step between evaluation and record, decisions, expiry;
- ``webhook``: notifications of new pending approvals;
- ``wire`` and ``endpoints``: the HTTP models, OpenAPI paths and answers.
"""
