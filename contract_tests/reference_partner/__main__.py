"""``python -m contract_tests.reference_partner``: serve the reference partner on waitress.

    python -m contract_tests.reference_partner --sim-url http://127.0.0.1:8080 --port 5001

Defaults are the simulator's demo app (client id/secret of the default fixture), so
``clever-sim serve`` plus this command is a working pair with no other setup.
"""

from __future__ import annotations

import argparse
import signal
import sys

DEMO_CLIENT_ID = "b4fd885bda79813831c3"
DEMO_CLIENT_SECRET = "da526e74a665e82ccb6ae91b4bf56e28e5cea3bc"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m contract_tests.reference_partner",
        description="Serve the reference partner app (the partner side of Clever grade passback).")
    p.add_argument("--sim-url", default="http://127.0.0.1:8080",
                   help="Base URL standing in for all three Clever hosts (default: %(default)s)")
    p.add_argument("--clever-url", help="Replaces https://clever.com (default: --sim-url)")
    p.add_argument("--api-url", help="Replaces https://api.clever.com (default: --sim-url)")
    p.add_argument("--grades-url",
                   help="Replaces https://grades-api.beta.clever.com (default: --sim-url)")
    p.add_argument("--host", default="127.0.0.1", help="Address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=5001, help="Port; 0 picks a free one (default: %(default)s)")
    p.add_argument("--client-id", default=DEMO_CLIENT_ID, help="Clever client id (default: the demo app's)")
    p.add_argument("--client-secret", default=DEMO_CLIENT_SECRET,
                   help="Clever client secret (default: the demo app's)")
    p.add_argument("--redirect-uri",
                   help="This app's callback as registered with Clever "
                        "(default: http://HOST:PORT/clever/callback)")
    p.add_argument("--secret-key", help="Session signing key (default: random per run)")
    p.add_argument("--no-test-hooks", action="store_true",
                   help="Do not serve POST /test-hooks/complete")
    args = p.parse_args(argv)
    if not 0 <= args.port <= 65535:
        p.error("--port must be from 0 to 65535")
    return args


def main(argv: list[str] | None = None) -> int:
    from .app import bind_partner, create_partner_app

    args = parse_args(argv)
    sim = args.sim_url.rstrip("/")
    app = create_partner_app({
        "CLEVER_URL": args.clever_url or sim, "API_URL": args.api_url or sim,
        "GRADES_URL": args.grades_url or sim, "CLIENT_ID": args.client_id,
        "CLIENT_SECRET": args.client_secret, "REDIRECT_URI": args.redirect_uri,
        "SECRET_KEY": args.secret_key, "TEST_HOOKS": not args.no_test_hooks,
    })
    try:
        server = bind_partner(app, args.host, args.port)
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        app.extensions["reference_partner"].close()
        return 1
    print(f"Reference partner on {server.url}")
    print(f"  Clever: {app.config['CLEVER_URL']}  API: {app.config['API_URL']}  "
          f"grades: {app.config['GRADES_URL']}")
    print(f"  client_id: {args.client_id}   redirect URI: {app.config['REDIRECT_URI']}")
    print(f"  assignments URL: {server.url}/clever/assignments")
    print("Ctrl+C stops.", flush=True)

    def _stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        server.server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        print("Stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
