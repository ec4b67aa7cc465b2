"""The review page's server: Starlette on uvicorn, bound to 127.0.0.1 only.

Every request must carry the session's random token (`?token=` in the URL, as Jupyter does, or
the `X-Scoretool-Token` header) and a Host header naming this machine (127.0.0.1 or localhost: a
page elsewhere that rebinds its DNS name to 127.0.0.1 is refused). Files are chosen by the route
(a scene number, a frame index, a fixed asset name), never by a path taken from the request.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import webbrowser
from importlib import resources
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..errors import PlanError, ScoreToolError
from .jobs import Renderer, export
from .session import Busy, Session

HOSTS = ["127.0.0.1", "localhost"]
TOKEN_HEADER = "x-scoretool-token"
ASSETS = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the token is in the URL: never send it on
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'",
}


class TokenGuard:
    """ASGI middleware: 403 for any request without the session's token."""

    def __init__(self, app, token: str):
        self.app, self.token = app, token.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and not self._allowed(scope):
            await PlainTextResponse("a valid token is required: open the URL scoretool printed", 403)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _allowed(self, scope) -> bool:
        given = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [""])[0]
        given = given or Headers(scope=scope).get(TOKEN_HEADER, "")
        return secrets.compare_digest(given.encode("utf-8", "replace"), self.token)


def _asset(name: str) -> str:
    return (resources.files("scoretool.review") / "static" / name).read_text(encoding="utf-8")


def _error(exc: Exception, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": str(exc)}, status_code=status)


class Endpoints:
    """The page, its API and its media, for one session."""

    def __init__(self, session: Session, renderer: Renderer, token: str):
        self.session, self.renderer, self.token = session, renderer, token

    async def page(self, request: Request) -> Response:
        return HTMLResponse(_asset("index.html").replace("__TOKEN__", self.token), headers=PAGE_HEADERS)

    async def asset(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ASSETS:
            return PlainTextResponse("not found", 404)
        return Response(_asset(name), media_type=ASSETS[name], headers={"Cache-Control": "no-store"})

    async def state(self, request: Request) -> Response:
        return JSONResponse({**self.session.state(), "render": self.renderer.status()})

    async def curves(self, request: Request) -> Response:
        return JSONResponse(self.session.curves)

    async def _act(self, request: Request, action) -> Response:
        """Run an edit (or undo, or render) and answer with the new state, or the reason it was refused."""
        try:
            await run_in_threadpool(action)
        except Busy as exc:
            return _error(exc, 409)
        except ScoreToolError as exc:
            return _error(exc)
        return await self.state(request)

    async def edit(self, request: Request) -> Response:
        try:
            changes = await request.json()
        except ValueError:
            return _error(PlanError("the edit is not JSON"))
        return await self._act(request, lambda: self.session.edit(request.path_params["number"], changes))

    async def take(self, request: Request) -> Response:
        return await self._act(request, lambda: self.session.new_take(request.path_params["number"]))

    async def undo(self, request: Request) -> Response:
        return await self._act(request, self.session.undo)

    async def render(self, request: Request) -> Response:
        return await self._act(request, self.renderer.start)

    async def export(self, request: Request) -> Response:
        try:
            kind = (await request.json()).get("kind")
            written = await run_in_threadpool(export, self.session, kind)
        except (ValueError, AttributeError):
            return _error(PlanError("an export is a JSON object with a kind"))
        except ScoreToolError as exc:
            return _error(exc)
        return JSONResponse({"written": written})

    async def video(self, request: Request) -> Response:
        session = self.session
        if session.rendered is None:
            return FileResponse(session.plan.input.path)  # the original, until the first render
        if request.query_params.get("download"):
            return FileResponse(session.output, filename=os.path.basename(session.output))
        return FileResponse(session.output)

    async def stem(self, request: Request) -> Response:
        try:
            path = self.session.stem(request.path_params["number"])
        except ScoreToolError as exc:
            return _error(exc, 404)
        return FileResponse(path) if path else PlainTextResponse("not rendered yet", 404)

    async def thumb(self, request: Request) -> Response:
        number, index = request.path_params["number"], request.path_params["index"]
        try:
            path = await run_in_threadpool(self.session.thumbnail, number, index)
        except ScoreToolError as exc:
            return _error(exc, 404)
        return FileResponse(path, media_type="image/jpeg")


def create_app(session: Session, renderer: Renderer, token: str) -> Starlette:
    e = Endpoints(session, renderer, token)
    routes = [
        Route("/", e.page),
        Route("/static/{name}", e.asset),
        Route("/api/state", e.state),
        Route("/api/curves", e.curves),
        Route("/api/scenes/{number:int}", e.edit, methods=["POST"]),
        Route("/api/scenes/{number:int}/take", e.take, methods=["POST"]),
        Route("/api/undo", e.undo, methods=["POST"]),
        Route("/api/render", e.render, methods=["POST"]),
        Route("/api/export", e.export, methods=["POST"]),
        Route("/media/video", e.video),
        Route("/media/stem/{number:int}", e.stem),
        Route("/media/thumb/{number:int}/{index:int}", e.thumb),
    ]
    # Outermost first: a bad Host is refused (400) before the token is even looked at.
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=HOSTS), Middleware(TokenGuard, token=token)]
    return Starlette(routes=routes, middleware=middleware)


def serve(session: Session, *, port: int = 0, open_browser: bool = True, render: bool = True, echo=print) -> None:
    """Serve the page until Ctrl-C; then stop a render at its next step and remove the work folder."""
    import uvicorn

    token = secrets.token_urlsafe(24)
    renderer = Renderer(session)
    try:
        with _listening(port) as sock:
            url = f"http://127.0.0.1:{sock.getsockname()[1]}/?token={token}"
            server = uvicorn.Server(uvicorn.Config(create_app(session, renderer, token), log_level="warning", lifespan="off"))
            if render:
                renderer.start()
            echo(f"review {session.plan_path} at {url}  (Ctrl-C stops)")
            if open_browser:
                threading.Timer(0.5, webbrowser.open, (url,)).start()
            server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # uvicorn has shut down; it passes the Ctrl-C on
    finally:
        renderer.close()
        session.close()
    echo("review stopped")


def _listening(port: int) -> socket.socket:
    """A socket listening on 127.0.0.1 only; listening now, so a browser opened on the URL at once
    waits in the backlog until uvicorn accepts."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ScoreToolError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}") from None
    return sock
