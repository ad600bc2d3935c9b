"""`swapforward stream --serve`: one live stream over HTTP, made once for every listener and paced to real time.

Built on starlette and uvicorn (the ASGI stack gradio already brings). Routes:
- `GET /`: a page with a player, a prompt box and a stop button;
- `GET /stream.wav`: the audio from the live point on, as a WAV stream (16-bit, a header for unknown length) that a
  browser's `<audio>`, VLC and ffplay play;
- `POST /control`: JSON `{"prompt": "...", "negative_prompt": "..."}` changes the prompt from the next block on,
  `{"stop": true}` ends the stream; a bad request gets `{"error": one sentence}` and status 400;
- `GET /status`: JSON with the seconds made and played, the block, the prompt, the listeners.

The stream is made in one thread. It runs at most `ahead` seconds ahead of playback (the clock starts when the first
listener connects) and pauses while nobody listens, so a listener who goes away stops the work only they wanted.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from ..errors import SwapForwardError
from ..io.streaming import pcm16, wav_header
from ..options import Request

#: Pieces kept for listeners that fall behind (older ones are dropped; a listener this far behind skips ahead).
KEPT_PIECES = 64


class Broadcast:
    """One stream's pieces, made once in a thread and handed to every listener, paced to real time."""

    def __init__(self, stream: Any, ahead: float, say: Callable[[str], None] = lambda line: None):
        self.stream, self.ahead, self.say = stream, ahead, say
        self.pieces: list[bytes] = []
        self.first = 0
        """The index of `pieces[0]` among every piece made."""
        self.listeners, self.made, self.clock = 0, 0, None
        self.done, self.error = False, None
        self.prompt = stream.request.prompt if isinstance(stream.request.prompt, str) else "timeline"
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._make, name="swapforward-stream", daemon=True)

    def start(self) -> Broadcast:
        self.thread.start()
        return self

    @property
    def seconds(self) -> float:
        return self.made / self.stream.sample_rate

    def played(self) -> float:
        return 0.0 if self.clock is None else time.monotonic() - self.clock

    def _make(self) -> None:
        started = time.perf_counter()
        try:
            for piece in self.stream:
                with self.changed:
                    self.pieces.append(pcm16(piece))
                    self.made += piece.shape[-1]
                    if len(self.pieces) > KEPT_PIECES:
                        self.pieces.pop(0)
                        self.first += 1
                    self.changed.notify_all()
                    if self.stream.state.block == 1:
                        self.say(f"first audio after {time.perf_counter() - started:.1f} s")
                    while not self.done and (self.listeners == 0 or self.seconds - self.played() > self.ahead):
                        self.changed.wait(0.2)
                if self.done:
                    self.stream.stop()
        except Exception as error:  # shown to listeners and on the console, the server stays up
            self.error = str(error) if isinstance(error, SwapForwardError) else f"{type(error).__name__}: {error}"
            self.say(f"the stream stopped: {self.error}")
        with self.changed:
            self.done = True
            self.changed.notify_all()

    def join(self) -> int:
        """A listener arrives: the index of the piece it starts from (the newest one, the live point)."""
        with self.changed:
            if self.listeners == 0:  # playback (re)starts here
                self.clock = time.monotonic() - max(0.0, self.seconds - self._last_piece_seconds())
            self.listeners += 1
            self.changed.notify_all()
            return max(self.first, self.first + len(self.pieces) - 1)

    def _last_piece_seconds(self) -> float:
        return len(self.pieces[-1]) / (2 * self.stream.channels * self.stream.sample_rate) if self.pieces else 0.0

    def leave(self) -> None:
        with self.changed:
            self.listeners -= 1
            self.changed.notify_all()

    def wait(self, index: int, timeout: float = 1.0) -> tuple[list[bytes], int]:
        """The pieces from `index` on (waiting up to `timeout` for one), and the index after them."""
        with self.changed:
            if index >= self.first + len(self.pieces) and not self.done:
                self.changed.wait(timeout)
            index = max(index, self.first)
            ready = self.pieces[index - self.first:]
            return ready, index + len(ready)

    def control(self, body: Any) -> dict[str, Any]:
        """A change of prompt or a stop, from the control endpoint's JSON."""
        if not isinstance(body, dict) or not ({"prompt", "stop"} & set(body)):
            raise SwapForwardError('Send JSON with "prompt" (and "negative_prompt") to change the prompt, or '
                                   '"stop": true to end the stream.')
        if body.get("stop"):
            with self.changed:
                self.done = True
                self.changed.notify_all()
            self.stream.stop()
            return {"stopping": True}
        at = self.stream.set_prompt(body.get("prompt"), body.get("negative_prompt"))
        self.prompt = body["prompt"]
        return {"prompt": self.prompt, "from_seconds": at}

    def status(self) -> dict[str, Any]:
        return {"seconds": round(self.seconds, 3), "played": round(self.played(), 3), "block": self.stream.state.block,
                "prompt": self.prompt, "listeners": self.listeners, "method": self.stream.request.method,
                "seed": self.stream.seed, "sample_rate": self.stream.sample_rate, "done": self.done,
                "error": self.error}

    def close(self) -> None:
        with self.changed:
            self.done = True
            self.changed.notify_all()
        self.stream.stop()


def routes(current: Callable[[], Broadcast | None], prefix: str = "") -> list[Any]:
    """The audio, status and control routes of whichever broadcast `current()` returns (the app's Live tab starts
    and replaces it; `--serve` has one), under `prefix`."""
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request as HttpRequest
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    def missing() -> JSONResponse:
        return JSONResponse({"error": "No live stream is playing; start one first."}, status_code=404)

    async def audio(request: HttpRequest) -> Response:
        broadcast = current()
        if broadcast is None:
            return missing()
        stream = broadcast.stream

        async def body() -> AsyncIterator[bytes]:
            index = broadcast.join()
            try:
                yield wav_header(stream.sample_rate, stream.channels)
                while True:
                    ready, index = await run_in_threadpool(broadcast.wait, index)
                    for piece in ready:
                        yield piece
                    if broadcast.done and not ready:
                        break
            finally:
                broadcast.leave()

        return StreamingResponse(body(), media_type="audio/wav", headers={"Cache-Control": "no-store"})

    async def control(request: HttpRequest) -> JSONResponse:
        broadcast = current()
        if broadcast is None:
            return missing()
        try:
            return JSONResponse(broadcast.control(json.loads(await request.body() or b"null")))
        except json.JSONDecodeError:
            return JSONResponse({"error": "The body is not JSON; send {\"prompt\": \"...\"} or {\"stop\": true}."},
                                status_code=400)
        except SwapForwardError as error:
            return JSONResponse({"error": str(error)}, status_code=400)

    async def status(request: HttpRequest) -> JSONResponse:
        broadcast = current()
        return missing() if broadcast is None else JSONResponse(broadcast.status())

    return [Route(f"{prefix}/stream.wav", audio), Route(f"{prefix}/status", status),
            Route(f"{prefix}/control", control, methods=["POST"])]


def build_server(broadcast: Broadcast) -> Any:
    """The starlette app of one broadcast: its page and its routes."""
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    async def page(request: Any) -> HTMLResponse:
        return HTMLResponse(PAGE.replace("{prompt}", _html(broadcast.prompt)))

    return Starlette(routes=[Route("/", page), *routes(lambda: broadcast)])


def serve(stream: Any, output: Request, say: Callable[[str], None]) -> None:
    """Serve `stream` until Ctrl-C or SIGTERM."""
    broadcast = Broadcast(stream, output.ahead, say).start()
    say(f"listening on http://{output.host}:{output.port}/ (the audio: /stream.wav); Ctrl-C stops")
    try:
        run_server(build_server(broadcast), output.host, output.port)
    finally:
        broadcast.close()
    say(f"served {broadcast.seconds:.1f} s of {stream.request.method} stream, seed {stream.seed}")


def run_server(app: Any, host: str, port: int) -> None:
    """uvicorn until Ctrl-C or SIGTERM; open audio responses (endless) get two seconds to end, then are closed."""
    import uvicorn

    uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=2)).run()


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>swapforward live</title>
<style>body{font-family:sans-serif;max-width:40em;margin:2em auto}input{width:70%}</style></head>
<body><h1>swapforward live</h1>
<audio id="player" controls preload="none" src="/stream.wav"></audio>
<p><input id="prompt" value="{prompt}"> <button id="change">Change</button> <button id="stop">Stop</button></p>
<p id="status">press play</p>
<script>
const status = document.getElementById("status");
async function send(body) {
  const reply = await fetch("/control", {method: "POST", body: JSON.stringify(body)});
  const data = await reply.json();
  status.textContent = data.error || (data.stopping ? "stopping" : "from " + data.from_seconds.toFixed(1) +
                                      " s: " + data.prompt);
}
document.getElementById("change").onclick = () => send({prompt: document.getElementById("prompt").value});
document.getElementById("stop").onclick = () => send({stop: true});
setInterval(async () => {
  const s = await (await fetch("/status")).json();
  document.title = s.prompt;
  document.getElementById("player").dataset.prompt = s.prompt;
}, 1000);
</script></body></html>
"""
