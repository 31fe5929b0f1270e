"""The Floe Chalice app: routes and event handlers only; the work happens in chalicelib."""

from chalice import Chalice

app = Chalice(app_name="floe")


@app.route("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}
