"""Rollouts: the list, one rollout's page with its stages and state counts, its live
stream (server-sent events, hub/console/live.py), its JSON, and the admin's pause,
resume, advance and abort — through hub/rollouts/changes.py, the code the CLI runs, so
the change is checked, signed, published and audited (actor `admin:NAME`) the same way.

A rollout is named by its group and release target in the path:
`/console/rollouts/GROUP/releases/NAME/VERSION/FILE`; the stream is at
`/console/api/events/rollouts/GROUP/…` and the JSON at `/console/api/rollouts/GROUP/…`;
the list's stream, every rollout at once, is `/console/api/events/rollouts`. The pages
work without script (a form posts the action and the page is shown again); their
scripts only keep the counts live.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import trio
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from hub.console.auth import (
    audit_actor,
    console_action,
    console_page,
    console_state,
    form_fields,
    render,
    session_alive,
    wants_json,
)
from hub.console.live import EVERY_ROLLOUT, LiveRollouts, event_stream
from hub.console.rollout_progress import STATES
from hub.errors import HubError, RolloutError, UnknownReleaseError
from hub.rollouts.changes import RolloutAction, change_rollout
from hub.rollouts.status import rollout_status

MAX_REASON = 500


def live_rollouts(request: Request) -> LiveRollouts:
    live = console_state(request).live
    assert live is not None  # ConsoleState makes one when not given
    return live


def rollout_path(progress: dict[str, Any]) -> str:
    return f"/console/rollouts/{quote(progress['group'])}/{quote(progress['release'])}"


def allowed_actions(progress: dict[str, Any]) -> dict[str, bool]:
    """Which buttons do something now (hub/rollouts/changes.py refuses the others)."""
    state, aborted = progress["state"], progress["aborted"]
    final = progress["current_stage"] + 1 >= len(progress["stages"])
    return {
        "pause": not aborted and state == "active",
        "resume": not aborted and state in ("paused", "halted"),
        "advance": not aborted and state != "halted" and not final,
        "abort": not aborted,
    }


def totals(progress: dict[str, Any]) -> dict[str, int]:
    summed = dict.fromkeys(STATES, 0)
    for stage in progress["stages"]:
        for state, count in stage["counts"].items():
            summed[state] += count
    return summed


async def _one(request: Request) -> dict[str, Any] | None:
    key = (request.path_params["release"], request.path_params["group"])
    found = await live_rollouts(request).current(key)
    return found[0] if found else None


def _not_found(request: Request) -> Response:
    message = (f"no rollout of {request.path_params['release']} to group "
               f"{request.path_params['group']!r}")
    if wants_json(request):
        return JSONResponse({"error": message}, status_code=404)
    return render(request, "error.html", status_code=404, message=message)


@console_page()
async def rollouts_page(request: Request) -> Response:
    found = await live_rollouts(request).current()
    return render(request, "rollouts.html", rollouts=found, states=STATES, totals=totals,
                  rollout_path=rollout_path)


@console_page()
async def rollouts_api(request: Request) -> Response:
    return JSONResponse(await live_rollouts(request).current())


def _render_rollout(request: Request, progress: dict[str, Any], status_code: int = 200,
                    error: str = "", done: str = "", next_step: str = "") -> Response:
    release, group = progress["release"], progress["group"]
    return render(
        request, "rollout.html", status_code=status_code, rollout=progress, states=STATES,
        allowed=allowed_actions(progress), error=error, done=done, next_step=next_step,
        events_url=f"/console/api/events/rollouts/{quote(group)}/{quote(release)}",
        action_url=rollout_path(progress),
    )


async def _next_step(request: Request) -> str:
    """What the controller does next and why, as `rollout status` says it."""
    hub_dir = console_state(request).hub_dir
    group, release = request.path_params["group"], request.path_params["release"]
    try:
        found = await trio.to_thread.run_sync(lambda: rollout_status(hub_dir, release, group))
    except (RolloutError, UnknownReleaseError):
        return ""
    return str(found[0]["next"]) if found else ""


@console_page()
async def rollout_page(request: Request) -> Response:
    progress = await _one(request)
    if progress is None:
        return _not_found(request)
    done = request.query_params.get("done", "")
    return _render_rollout(request, progress, next_step=await _next_step(request),
                           done=done if done in {a.value for a in RolloutAction} else "")


@console_page()
async def rollout_api(request: Request) -> Response:
    progress = await _one(request)
    if progress is None:
        return _not_found(request)
    return JSONResponse({**progress, "actions": allowed_actions(progress)})


async def _change(request: Request, fields: dict[str, str]) -> tuple[dict[str, Any] | None, str]:
    """Apply the asked action; (progress after it, refusal message or '')."""
    group, release = request.path_params["group"], request.path_params["release"]
    try:
        action = RolloutAction(fields.get("action", ""))
    except ValueError:
        return await _one(request), (
            f"unknown action {fields.get('action', '')[:40]!r}: one of "
            f"{', '.join(a.value for a in RolloutAction)}")
    reason = " ".join(fields.get("reason", "").split())[:MAX_REASON]
    hub_dir, actor = console_state(request).hub_dir, audit_actor(request)
    try:
        await trio.to_thread.run_sync(
            lambda: change_rollout(hub_dir, release, group, action, actor, reason))
    except (RolloutError, UnknownReleaseError) as exc:
        return await _one(request), str(exc)
    return await _one(request), ""


@console_action()
async def rollout_action(request: Request) -> Response:
    """The page's form: 303 back to the page when done; the page with the refusal (409)
    when the rollout's state forbids it."""
    fields = await form_fields(request)
    progress, error = await _change(request, fields)
    if progress is None:
        return _not_found(request)
    if error:
        return _render_rollout(request, progress, status_code=409, error=error)
    return RedirectResponse(f"{rollout_path(progress)}?done={quote(fields['action'])}",
                            status_code=303)


@console_action()
async def rollout_action_api(request: Request) -> Response:
    """`{"action": "pause", "reason": "..."}` (JSON or a form): the rollout after it, or
    `{"error": ...}` with 409 when refused."""
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = json.loads(await request.body())
        except ValueError:
            return JSONResponse({"error": "body is not JSON"}, status_code=400)
        if not isinstance(body, dict):
            return JSONResponse({"error": "body must be a JSON object"}, status_code=400)
        fields = {str(k): str(v) for k, v in body.items()}
    else:
        fields = await form_fields(request)
    progress, error = await _change(request, fields)
    if progress is None:
        return _not_found(request)
    if error:
        return JSONResponse({"error": error}, status_code=409)
    return JSONResponse({**progress, "actions": allowed_actions(progress)})


SESSION_CHECK_SECONDS = 5.0


def _stream(request: Request, release: str, group: str) -> Response:
    live = live_rollouts(request)
    if not live.running:
        return JSONResponse({"error": "live updates are not running in this hub process"},
                            status_code=503)

    async def alive() -> bool:
        try:
            return await session_alive(request)
        except HubError:
            return False

    return StreamingResponse(
        event_stream(live, release, group, alive, SESSION_CHECK_SECONDS),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@console_page()
async def rollout_events(request: Request) -> Response:
    """The rollout's progress as server-sent events: at once, then at every change. Ends
    when the session does (checked every few seconds)."""
    if await _one(request) is None:
        return _not_found(request)
    return _stream(request, request.path_params["release"], request.path_params["group"])


@console_page()
async def rollouts_events(request: Request) -> Response:
    """Every rollout's progress, `{"rollouts": [...]}`, as server-sent events."""
    return _stream(request, *EVERY_ROLLOUT)


routes: list[BaseRoute] = [
    Route("/rollouts", rollouts_page, methods=["GET"]),
    Route("/api/rollouts", rollouts_api, methods=["GET"]),
    Route("/rollouts/{group}/{release:path}", rollout_page, methods=["GET"]),
    Route("/rollouts/{group}/{release:path}", rollout_action, methods=["POST"]),
    Route("/api/rollouts/{group}/{release:path}", rollout_api, methods=["GET"]),
    Route("/api/rollouts/{group}/{release:path}", rollout_action_api, methods=["POST"]),
    Route("/api/events/rollouts", rollouts_events, methods=["GET"]),
    Route("/api/events/rollouts/{group}/{release:path}", rollout_events, methods=["GET"]),
]
