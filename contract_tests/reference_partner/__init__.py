"""A reference partner app: the partner side of Clever grade passback, done correctly.

It is a small, separate Flask app that talks to Clever only through Clever's real
endpoints (``/oauth/tokens``, ``/v3.0/me``, ``/v3.0/users/{id}``, ``/v1/grade``), so it
works unchanged against the simulator or any other Clever-compatible server. The
contract suite proves itself against it, and ``clever-sim demo`` runs it next to the
simulator.

    from contract_tests.reference_partner import create_partner_app, bind_partner
    app = create_partner_app({"CLEVER_URL": sim, "API_URL": sim, "GRADES_URL": sim,
                              "CLIENT_ID": "...", "CLIENT_SECRET": "..."})
    server = bind_partner(app, "127.0.0.1", 0).start()   # server.url, server.stop()
"""

from .app import (DEFAULT_ASSIGNMENTS, Assignment, PartnerServer, Question, bind_partner,
                  create_partner_app)

__all__ = ["Assignment", "DEFAULT_ASSIGNMENTS", "PartnerServer", "Question", "bind_partner",
           "create_partner_app"]
