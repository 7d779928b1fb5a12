"""The base models a learner may fine-tune here, and what each needs on this machine.

- Always: the configured base model (the embedded SmolLM2-135M by default) and the instructor's
  TUTOR_TRAIN_BASE_MODELS (HF ids or folders).
- Local mode (no logins): also the curated Hub models (training/models/hub.py's CURATED), and any HF id the learner types.
- Shared mode (logins on): only the configured ones; an id outside them is refused, whoever sends it.
- Offline (the Hub can't be reached): only what is on disk, and the listing says so.

Each offer carries its parameters, license, gate, whether it is downloaded, and the estimate for the default
settings on this machine (training/local/estimate.py). A client only ever sends an id; `allowed` checks it.

    python -m training.local.catalog      # this machine's offer as JSON
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel

from training.base.errors import TutorError
from training.base.models import display_name
from training.base.phrases import Phrases
from training.base.settings import EMBEDDED, Settings
from training.local.estimate import Architecture, Estimate, estimate
from training.models.hub import CURATED, HubModel, cached, cached_models, valid_repo_id

EMBEDDED_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"  # what the embedded GGUF was made from
PHRASES = Phrases("catalog")


class Offer(BaseModel):
    """A base model as a learner sees it before choosing."""

    id: str  # what the server trains ("embedded", an HF id, or an instructor's folder)
    label: str  # how it is named to learners (never a server path)
    parameters: int | None = None
    license: str | None = None
    gated: bool = False
    downloaded: bool
    download_bytes: int | None = None
    note: str | None = None
    estimate: Estimate | None = None


def shared(settings: Settings) -> bool:
    return settings.auth != "none"


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hub (HF_ENDPOINT, or huggingface.co) answers at all, within `timeout` seconds."""
    import httpx

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    try:
        httpx.head(f"{endpoint}/api/models", timeout=timeout)
    except httpx.HTTPError:
        return False
    return True


def configured(settings: Settings) -> list[str]:
    """The instructor's models: the configured base model, then TUTOR_TRAIN_BASE_MODELS."""
    return list(dict.fromkeys([settings.base_model, *settings.train_base_models]))


def _curated(model_id: str) -> HubModel | None:
    return next((m for m in CURATED if m.id == model_id), None)


def on_disk(model_id: str) -> bool:
    """The model is here: the embedded one, an (absolute) folder, or complete in the HF cache."""
    if model_id == EMBEDDED or (Path(model_id).is_absolute() and Path(model_id).is_dir()):
        return True
    try:
        return cached(model_id)
    except TutorError:
        return False


def offered(settings: Settings, online: bool, train_file: str | None = None, language: str = "en") -> list[Offer]:
    """The models a learner may choose here (see the module docstring), each estimated for the default settings on
    `train_file` (the learner's latest training split) where one is given."""
    ids = configured(settings)
    if not shared(settings):
        ids += [m.id for m in CURATED] + cached_models()
    offers = []
    for model_id in dict.fromkeys(ids):
        curated, downloaded = _curated(EMBEDDED_ID if model_id == EMBEDDED else model_id), on_disk(model_id)
        if not downloaded and not online:
            continue
        if not downloaded and Path(model_id).is_absolute():
            continue  # an instructor's folder that is gone
        offers.append(Offer(id=model_id, label=display_name(model_id), downloaded=downloaded,
                            **({} if curated is None else {
                                "parameters": curated.parameters, "license": curated.license,
                                "gated": curated.gated, "download_bytes": curated.download_bytes,
                                "note": None if model_id == EMBEDDED else curated.note(language)})))
    if train_file:
        for offer in offers:
            offer.estimate = estimate_offer(offer, settings, train_file)
    return offers


def estimate_offer(offer: Offer, settings: Settings, train_file: str) -> Estimate | None:
    """The default settings' estimate for an offer: from its own files when it is here, from its curated shape
    before a download; None for a model whose shape is unknown until it is downloaded."""
    from training.local.config import TrainConfig

    config = TrainConfig(train_file=train_file, base_model=offer.id)
    if offer.downloaded:
        return estimate(config, settings, measure="known")
    if (curated := _curated(offer.id)) is None:
        return None
    arch = Architecture.shaped(curated.hidden, curated.intermediate, curated.layers, curated.heads, curated.kv_heads,
                               curated.vocabulary, context=curated.context)
    return estimate(config, settings, measure="known", arch=arch)


def allowed(settings: Settings, name: str, language: str = "en") -> str:
    """The model a client's choice names (a label from the offer, or a typed HF id), checked: in shared mode one of
    the instructor's, found by its label (a folder's path never travels to a client and back); in local mode also
    any HF id by the Hub's rules (it never becomes a path or a command line). Refused with a sentence."""
    choices = {display_name(model): model for model in configured(settings)}
    if name in choices:
        return choices[name]
    if shared(settings):
        raise TutorError(PHRASES("typed_shared", language, choices=", ".join(choices)))
    valid_repo_id(name, language)
    if Path(name).exists():  # transformers would load this folder of the server's working directory instead
        raise TutorError(PHRASES("typed_folder", language, name=name))
    return name


def allowed_dataset(settings: Settings, repo_id: str, language: str = "en") -> str:
    """A Hub dataset id a client names, checked by the Hub's rules; in shared mode also one of the instructor's
    TUTOR_TRAIN_DATASETS (each download fills the server's disk). Refused with a sentence."""
    valid_repo_id(repo_id, language)
    if shared(settings) and repo_id not in settings.train_datasets:
        if not settings.train_datasets:
            raise TutorError(PHRASES("no_datasets", language))
        raise TutorError(PHRASES("dataset_shared", language, choices=", ".join(settings.train_datasets)))
    return repo_id


if __name__ == "__main__":
    import json

    from training.base.common import configure_process
    from training.base.settings import get_settings

    configure_process()
    print(json.dumps([o.model_dump(exclude={"estimate"}) for o in offered(get_settings(), hub_reachable())], indent=2))
