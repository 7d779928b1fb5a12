"""Fine-tuning on Azure OpenAI (Microsoft Foundry): the `azure` training backend.

Azure serves OpenAI's fine-tuning API (training/backends/openai_api.py) at AZURE_OPENAI_ENDPOINT, reached with the
`AzureOpenAI` client (`api-key` header or an Entra ID token, `?api-version=`). Three things differ:
- an uploaded file is processed before a job may use it: starting waits for that, and says why one failed;
- the job is created with `method` (supervised, with its hyperparameters), as Azure's API versions expect;
- the result is a custom model that answers only once *deployed*. With AZURE_SUBSCRIPTION_ID,
  AZURE_RESOURCE_GROUP, AZURE_RESOURCE_NAME and AZURE_MANAGEMENT_TOKEN set, the follower deploys it through
  the control plane (ARM, at AZURE_MANAGEMENT_URL) and waits until it is ready. Otherwise the run still ends
  `succeeded`, with the exact portal or `az` step; `tutor jobs deployed RUN NAME` (or `/deployed NAME` in
  chat) then records the deployment, and "Chat with it", the A/B chat and `tutor eval` use it.

    tutor train --backend azure --train train.jsonl --val validation.jsonl [--model gpt-4.1-mini-2025-04-14]
    tutor jobs deployed RUN my-recipes-ft
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

from pydantic import Field

from training.backends.openai_api import MODEL_NAME, OpenAIJobConfig, OpenAIJobs
from training.backends.registry import register_training_backend
from training.base.clients import secret, secrets, server_label
from training.base.errors import TutorError, redact
from training.base.phrases import Phrases
from training.base.records import Run
from training.base.registry import Registry
from training.base.settings import DEPLOYMENT_NAME, Settings

log = logging.getLogger(__name__)

DEFAULT_MODEL = "gpt-4.1-mini-2025-04-14"
ARM_API_VERSION = "2024-10-01"
ARM_SKU = {"standard": "Standard", "globalstandard": "GlobalStandard", "developertier": "DeveloperTier"}
DEPLOYED, NOT_DEPLOYED = "Succeeded", ("Failed", "Canceled")
PHRASES = Phrases("azure")
HOSTING = PHRASES("hosting")  # the follower's notes, written to the run's events (in English)


class AzureJobConfig(OpenAIJobConfig):
    """An Azure OpenAI fine-tuning job's settings: those of an OpenAI job (see there), with Azure's default
    base model. A model name is the one in Azure's fine-tuning model list (a dated version)."""

    title = "Azure OpenAI fine-tuning"
    model: str = Field(DEFAULT_MODEL, pattern=MODEL_NAME)

    def method(self) -> dict:
        return {"type": "supervised", "supervised": {"hyperparameters": self.hyperparameters()}}


def deployment_name(run: Run) -> str:
    """The deployment a run's model gets: its run id, so two followers deploying it agree."""
    return run.id


def deploy_step(settings: Settings, fine_tuned_model: str, run_id: str, language: str = "en") -> str:
    """What the learner does when the app can't deploy: the portal, or the exact `az` command."""
    resource = settings.azure_resource_name or "<your-resource>"
    group = settings.azure_resource_group or "<your-resource-group>"
    command = (f"`az cognitiveservices account deployment create --resource-group {group} --name {resource} "
               f"--deployment-name {run_id} --model-name {fine_tuned_model} --model-version 1 --model-format OpenAI "
               f"--sku-name {ARM_SKU[settings.azure_deployment_sku]} --sku-capacity 1`")
    return PHRASES("deploy_step", language, model=fine_tuned_model, command=command, run=run_id,
                   hosting=PHRASES("hosting", language))


def can_deploy(settings: Settings) -> bool:
    return all((settings.azure_subscription_id, settings.azure_resource_group, settings.azure_resource_name,
                settings.azure_management_token))


async def deploy(settings: Settings, fine_tuned_model: str, name: str, timeout: float = 3600.0) -> str:
    """Create (or update) a deployment of the model through the control plane and wait until it serves;
    the deployment's name. Raises TutorError with the control plane's reason."""
    import httpx

    url = _deployment_url(settings, name)
    body = {"sku": {"name": ARM_SKU[settings.azure_deployment_sku], "capacity": 1},
            "properties": {"model": {"format": "OpenAI", "name": fine_tuned_model, "version": "1"}}}
    headers = {"Authorization": f"Bearer {secret(settings.azure_management_token)}"}
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=settings.request_timeout, headers=headers,
                                 params={"api-version": ARM_API_VERSION}) as http:
        response = await _arm(http, "PUT", url, settings, json=body)
        while (state := _state(response)) not in (DEPLOYED, *NOT_DEPLOYED):
            if time.monotonic() - started > timeout:
                raise TutorError(f"The deployment {name} was still {state} after {timeout / 60:.0f} minutes; "
                                 "check it in the Foundry portal.")
            await asyncio.sleep(_retry_after(response))
            response = await _arm(http, "GET", url, settings)
    if state != DEPLOYED:
        raise TutorError(f"Azure could not deploy {fine_tuned_model} (the deployment ended {state}): check its "
                         "quota and region in the Foundry portal.")
    return name


def _deployment_url(settings: Settings, name: str) -> str:
    return (f"{settings.azure_management_url.rstrip('/')}/subscriptions/{quote(settings.azure_subscription_id, safe='')}"
            f"/resourceGroups/{quote(settings.azure_resource_group, safe='')}/providers/Microsoft.CognitiveServices"
            f"/accounts/{quote(settings.azure_resource_name, safe='')}/deployments/{quote(name, safe='')}")


async def deployed_model(settings: Settings, name: str) -> str | None:
    """The model a deployment serves, asked of the control plane; None when there is no such deployment."""
    import httpx

    headers = {"Authorization": f"Bearer {secret(settings.azure_management_token)}"}
    async with httpx.AsyncClient(timeout=settings.request_timeout, headers=headers,
                                 params={"api-version": ARM_API_VERSION}) as http:
        try:
            response = await _arm(http, "GET", _deployment_url(settings, name), settings)
        except TutorError:
            return None
    return ((response.json().get("properties") or {}).get("model") or {}).get("name")


def _state(response) -> str:
    return (response.json().get("properties") or {}).get("provisioningState") or "Accepted"


def _retry_after(response, default: float = 5.0) -> float:
    """The pause the control plane asks for between polls (Retry-After), within sane bounds."""
    try:
        return min(max(float(response.headers.get("Retry-After", default)), 0.2), 60.0)
    except ValueError:
        return default


async def _arm(http, method: str, url: str, settings: Settings, **kwargs):
    """One control-plane call; a 429, a 5xx or a dropped connection is retried with a growing pause."""
    import httpx

    for attempt in range(settings.request_retries + 1):
        try:
            response = await http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            problem = f"Can't reach the Azure control plane ({type(exc).__name__})."
        else:
            if response.status_code < 400:
                return response
            problem = _arm_error(response, settings)
            if response.status_code != 429 and response.status_code < 500:
                raise TutorError(problem)
        if attempt < settings.request_retries:
            await asyncio.sleep(min(2.0 ** attempt, 30.0))
    raise TutorError(problem)


def _arm_error(response, settings: Settings) -> str:
    if response.status_code in (401, 403):
        return (f"The Azure control plane refused the management token (HTTP {response.status_code}): it needs the "
                "Cognitive Services Contributor role on the resource, and a token lasts about an hour "
                "(`az account get-access-token` makes a new one).")
    try:
        detail = response.json().get("error", {}).get("message", "")
    except ValueError:
        detail = ""
    return redact(f"The Azure control plane answered HTTP {response.status_code}: {detail or 'no reason given'}.",
                  *secrets(settings))


@register_training_backend
class AzureJobs(OpenAIJobs):
    """Azure OpenAI fine-tuning, deployed through the control plane when it is configured."""

    name, label, Config = "azure", "Azure OpenAI", AzureJobConfig
    provider = chat_backend = "azure"
    file_poll = 2.0  # seconds between checks of an uploaded file's processing
    phrases = PHRASES

    def notice(self) -> str:
        return self.phrase("hosting")

    def price(self, report) -> str:
        return self.phrase("price")

    def describe_result(self, run: Run) -> str:
        if run.status != "succeeded":
            return run.error or ""
        metrics = run.metrics
        if metrics.get("deployment"):
            return self.phrase("deployed", deployment=metrics["deployment"], hosting=self.phrase("hosting"))
        # The step was written in English when the job ended; another language gets it again, in its words.
        step = metrics["next_step"] if self.language == "en" else deploy_step(
            self.settings, metrics["fine_tuned_model"], run.id, self.language)
        return (f"{metrics['deployment_error']} " if metrics.get("deployment_error") else "") + step

    def refused(self) -> TutorError:
        return TutorError(f"{server_label(self.settings, 'azure')} refused to create the fine-tuning job (HTTP 403): "
                          "the key or token needs the Cognitive Services OpenAI Contributor role on the resource, "
                          "and the resource must be in a region that fine-tunes this model.")

    def upload(self, api, path: str) -> str:
        file_id = super().upload(api, path)
        try:
            file = api.files.wait_for_processing(file_id, poll_interval=self.file_poll)
        except RuntimeError:  # the client gave up waiting (30 minutes)
            raise TutorError(f"Azure was still processing {Path(path).name} after 30 minutes; try again later.") from None
        if file.status != "processed":
            reason = redact(file.status_details or "no reason given", *secrets(self.settings))
            raise TutorError(f"Azure could not process {Path(path).name} ({file.status}): {reason}")
        return file_id

    def create_job(self, api, config: AzureJobConfig, files: dict):
        return api.fine_tuning.jobs.create(model=config.model, suffix=config.suffix, seed=config.seed,
                                           method=config.method(), **files)

    async def finish(self, run: Run, job, registry: Registry, last: dict) -> AsyncIterator[dict]:
        """A succeeded job's custom model is deployed when the control plane is configured; either way the run
        succeeds and says what comes next."""
        if job.status != "succeeded":
            async for event in super().finish(run, job, registry, last):
                yield event
            return
        metrics = {**self.metrics(job, last), "deployment": None}
        if can_deploy(self.settings):
            name = deployment_name(run)
            yield {"type": "status", "message": f"Deploying {job.fine_tuned_model} as `{name}` (Azure takes a few "
                                                f"minutes). {HOSTING}"}
            try:
                metrics["deployment"] = await deploy(self.settings, job.fine_tuned_model, name)
                yield {"type": "status", "message": f"Deployment `{name}` is ready."}
            except TutorError as exc:
                metrics["deployment_error"] = str(exc)
                yield {"type": "status", "level": "warning", "message": str(exc)}
        if metrics["deployment"] is None:
            metrics["next_step"] = deploy_step(self.settings, job.fine_tuned_model, run.id)
            yield {"type": "status", "message": metrics["next_step"]}
        await asyncio.to_thread(self.record_model, run, registry, metrics, metrics["deployment"])
        yield {"type": "done", **metrics}

    def deployed(self, run: Run, registry: Registry, name: str) -> dict:
        """Record the deployment the learner made of a finished run's model; the run record."""
        if run.status != "succeeded":
            raise TutorError(f"Run {run.id} is {run.status}: only a finished fine-tune can be deployed.")
        if not re.match(DEPLOYMENT_NAME, name):
            raise TutorError("A deployment name is 2 to 64 letters, digits, '.', '-' or '_'.")
        if self.settings.auth != "none" and not self._may_name(run, registry, name):
            raise TutorError(PHRASES("not_yours", self.language, deployment=name))
        metrics = {key: value for key, value in run.metrics.items() if key not in ("next_step", "deployment_error")}
        self.record_model(run, registry, {**metrics, "deployment": name}, name)
        return registry.run(run.id)

    def _may_name(self, run: Run, registry: Registry, name: str) -> bool:
        """Shared mode: one of the instructor's deployments, or (asked of the control plane) one serving this very
        run's model, and never one another learner's run answers through."""
        if any(r.metrics.get("deployment") == name and r.owner != run.owner for r in registry.runs()):
            return False
        if name in self.settings.azure_deployments:
            return True
        model = run.metrics.get("fine_tuned_model")
        return bool(model and can_deploy(self.settings) and asyncio.run(deployed_model(self.settings, name)) == model)

    def baseline_model(self, model: dict) -> str:
        if not self.settings.azure_base_deployment:
            raise TutorError("The baseline needs the base model's own deployment on Azure: set "
                             "AZURE_OPENAI_BASE_DEPLOYMENT to its name and restart the app.")
        return self.settings.azure_base_deployment
