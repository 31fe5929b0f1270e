"""`make run`: the whole Floe stack on this machine, with no AWS account.

moto's server runs in-process with Step Functions execution switched on; the same tables, streams and
queues as a deployment are created in it; the Chalice app serves on 127.0.0.1:8000 behind the same
API key authorizer and gateway answers as in AWS; threads do what Lambda's event-source mappings do
in AWS (the enrollment, steps and imports queues, and the change streams); sent mail lands in
`local-data/outbox/*.eml`, SMS in `local-data/sms.log`, the metrics (EMF documents, one a line) in
`local-data/metrics.log` rather than on the console. A development admin API key is created at
start, printed, and written to `local-data/admin-key`. Flow time is compressed by FLOE_TIME_SCALE
(default: a day in about 4 s).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chalice import Chalice
    from chalice.config import Config
    from chalice.local import LocalDevServer

    from chalicelib.storage.keys import ApiKeys

HOST = "127.0.0.1"
DAY_IN_FOUR_SECONDS = 4 / 86400
# The development admin key is written here, in the local data folder, for scripts and the README's curl examples.
ADMIN_KEY_FILE = "admin-key"
# Lambda prints EMF documents to its log; here they would drown the console, so they go to this file.
METRICS_FILE = "metrics.log"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _configure(moto_port: int, api_port: int) -> None:
    defaults = {
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_REGION": "eu-west-1",
        "FLOE_TENANT": "local",
        "FLOE_SENDER": "flows@floe.localhost",
        "FLOE_PUBLIC_URL": f"http://{HOST}:{api_port}",
        "FLOE_LINK_SECRET": "local-stack-secret-not-for-production",
        "FLOE_TIME_SCALE": str(DAY_IN_FOUR_SECONDS),
    }
    for name, value in defaults.items():
        os.environ.setdefault(name, value)
    # The state machines' SQS tasks call back into moto on MOTO_PORT; everything else via the endpoint.
    os.environ["MOTO_PORT"] = str(moto_port)
    os.environ["AWS_ENDPOINT_URL"] = f"http://{HOST}:{moto_port}"
    os.environ.pop("AWS_PROFILE", None)


def _loop(name: str, work: Any, stop: threading.Event, idle: float) -> threading.Thread:
    from chalicelib.logs import logger

    def run() -> None:
        while not stop.is_set():
            try:
                if not work():
                    stop.wait(idle)
            except Exception:
                logger.exception(f"{name} failed; carrying on")
                stop.wait(1)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread


def _admin_key(keys: ApiKeys, data: Path) -> str:
    """A development admin key: moto keeps nothing between runs, so every start makes a new one."""
    _, secret = keys.create("local admin", "admin")
    data.mkdir(parents=True, exist_ok=True)
    path = data / ADMIN_KEY_FILE
    path.unlink(missing_ok=True)
    # Only this user may read it: the key manages every other key.
    path.touch(mode=0o600)
    path.write_text(secret + "\n")
    return str(secret)


def _server(app: Chalice, config: Config, port: int) -> LocalDevServer:
    """Chalice's local server with our gateway: no key or a wrong one is our 401, an unknown route our 404."""
    from chalice.local import CustomLocalChalice, LocalChalice, LocalDevServer

    from chalicelib.local.gateway import RequestHandler

    # What `chalice.local.create_local_server` does: the current request is per thread in the threaded server.
    CustomLocalChalice.__bases__ = (LocalChalice, app.__class__)
    app.__class__ = CustomLocalChalice
    return LocalDevServer(app, config, HOST, port, handler_cls=RequestHandler)


def main() -> None:
    api_port = int(os.environ.get("FLOE_PORT", "8000"))
    moto_port = int(os.environ.get("FLOE_MOTO_PORT", "0")) or _free_port()
    _configure(moto_port, api_port)
    data = Path(os.environ.get("FLOE_LOCAL_DATA", "local-data")).resolve()

    import boto3
    from moto.server import ThreadedMotoServer

    # moto's server logs every request it answers, including our own polling.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto = ThreadedMotoServer(ip_address=HOST, port=moto_port, verbose=False)
    moto.start()
    request = urllib.request.Request(
        f"http://{HOST}:{moto_port}/moto-api/config",
        data=json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    urllib.request.urlopen(request, timeout=10).close()

    from chalicelib.local.outbox import Outbox
    from chalicelib.local.provision import provision
    from chalicelib.local.pumps import drain

    region = os.environ["AWS_DEFAULT_REGION"]
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    tenant = os.environ["FLOE_TENANT"]
    sqs = boto3.client("sqs", region_name=region, endpoint_url=endpoint)
    queues = provision(
        sqs,
        boto3.client("sesv2", region_name=region, endpoint_url=endpoint),
        tenant=tenant,
        region=region,
        table_prefix=os.environ.setdefault("FLOE_TABLE_PREFIX", f"floe-{tenant}-"),
        sender=os.environ["FLOE_SENDER"],
        host=endpoint,
        sns=boto3.client("sns", region_name=region, endpoint_url=endpoint),
    )
    os.environ["FLOE_STEPS_QUEUE_URL"] = queues.steps
    os.environ["FLOE_ENROLL_QUEUE_URL"] = queues.enrollments
    os.environ["FLOE_IMPORTS_QUEUE_URL"] = queues.imports

    from chalice.config import Config

    from app import app
    from chalicelib import handlers, metrics
    from chalicelib.local.streams import StreamPump, streams_client, to_queue
    from chalicelib.storage.keys import ApiKeys
    from chalicelib.storage.models import STREAMED

    admin_key = _admin_key(ApiKeys(), data)
    metrics.use(metrics.to_file(data / METRICS_FILE))
    changes = StreamPump(
        boto3.client("dynamodb", region_name=region, endpoint_url=endpoint),
        streams_client(region, endpoint),
        [model.Meta.table_name for model in STREAMED],
        handlers.changes,
        on_failure=to_queue(sqs, queues.changes_dlq),
    )
    outbox = Outbox(data, region)
    stop = threading.Event()
    _loop("enrollments", lambda: drain(sqs, queues.enrollments, handlers.enrollments, wait_seconds=1), stop, 0.05)
    _loop("steps", lambda: drain(sqs, queues.steps, handlers.steps, wait_seconds=1), stop, 0.05)
    # One message per invocation, as `import_worker` is subscribed in app.py.
    _loop("imports", lambda: drain(sqs, queues.imports, handlers.imports, wait_seconds=1, batch_size=1), stop, 0.05)
    _loop("changes", changes.drain, stop, 0.1)
    _loop("outbox", outbox.collect, stop, 0.5)

    server = _server(app, Config.create(app_name="floe"), api_port)
    scale = float(os.environ["FLOE_TIME_SCALE"])
    base = f"http://{HOST}:{api_port}"
    print(
        f"""
Floe is running locally (no AWS account involved).

  API              {base}      (try: curl {base}/health)
  admin API key    {admin_key}
                   (also in {data / ADMIN_KEY_FILE}; a new one at every start)
  moto (AWS fake)  {endpoint}
  outbox           {outbox.emails}/*.eml
  SMS log          {outbox.sms_log}
  metrics (EMF)    {data / METRICS_FILE}
  time scale       {scale:g} (one day of flow time lasts {86400 * scale:.1f} s)

Marketer routes need the key:
  curl -H 'Authorization: Bearer {admin_key}' {base}/flows

Stop with Ctrl-C.
""",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        time.sleep(0.2)
        moto.stop()
        print("Floe stopped.")


if __name__ == "__main__":
    main()
