"""The raters' web app: one image at a time, "Do you believe this image is from a colour film?"

Pages (no JavaScript needed to answer; with it, the keys y / n answer, 1-5 set the optional
confidence, b goes back one image):

    GET  /                 start page: what the study is, a Start button
    POST /start            makes a rater and redirects to their link /r/<token>
    GET  /r/<token>        the rater's next unanswered image (?at=K: their K-th image again,
                           for K up to the next unanswered one), or the thank-you page
    POST /r/<token>        one answer (image, yes/no, confidence): stored at once, then the
                           next image (post/redirect/get: a reload never answers twice)
    GET  /img/<id>.jpg     an image, by its opaque id; cached by the browser

Raters never see the condition: not in a URL, a file name, the page or its order (each
rater's order comes from their token, `survey.order`). The token in the URL is the
rater's place: closing the page and opening the link later resumes where they stopped.

Answering an image again (going back, a second tab) replaces the answer: the last one
wins; the database keeps the first answer and counts the changes.

Every request opens its own SQLite connection (`survey.store.connect`). User mistakes (an
unknown link, a malformed answer) get a short page and one log line; no traceback is ever
shown or logged for them.
"""

from __future__ import annotations

import functools
import logging
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask, g, redirect, render_template_string, request, send_file
from werkzeug.exceptions import BadRequest, HTTPException, NotFound

from survey import store
from survey.order import rater_order

log = logging.getLogger("survey")

QUESTION = "Do you believe this image is from a colour film?"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_IMAGE = re.compile(r"^[0-9a-f]{16}$")


def create_app(folder: Path, *, open_enrolment: bool = True) -> Flask:
    """The app for the survey in `folder` (checked now: version, tables).

    open_enrolment: the start page makes new raters; False: only the links made by
    `survey make --raters` work."""
    info = store.open_survey(Path(folder).resolve())  # send_file needs absolute paths
    app = Flask("survey")
    app.config.update(SURVEY=info, OPEN_ENROLMENT=open_enrolment,
                      MAX_CONTENT_LENGTH=64 * 1024)  # bytes: an answer is a few dozen
    images = {image.image_id: image for image in info.images}
    pairs = tuple((image.image_id, image.frame_key) for image in info.images)

    @functools.lru_cache(maxsize=4096)
    def order_of(token: str) -> tuple[str, ...]:
        return tuple(rater_order(token, pairs))

    def db() -> sqlite3.Connection:
        if "db" not in g:
            g.db = store.connect(info.db)
        return g.db

    @app.teardown_appcontext
    def close_db(_: BaseException | None) -> None:
        conn = g.pop("db", None)
        if conn is not None:
            conn.close()

    @app.after_request
    def headers(response: Any) -> Any:
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers["Referrer-Policy"] = "no-referrer"  # the token stays in this site
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    def rater_of(token: str) -> int:
        rater = store.rater_id(db(), token) if _TOKEN.match(token) else None
        if rater is None:
            log.warning("unknown rater link %s from %s", _short(token), request.remote_addr)
            raise NotFound("unknown rater")
        return rater

    @app.get("/")
    def start() -> str:
        return _page("Colour film survey", START, n=len(images), question=QUESTION,
                     open=app.config["OPEN_ENROLMENT"])

    @app.post("/start")
    def new_rater() -> Any:
        if not app.config["OPEN_ENROLMENT"]:
            raise NotFound("closed")
        token = store.add_raters(info.db, 1, "web")[0]
        log.info("new rater %s from %s", _short(token), request.remote_addr)
        return redirect(f"/r/{token}", code=303)

    @app.get("/start")
    def start_get() -> Any:
        return redirect("/", code=303)

    @app.get("/r/<token>")
    def rater_page(token: str) -> str:
        rater = rater_of(token)
        order = order_of(token)
        answered = store.answers_of(db(), rater)
        upcoming = next((k for k, i in enumerate(order) if i not in answered), len(order))
        at = _int(request.args.get("at"))
        if at is None or not 0 <= at <= min(upcoming, len(order) - 1):
            at = upcoming
        if at == len(order):
            return _page("Thank you", DONE, n=len(order), token=token)
        image = images[order[at]]
        given = answered.get(image.image_id)
        return _page(f"Image {at + 1} of {len(order)}", RATE, image=image, at=at, n=len(order),
                     done=len(answered), token=token, question=QUESTION, given=given,
                     ask_confidence=info.ask_confidence, upcoming=upcoming)

    @app.post("/r/<token>")
    def answer(token: str) -> Any:
        rater = rater_of(token)
        image_id = request.form.get("image", "")
        if image_id not in images:
            raise BadRequest("that image is not part of this survey")
        yes = {"yes": 1, "no": 0}.get(request.form.get("answer", ""))
        if yes is None:
            raise BadRequest("the answer must be yes or no")
        raw = request.form.get("confidence", "")
        confidence = _int(raw)
        if raw and (confidence is None or not 1 <= confidence <= 5):
            raise BadRequest("the confidence must be 1 to 5, or left out")
        store.record_answer(db(), rater, image_id, yes, confidence, _int(request.form.get("at")))
        return redirect(f"/r/{token}", code=303)

    @app.get("/img/<name>")
    def image_file(name: str) -> Any:
        image_id = name.removesuffix(".jpg")
        if not name.endswith(".jpg") or not _IMAGE.match(image_id) or image_id not in images:
            raise NotFound("no such image")
        response = send_file(info.folder / images[image_id].file, mimetype="image/jpeg",
                             max_age=7 * 24 * 3600, conditional=True)
        response.headers["Cache-Control"] = "private, max-age=604800, immutable"
        return response

    @app.get("/favicon.ico")
    def favicon() -> tuple[str, int]:
        return "", 204

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[str, int]:
        code = exc.code or 500
        if code == 404 and exc.description == "unknown rater":
            return _page("Unknown link", UNKNOWN, open=app.config["OPEN_ENROLMENT"]), 404
        if code == 400:
            log.warning("bad answer from %s: %s", request.remote_addr, exc.description)
            return _page("Answer not read", BAD, reason=exc.description), 400
        if code != 404:
            log.warning("%s %s: %s", request.method, request.path, exc.name)
        return _page(exc.name, OTHER, code=code, name=exc.name), code

    @app.errorhandler(Exception)
    def server_error(exc: Exception) -> tuple[str, int]:
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            log.warning("%s %s: the database stayed busy (%s)", request.method, request.path, exc)
            return _page("Busy", BUSY), 503
        log.error("%s %s failed: %s: %s", request.method, request.path, type(exc).__name__, exc)
        log.debug("details", exc_info=exc)
        return _page("Server error", BROKEN), 500

    return app


def _int(raw: str | None) -> int | None:
    try:
        return int(raw) if raw not in (None, "") else None
    except ValueError:
        return None


def _short(token: str) -> str:
    """A token as logged: its first characters only (the log is not a list of links)."""
    return token[:4] + "…" if len(token) > 4 else token


# --------------------------------------------------------------------------- pages


def _page(title: str, body: str, **context: Any) -> str:
    return render_template_string(LAYOUT, title=title,
                                  body=render_template_string(body, **context))


LAYOUT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
html, body { margin: 0; padding: 0; }
body { font: 16px/1.35 system-ui, sans-serif; color: #111; background: #f4f4f4; }
main { max-width: 60rem; margin: 0 auto; padding: 8px; text-align: center; }
#shot { display: block; margin: 0 auto; max-width: 100%; max-height: 58vh; width: auto;
        height: auto; background: #ddd; }
.progress { font-size: 14px; color: #444; margin: 0 0 6px; }
progress { width: min(20rem, 90%); height: 8px; vertical-align: middle; }
h1 { font-size: 1.15rem; margin: 10px 0 8px; }
.buttons { display: flex; gap: 12px; justify-content: center; margin: 8px 0; }
.buttons button { font-size: 1.15rem; padding: 10px 0; width: 9rem; min-height: 48px;
                  border: 1px solid #555; border-radius: 6px; background: #fff; }
.buttons button.given { background: #dde8ff; border-width: 2px; }
fieldset.conf { border: 0; margin: 0; padding: 0; font-size: 15px; }
fieldset.conf label { display: inline-block; padding: 6px 7px; }
kbd { font-size: 12px; border: 1px solid #999; border-radius: 3px; padding: 0 4px;
      background: #fff; color: #333; }
.small { font-size: 13px; color: #555; }
a { color: #0645ad; }
</style></head><body><main>
{{ body|safe }}
</main></body></html>
"""

START = """
<h1>{{ question }}</h1>
<p>You will see {{ n }} images, one at a time. For each, answer whether you believe it
comes from a colour film. There is no right speed: answer from your first impression.</p>
{% if open %}
<form method="post" action="/start"><div class="buttons">
<button type="submit" id="start" autofocus>Start</button></div></form>
<p class="small">Your page's address is your place in the survey: keep it to stop and
come back later.</p>
{% else %}
<p>Please open the personal link you were given by the organiser.</p>
{% endif %}
"""

RATE = """
<p class="progress" id="progress">Image {{ at + 1 }} of {{ n }} &middot; {{ done }} answered
<progress value="{{ done }}" max="{{ n }}"></progress></p>
<img id="shot" src="/img/{{ image.image_id }}.jpg" width="{{ image.width }}"
     height="{{ image.height }}" alt="the image to judge">
<form method="post" id="answer" autocomplete="off">
<h1>{{ question }}</h1>
<input type="hidden" name="image" value="{{ image.image_id }}">
<input type="hidden" name="at" value="{{ at }}">
{% if ask_confidence %}
<fieldset class="conf"><legend class="small">How sure are you? (optional)</legend>
{% for c in range(1, 6) %}<label><input type="radio" name="confidence" value="{{ c }}"
 id="c{{ c }}"{% if given and given[1] == c %} checked{% endif %}> {{ c }}</label>{% endfor %}
<span class="small">(1 guess &ndash; 5 sure)</span></fieldset>
{% endif %}
<div class="buttons">
<button type="submit" name="answer" value="yes" id="yes"
 {% if given and given[0] == 1 %}class="given"{% endif %}>Yes <kbd>y</kbd></button>
<button type="submit" name="answer" value="no" id="no"
 {% if given and given[0] == 0 %}class="given"{% endif %}>No <kbd>n</kbd></button>
</div></form>
<p class="small">
{% if at > 0 %}<a id="back" href="/r/{{ token }}?at={{ at - 1 }}">&larr; previous</a> <kbd>b</kbd>
&middot; {% endif %}
{% if at < upcoming %}<a id="resume" href="/r/{{ token }}">back to the next new image</a>
&middot; {% endif %}
Keep this page's address to stop and come back later.</p>
<script>
(function () {
  var sent = false;
  var form = document.getElementById("answer");
  form.addEventListener("submit", function (e) { if (sent) e.preventDefault(); sent = true; });
  function press(id) { var b = document.getElementById(id); if (b && !sent) b.click(); }
  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    var k = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    if (k === "y") press("yes");
    else if (k === "n") press("no");
    else if ("12345".indexOf(k) >= 0 && k.length === 1) {
      var r = document.getElementById("c" + k); if (r) r.checked = true;
    } else if (k === "b") {
      var a = document.getElementById("back"); if (a && !sent) window.location.href = a.href;
    } else return;
    e.preventDefault();
  });
})();
</script>
"""

DONE = """
<h1>Thank you!</h1>
<p id="done">You have answered all {{ n }} images. You can close this page.</p>
<p class="small"><a id="back" href="/r/{{ token }}?at={{ n - 1 }}">&larr; change your last
answer</a></p>
"""

UNKNOWN = """
<h1>This link is not known to this survey</h1>
<p id="unknown">Check that the whole address was copied from the link you were given.</p>
{% if open %}<p>To take part afresh, open the <a href="/">start page</a>.</p>{% endif %}
"""

BAD = """
<h1>Your answer could not be read</h1>
<p id="bad">{{ reason }}. Nothing was stored; go back to your link and answer again.</p>
"""

BUSY = """
<h1>The survey is busy</h1>
<p>Your last answer was not stored. Press reload, or go back and answer again.</p>
"""

BROKEN = """
<h1>Something went wrong on the server</h1>
<p>Your earlier answers are saved. Go back and try again; if it happens again, tell the
organiser.</p>
"""

OTHER = """
<h1>{{ code }} {{ name }}</h1>
<p>Nothing here. The survey starts at the <a href="/">start page</a>.</p>
"""


# --------------------------------------------------------------------------- serving


def serve(app: Flask, host: str, port: int, threads: int = 8,
          ready: Callable[[str], None] | None = None) -> None:
    """Serve `app` with waitress until Ctrl-C or SIGTERM. `ready(url)` is called once the
    port is bound. Raises OSError when the port cannot be bound."""
    import signal

    from waitress import create_server

    server = create_server(app, host=host, port=port, threads=threads,
                           ident="filmcolor-survey", clear_untrusted_proxy_headers=True)

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        if ready is not None:
            ready(f"http://{_url_host(host)}:{getattr(server, 'effective_port', port)}/")
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.close()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
