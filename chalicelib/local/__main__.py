"""`make run`: the whole Floe stack on this machine, with no AWS account.

moto's server runs in-process with Step Functions execution switched on; the same tables and queues
as a deployment are created in it; the Chalice app serves on 127.0.0.1:8000; threads do what Lambda's
event-source mappings do in AWS; sent mail lands in `local-data/outbox/*.eml`, SMS in
`local-data/sms.log`. Flow time is compressed by FLOE_TIME_SCALE (default: a day in about 4 s).
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
from typing import Any

HOST = "127.0.0.1"
DAY_IN_FOUR_SECONDS = 4 / 86400


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

    from chalice.config import Config
    from chalice.local import create_local_server

    from app import app
    from chalicelib import handlers

    outbox = Outbox(data, region)
    stop = threading.Event()
    _loop("enrollments", lambda: drain(sqs, queues.enrollments, handlers.enrollments, wait_seconds=1), stop, 0.05)
    _loop("steps", lambda: drain(sqs, queues.steps, handlers.steps, wait_seconds=1), stop, 0.05)
    _loop("outbox", outbox.collect, stop, 0.5)

    server = create_local_server(app, Config.create(app_name="floe"), HOST, api_port)
    scale = float(os.environ["FLOE_TIME_SCALE"])
    print(
        f"""
Floe is running locally (no AWS account involved).

  API              http://{HOST}:{api_port}      (try: curl http://{HOST}:{api_port}/health)
  moto (AWS fake)  {endpoint}
  outbox           {outbox.emails}/*.eml
  SMS log          {outbox.sms_log}
  time scale       {scale:g} (one day of flow time lasts {86400 * scale:.1f} s)

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
