"""What signing did to one file, as render records keep it (no SDK import: records are read everywhere)."""

from __future__ import annotations

from pydantic import BaseModel


class SigningReport(BaseModel):
    signer: str  # the signing certificate's common name
    issuer: str
    serial: str
    development: bool  # signed with the development chain
    timestamped: bool
    source_type: str
    actions: list[str]
    ingredients: list[str]  # titles, in order
    bytes_added: int
    sign_ms: float

    def step(self) -> dict[str, object]:
        """The signing as a finishing step record (the lineage manifest lists every step)."""
        return {"step": "content_credentials", "standard": "C2PA", **self.model_dump()}
