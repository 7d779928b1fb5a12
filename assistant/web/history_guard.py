"""Ownership checks Chainlit's own routes leave out (2.12.0), closed in front of them.

Chainlit checks that a thread is the session user's before it renames, deletes or shares one, but not before:
- `PUT /project/element`: the element's `threadId` comes from the client; `DELETE /project/element` likewise;
- `PUT /feedback` and `DELETE /feedback`: a feedback names a step (and may name an existing feedback's id) of
  any thread;
- `PUT /project/thread/share` works although `allow_thread_sharing` is off.

Each of these routes gets a twin registered ahead of Chainlit's that resolves every id the client sent to its
thread in the history database and answers 404 unless that thread is the user's (the same answer as for an id
that does not exist), then hands the request to Chainlit's own handler. Sharing is refused while it is off.

    guard_chainlit_routes()     # once, after the data layer is configured (assistant.chat.app does it)
"""

import logging  # no `from __future__ import annotations`: FastAPI reads the routes' annotations as objects

from fastapi import HTTPException

from assistant.web.history import include_first

log = logging.getLogger(__name__)

_THREAD_OF = {  # which thread an id of each kind belongs to
    "thread": 'SELECT "id" AS thread FROM threads WHERE "id" = :id',
    "step": 'SELECT "threadId" AS thread FROM steps WHERE "id" = :id',
    "element": 'SELECT "threadId" AS thread FROM elements WHERE "id" = :id',
    "feedback": 'SELECT "threadId" AS thread FROM feedbacks WHERE "id" = :id',
}


async def require_own(user, **ids: str | None) -> None:
    """404 unless each id given (thread=, step=, element=, feedback=) lies in a thread of `user`. An element or
    feedback id that does not exist yet may be new (Chainlit creates it): only ids that exist are resolved."""
    from chainlit.data import get_data_layer

    layer = get_data_layer()
    if layer is None or user is None:
        return
    for kind, value in ids.items():
        if not value:
            continue
        if not isinstance(value, str) or len(value) > 64:
            raise HTTPException(status_code=404, detail="Not found")
        rows = await layer.execute_sql(_THREAD_OF[kind], {"id": value})
        if not rows:
            if kind in ("element", "feedback"):
                continue
            raise HTTPException(status_code=404, detail="Not found")
        author = await layer.get_thread_author(rows[0]["thread"]) if rows[0]["thread"] else None
        if author != user.identifier:
            log.warning("Refused a %s of another user's thread (user %s)", kind, user.identifier)
            raise HTTPException(status_code=404, detail="Not found")


def guard_chainlit_routes() -> None:
    """Register the checked twins of Chainlit's element, feedback and share routes ahead of its own."""
    from chainlit import server
    from chainlit.config import config
    from chainlit.types import DeleteFeedbackRequest, ElementRequest, ShareThreadRequest, UpdateFeedbackRequest
    from fastapi import APIRouter, Request

    router = APIRouter()

    @router.put("/project/element")
    async def update_element(payload: ElementRequest, current_user: server.UserParam):
        element = payload.element if isinstance(payload.element, dict) else {}
        await require_own(current_user, thread=element.get("threadId"), element=element.get("id"),
                          step=element.get("forId"))
        return await server.update_thread_element(payload, current_user)

    @router.delete("/project/element")
    async def delete_element(payload: ElementRequest, current_user: server.UserParam):
        element = payload.element if isinstance(payload.element, dict) else {}
        await require_own(current_user, thread=element.get("threadId"), element=element.get("id"))
        return await server.delete_thread_element(payload, current_user)

    @router.put("/feedback")
    async def update_feedback(request: Request, update: UpdateFeedbackRequest, current_user: server.UserParam):
        feedback = update.feedback
        await require_own(current_user, step=feedback.forId, thread=feedback.threadId, feedback=feedback.id)
        return await server.update_feedback(request, update, current_user)

    @router.delete("/feedback")
    async def delete_feedback(request: Request, payload: DeleteFeedbackRequest, current_user: server.UserParam):
        await require_own(current_user, feedback=payload.feedbackId)
        return await server.delete_feedback(request, payload, current_user)

    @router.put("/project/thread/share")
    async def share_thread(request: Request, payload: ShareThreadRequest, current_user: server.UserParam):
        if not getattr(config.features, "allow_thread_sharing", False):
            raise HTTPException(status_code=403, detail="Sharing threads is off on this server.")
        return await server.share_thread(request, payload, current_user)

    include_first(router)
