"""The errors the core raises. Each says which storyboard, shot and field it is about when it knows."""

from __future__ import annotations


class ShotlineError(Exception):
    """Base of every error the core raises on purpose."""


class InputError(ShotlineError):
    """Bad input, found before any money is spent."""

    def __init__(
        self,
        message: str,
        *,
        storyboard: str | None = None,
        shot: str | None = None,
        field: str | None = None,
    ) -> None:
        self.storyboard = storyboard
        self.shot = shot
        self.field = field
        self.detail = message
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.storyboard:
            where.append(f"storyboard {self.storyboard!r}")
        if self.shot:
            where.append(f"shot {self.shot!r}")
        if self.field:
            where.append(f"field {self.field!r}")
        return f"{', '.join(where)}: {self.detail}" if where else self.detail


class ConfigError(InputError):
    """A setting that cannot work (unreachable database, missing bucket, no permission): `field` names the
    environment variable. Raised at start-up, before any money is spent."""


class StoryboardError(InputError):
    """A storyboard file that cannot be loaded; may carry several problems at once."""

    def __init__(self, path: str, problems: list[InputError]) -> None:
        self.path = path
        self.problems = problems
        lines = [f"{path}: {len(problems)} problem(s)"] + [f"  - {p}" for p in problems]
        first = problems[0] if problems else None
        ShotlineError.__init__(self, "\n".join(lines))
        self.storyboard = first.storyboard if first else None
        self.shot = first.shot if first else None
        self.field = first.field if first else None
        self.detail = "\n".join(lines)


class GenerationError(ShotlineError):
    """Generation failed. `retryable` says whether trying again may help; `billed` whether it cost money."""

    def __init__(self, message: str, *, retryable: bool, billed: bool = False, request_id: str | None = None):
        self.retryable = retryable
        self.billed = billed
        self.request_id = request_id
        super().__init__(message)


class BudgetExceeded(GenerationError):
    """A paid submit would take the day's spend over SHOTLINE_BUDGET_USD."""

    def __init__(self, message: str):
        super().__init__(message, retryable=False)


class MediaError(ShotlineError):
    """A video or image that is not what it should be (decode failure, wrong size, no audio...)."""


class PublishError(ShotlineError):
    """An upload that did not land as it should (missing object, checksum mismatch...)."""


class UrlRefused(ShotlineError):
    """A URL shotline will not fetch (scheme, credentials, or an address that is not public). `url` is the
    URL as shown in the message: without user info or query string."""

    def __init__(self, message: str, url: str | None = None) -> None:
        self.url = url
        super().__init__(message)
