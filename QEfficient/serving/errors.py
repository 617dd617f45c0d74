"""The error every route answers with: OpenAI's error body and an HTTP status."""

from __future__ import annotations

from fastapi.responses import JSONResponse


class APIError(Exception):
    def __init__(
        self, status: int, message: str, param: str | None = None, code: str | None = None, kind: str = "invalid_request_error"
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status)

    def in_terms_of(self, fields: dict[str, str]) -> APIError:
        """This chat-route error for a request another API's fields made (``fields``: chat's field -> that API's; a
        Responses or Messages request becomes a chat request): its ``param`` and the fields its message quotes named as
        the client sent them."""
        for chat_field, own in fields.items():
            if chat_field != own:
                self.message = self.message.replace(f"'{chat_field}'", f"'{own}'")
        self.param = fields.get(self.param, self.param)
        return self
