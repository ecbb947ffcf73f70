"""`flywheel serve [--host 127.0.0.1] [--port P]`: the inference service (pipelines/serving), following the
model's MLflow aliases. Live at once; ready (`/readyz`) once a champion exists."""

from __future__ import annotations

import argparse
import gc
import logging

from pipelines.config import int_setting, setting
from pipelines.errors import FlywheelError
from pipelines.spec import load_spec

PORT_SETTING = "FLYWHEEL_SERVING_PORT"


def _serve(args: argparse.Namespace) -> int:
    import torch
    import uvicorn

    from pipelines.serving.app import create_app
    from pipelines.serving.models import log as models_log
    from pipelines.serving.security import TOKEN_SETTING, token_path
    from pipelines.serving.service import DEFAULT_PORT, build_service

    spec = load_spec(args.spec)
    service = build_service(spec, args.model)
    torch.set_num_threads(int_setting("FLYWHEEL_SERVING_THREADS", default=1, minimum=1))
    port = args.port or int_setting(PORT_SETTING, default=DEFAULT_PORT, minimum=1)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"flywheel serve: listening on {args.host}: put TLS in front of it (plain HTTP)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    models_log.setLevel(logging.INFO)
    where = TOKEN_SETTING if setting(TOKEN_SETTING) else str(token_path())
    print(
        f"flywheel serve: model {service.config.model_name!r} of spec {spec.name!r} on http://{args.host}:{port} "
        f"(MLflow {setting('MLFLOW_TRACKING_URI') or 'not set'}; admin token in {where})",
        flush=True,
    )
    app = create_app(service)
    # Fewer, cheaper garbage collections: a request allocates a few hundred containers (records, rows, log
    # records), so the default threshold (700) ran a collection every request or two; what was loaded at start
    # (libraries, the app) is frozen out of the collector's scans.
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    try:
        uvicorn.run(
            app,
            host=args.host,
            port=port,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=10,
        )
    except OSError as exc:
        raise FlywheelError(f"cannot listen on {args.host}:{port}: {exc}; pick another --port") from None
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="serve the model's champion (and a rolling-out challenger) over HTTP")
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help=f"port (default {PORT_SETTING} or 8080)")
    serve.add_argument("--spec", help="dataset spec (default: FLYWHEEL_SPEC or the built-in transactions)")
    serve.add_argument("--model", help="registered model name (default FLYWHEEL_SERVING_MODEL or the spec's name)")
    serve.set_defaults(func=_serve)
