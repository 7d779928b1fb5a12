"""A real HTTP server on 127.0.0.1 shaped like Azure OpenAI, for tests: the data plane's fine-tuning API and
deployments' chat, and the control plane's deployments (ARM).

Azure is outside this machine, so tests drive the real `AzureOpenAI` client (and the app's control-plane
calls) against this server. Like Azure it wants `?api-version=` on every call and the `api-key` header (or
an Entra ID bearer token), processes uploaded files before a job may use them, runs a job through pending
and running to succeeded (a step every `tick` seconds, with metrics events and checkpoints), names the
result `BASE.ft-<32 hex>`, and serves it only once deployed. Faults on demand:

    azure.http.fail_next = [429]                  # the next data- or control-plane request gets a 429
    azure.fail_jobs_with = "Too few examples"     # new jobs fail server-side with this message
    azure.bad_files = True                        # uploads end in the "error" processing state
"""

from __future__ import annotations

import secrets
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.fake_openai import FakeOpenAI, completion
from tests.http_server import ServerThread

ACCOUNT = ("/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.CognitiveServices"
           "/accounts/{account}/deployments/{name}")


class FakeAzure:
    def __init__(self, api_key: str = "azure-key-0123456789abcdef", management_token: str = "arm-token-0123456789",
                 steps: int = 6, tick: float = 0.25):
        self.api_key, self.management_token, self.steps, self.tick = api_key, management_token, steps, tick
        self.files: dict[str, dict] = {}
        self.jobs: dict[str, dict] = {}
        self.deployments: dict[str, dict] = {}
        self.requests: list[dict] = []  # every data-plane JSON body and query, for tests to inspect
        self.fail_jobs_with: str | None = None
        self.bad_files = False
        routes = [Route("/openai/files", self.upload, methods=["POST"]),
                  Route("/openai/files/{id}", self.file, methods=["GET"]),
                  Route("/openai/fine_tuning/jobs", self.create_job, methods=["POST"]),
                  Route("/openai/fine_tuning/jobs/{id}", self.job, methods=["GET"]),
                  Route("/openai/fine_tuning/jobs/{id}/events", self.events, methods=["GET"]),
                  Route("/openai/fine_tuning/jobs/{id}/checkpoints", self.checkpoints, methods=["GET"]),
                  Route("/openai/fine_tuning/jobs/{id}/cancel", self.cancel, methods=["POST"]),
                  Route("/openai/deployments/{name}/chat/completions", self.chat, methods=["POST"]),
                  Route(ACCOUNT, self.deployment, methods=["PUT", "GET"])]
        self.http = ServerThread(Starlette(routes=routes), fail_paths=("/openai/", "/subscriptions/"))
        self.endpoint = f"http://127.0.0.1:{self.http.port}"

    def __enter__(self):
        self.http.__enter__()
        return self

    def __exit__(self, *exc):
        self.http.__exit__(*exc)

    @staticmethod
    def _error(status: int, code: str, message: str) -> JSONResponse:
        return JSONResponse({"error": {"code": code, "message": message}}, status)

    def _refused(self, request: Request) -> JSONResponse | None:
        """Azure's answers to a call without an api-version or with the wrong key."""
        if "api-version" not in request.query_params:
            return self._error(404, "404", "Resource not found")
        if request.headers.get("api-key") != self.api_key and \
                request.headers.get("authorization") != f"Bearer {self.api_key}":
            return self._error(401, "401", "Access denied due to invalid subscription key or wrong API endpoint. "
                                           "Make sure to provide a valid key for an active subscription.")
        return None

    # --- files ----------------------------------------------------------------------------------------

    async def upload(self, request: Request):
        if refused := self._refused(request):
            return refused
        form = await request.form()
        content = await form["file"].read()
        file = {"id": f"file-{secrets.token_hex(16)}", "object": "file", "bytes": len(content), "created_at":
                int(time.time()), "filename": form["file"].filename, "purpose": form["purpose"], "status": "pending",
                "status_details": None, "ready_at": time.monotonic() + 0.3}
        self.files[file["id"]] = file
        return JSONResponse(self._public(file), 201)

    async def file(self, request: Request):
        if refused := self._refused(request):
            return refused
        file = self.files.get(request.path_params["id"])
        if file is None:
            return self._error(404, "fileNotFound", "File not found.")
        if file["status"] == "pending" and time.monotonic() >= file["ready_at"]:
            file["status"], file["status_details"] = (("error", "The file has 1 line that is not valid JSON.")
                                                      if self.bad_files else ("processed", None))
        return JSONResponse(self._public(file))

    @staticmethod
    def _public(record: dict) -> dict:
        return {key: value for key, value in record.items() if not key.startswith("_") and key != "ready_at"}

    # --- jobs -------------------------------------------------------------------------------------------

    async def create_job(self, request: Request):
        if refused := self._refused(request):
            return refused
        body = await request.json()
        self.requests.append({"path": "create_job", "query": dict(request.query_params), "body": body})
        if not str(body.get("model", "")).startswith("gpt-"):
            return self._error(400, "invalidPayload", f"The specified base model {body.get('model')} does not "
                                                      "support fine-tuning.")
        for role in ("training_file", "validation_file"):
            if body.get(role) and (self.files.get(body[role]) or {}).get("status") != "processed":
                return self._error(400, "invalidPayload", f"The {role} {body[role]} is not processed yet.")
        job = {"id": f"ftjob-{secrets.token_hex(16)}", "object": "fine_tuning.job", "model": body["model"],
               "created_at": int(time.time()), "finished_at": None, "fine_tuned_model": None,
               "organization_id": "", "result_files": [], "status": "pending", "error": None,
               "training_file": body["training_file"], "validation_file": body.get("validation_file"),
               "hyperparameters": (body.get("method") or {}).get("supervised", {}).get("hyperparameters", {}),
               "method": body.get("method"), "seed": body.get("seed") or 42, "suffix": body.get("suffix"),
               "trained_tokens": None, "_started": time.monotonic(), "_events": [], "_checkpoints": [],
               "_fail": self.fail_jobs_with}
        self.jobs[job["id"]] = job
        self._event(job, "message", "Job enqueued. Waiting for jobs ahead to complete.")
        return JSONResponse(self._public(job), 201)

    def _event(self, job: dict, kind: str, message: str, data: dict | None = None) -> None:
        job["_events"].append({"id": f"ftevent-{secrets.token_hex(8)}", "object": "fine_tuning.job.event",
                               "created_at": int(time.time()), "level": "info", "message": message, "type": kind,
                               "data": data or {}})

    def _advance(self, job: dict) -> dict:
        """Move the job on by the time passed: pending for one tick, then a step per tick."""
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        ticks = int((time.monotonic() - job["_started"]) / self.tick)
        done = len([e for e in job["_events"] if e["type"] == "metrics"])
        if ticks >= 1 and job["status"] == "pending":
            job["status"] = "running"
            self._event(job, "message", "Training started.")
        for step in range(done + 1, min(ticks, self.steps) + 1):
            if job["_fail"] and step == 2:
                job.update(status="failed", finished_at=int(time.time()),
                           error={"code": "invalid_training_file", "message": job["_fail"], "param": "training_file"})
                self._event(job, "message", f"Training failed: {job['_fail']}")
                return job
            loss = round(2.0 / step, 4)
            data = {"step": step, "train_loss": loss, "train_mean_token_accuracy": 0.5 + step / 100,
                    "valid_loss": loss + 0.1, "valid_mean_token_accuracy": 0.45 + step / 100}
            self._event(job, "metrics", f"Step {step}: training loss={loss}", data)
            if step % 3 == 0:
                job["_checkpoints"].append({
                    "id": f"ftchkpt-{secrets.token_hex(8)}", "object": "fine_tuning.job.checkpoint",
                    "created_at": int(time.time()), "fine_tuning_job_id": job["id"], "step_number": step,
                    "fine_tuned_model_checkpoint": f"{job['model']}.ft-{job['id'][6:38]}-step-{step}",
                    "metrics": {"step": step, "train_loss": loss}})
        if ticks > self.steps:
            job.update(status="succeeded", finished_at=int(time.time()), trained_tokens=1234,
                       fine_tuned_model=f"{job['model']}.ft-{job['id'][6:38]}")
            self._event(job, "message", "The job has successfully completed.")
        return job

    def _job(self, request: Request) -> tuple[dict | None, JSONResponse | None]:
        """The job a request names, moved on by the time passed; or Azure's error answer instead."""
        if refused := self._refused(request):
            return None, refused
        job = self.jobs.get(request.path_params["id"])
        return (self._advance(job), None) if job else (None, self._error(404, "jobNotFound", "Job not found."))

    async def job(self, request: Request):
        job, error = self._job(request)
        return error or JSONResponse(self._public(job))

    async def events(self, request: Request):
        job, error = self._job(request)
        return error or JSONResponse({"object": "list", "data": job["_events"][::-1], "has_more": False})

    async def checkpoints(self, request: Request):
        job, error = self._job(request)
        if error:
            return error
        data = job["_checkpoints"][::-1]
        return JSONResponse({"object": "list", "data": data, "has_more": False,
                             "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None})

    async def cancel(self, request: Request):
        job, error = self._job(request)
        if error:
            return error
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return self._error(400, "jobNotCancellable", f"The job is {job['status']} and can't be cancelled.")
        job.update(status="cancelled", finished_at=int(time.time()))
        self._event(job, "message", "The job was cancelled.")
        return JSONResponse(self._public(job))

    # --- deployments: the control plane makes them, the data plane answers through them ---------------

    async def deployment(self, request: Request):
        if request.query_params.get("api-version") is None:
            return self._error(400, "MissingApiVersionParameter", "The api-version query parameter is required.")
        if request.headers.get("authorization") != f"Bearer {self.management_token}":
            return self._error(401, "InvalidAuthenticationToken", "The access token is invalid.")
        name = request.path_params["name"]
        if request.method == "GET":
            deployment = self.deployments.get(name)
            if deployment is None:
                return self._error(404, "DeploymentNotFound", f"Deployment {name} not found.")
            deployment["_polls"] += 1
            if deployment["_polls"] >= 2:
                deployment["properties"]["provisioningState"] = "Succeeded"
            return JSONResponse(self._public(deployment), headers={"Retry-After": "0"})
        body = await request.json()
        model = body["properties"]["model"]["name"]
        if not any(job["fine_tuned_model"] == model for job in self.jobs.values()):
            return self._error(400, "InvalidResourceProperties", f"The model '{model}' is not a fine-tuned model "
                                                                 "of this resource.")
        self.deployments[name] = {"id": request.url.path, "name": name, "sku": body["sku"], "_polls": 0,
                                  "properties": {"model": body["properties"]["model"], "provisioningState": "Creating"}}
        return JSONResponse(self._public(self.deployments[name]), 201, headers={"Retry-After": "0"})

    async def chat(self, request: Request):
        if refused := self._refused(request):
            return refused
        name = request.path_params["name"]
        deployment = self.deployments.get(name)
        if deployment is None or deployment["properties"]["provisioningState"] != "Succeeded":
            return self._error(404, "DeploymentNotFound", "The API deployment for this resource does not exist.")
        body = await request.json()
        self.requests.append({"path": f"chat/{name}", "query": dict(request.query_params), "body": body})
        return completion(body, deployment["properties"]["model"]["name"], FakeOpenAI.reply_for(body["messages"]))

    def add_deployment(self, name: str, model: str) -> None:
        """A deployment made outside the app (the learner's portal click, the base model's own)."""
        self.deployments[name] = {"id": name, "name": name, "sku": {"name": "Standard", "capacity": 1}, "_polls": 2,
                                  "properties": {"model": {"format": "OpenAI", "name": model, "version": "1"},
                                                 "provisioningState": "Succeeded"}}
